from cpc.cli import main


def test_shards_command_from_folder(tmp_path, capsys):
    import numpy as np
    import pytest
    import soundfile as sf

    from cpc.data.shards import resolve_shards

    for speaker in ("alice", "bob"):
        (tmp_path / "in" / speaker).mkdir(parents=True)
        sf.write(tmp_path / "in" / speaker / "a.wav", np.zeros(8000, np.float32), 8000)
    main(["shards", str(tmp_path / "in"), str(tmp_path / "out")])
    assert len(resolve_shards(tmp_path / "out")) == 1
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["shards", str(tmp_path / "missing"), str(tmp_path / "out2")])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (f"cpc shards: {tmp_path / 'missing'} does not exist: give a folder of audio "
                                       "files or a TSV manifest (header row with path and speaker columns)\n")


def test_probe_command_on_the_bundled_corpus(tmp_path):
    import json

    sample = "datasets/synthetic_speech/sample"
    main(["probe", "phones", "--train", f"{sample}/test", "--test", f"{sample}/test", "--features", "mfcc",
          "--epochs", "3", "--lr", "1e-2", "--batch-size", "64", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "phones.json").read_text())["results"]["mfcc"]
    assert result["accuracy"] > 0.2  # 40 classes: chance is 0.025 (train and test overlap here: a smoke test)
    assert (tmp_path / "confusion_phones_mfcc.png").exists()


def test_extract_command_npy_and_shards_keep_keys_order_and_frames(tmp_path):
    import numpy as np

    from cpc.data.labelled import load_utterances

    sample = "datasets/synthetic_speech/sample/test"
    main(["pretrain", "recipes/demo/cpc.yaml", "--set", "train.steps=1", "--set", f"train.out={tmp_path / 'run'}",
          "--set", "data.window=3200", "--set", "val_shards=", "--set", "train.progress=false"])
    main(["extract", str(tmp_path / "run"), sample, str(tmp_path / "npy"), "--layer", "both", "--dtype", "float16"])
    main(["extract", str(tmp_path / "run"), sample, str(tmp_path / "streamed"), "--chunk-seconds", "0.7"])
    main(["extract", str(tmp_path / "run"), sample, str(tmp_path / "shards"), "--format", "shards"])
    from cpc.models.int8 import int8_available

    if int8_available():
        main(["extract", str(tmp_path / "run"), sample, str(tmp_path / "int8"), "--int8", "--precision", "bf16"])
    utterances = load_utterances(sample)
    for u in utterances:
        both = np.load(tmp_path / "npy" / f"{u.key}.npy")
        assert both.shape == (len(u.wav) // 160, 64 + 64) and both.dtype == np.float16
        streamed = np.load(tmp_path / "streamed" / f"{u.key}.npy")
        assert np.allclose(streamed, both[:, 64:].astype(np.float32), atol=2e-3)  # float16 rounding
        if int8_available():
            int8 = np.load(tmp_path / "int8" / f"{u.key}.npy")
            exact = both[:, 64:].astype(np.float32)
            assert int8.shape == exact.shape and np.linalg.norm(int8 - exact) < 0.05 * np.linalg.norm(exact)
    import webdataset as wds

    from cpc.data.shards import resolve_shards

    keys = [s["__key__"] for s in wds.WebDataset(resolve_shards(tmp_path / "shards"), shardshuffle=False)]
    assert keys == [u.key for u in utterances]


def test_extract_command_refuses_int8_for_channel_norm(tmp_path, capsys):
    import pytest

    main(["pretrain", "recipes/demo/cpc.yaml", "--set", "train.steps=1", "--set", f"train.out={tmp_path / 'run'}",
          "--set", "data.window=3200", "--set", "val_shards=", "--set", "train.progress=false",
          "--set", "cpc.model.encoder.norm=channel"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["extract", str(tmp_path / "run"), "datasets/synthetic_speech/sample/test", str(tmp_path / "x"), "--int8"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == ("cpc extract: int8 encoding needs an encoder with BatchNorm or no norm (folded "
                                       "into the convs); this one has 'channel' norm, which depends on each input "
                                       "(--int8): use fp32 or bf16\n")
    assert not (tmp_path / "x").exists()  # failed before writing anything
