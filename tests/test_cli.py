from cpc.cli import main


def test_shards_command_from_folder(tmp_path):
    import numpy as np
    import pytest
    import soundfile as sf

    from cpc.data.shards import resolve_shards

    for speaker in ("alice", "bob"):
        (tmp_path / "in" / speaker).mkdir(parents=True)
        sf.write(tmp_path / "in" / speaker / "a.wav", np.zeros(8000, np.float32), 8000)
    main(["shards", str(tmp_path / "in"), str(tmp_path / "out")])
    assert len(resolve_shards(tmp_path / "out")) == 1
    with pytest.raises(SystemExit, match="neither an audio folder nor a manifest"):
        main(["shards", str(tmp_path / "missing"), str(tmp_path / "out2")])
