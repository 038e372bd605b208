import numpy as np
import soundfile as sf

from cpc.data.audio import AudioDataConfig, audio_stream

from .conftest import load_script

librispeech = load_script("datasets/librispeech/make_shards.py")


def fake_librispeech(root, utterances):
    """SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac, as LibriSpeech lays it out, with random audio."""
    rng = np.random.default_rng(0)
    for utt in utterances:
        speaker, chapter, _ = utt.split("-")
        path = root / speaker / chapter / f"{utt}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.1 * rng.standard_normal(int(rng.integers(8000, 24000))).astype(np.float32), 16000)


def test_split_shards_with_alignments(tmp_path):
    utts = ["103-1240-0000", "103-1240-0001", "1034-121119-0005", "19-198-0001", "19-198-0002"]
    fake_librispeech(tmp_path / "train-clean-100", utts)
    lines = []
    for utt in utts[:4]:  # the last utterance has no alignment
        frames = sf.info(tmp_path / "train-clean-100" / utt.split("-")[0] / utt.split("-")[1] / f"{utt}.flac").frames // 160
        lines.append(f"{utt} " + " ".join(str(i % 41) for i in range(frames)))
    (tmp_path / "aligned.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "train.txt").write_text("103-1240-0000\n1034-121119-0005\n19-198-0002\n")
    (tmp_path / "test.txt").write_text("19-198-0001\n103-1240-0001\n")
    librispeech.main([str(tmp_path / "train-clean-100"), str(tmp_path / "out"), "--alignments", str(tmp_path / "aligned.txt"),
                      "--split", f"train={tmp_path / 'train.txt'}", "--split", f"test={tmp_path / 'test.txt'}"])
    read = lambda split: list(audio_stream(AudioDataConfig(shards=str(tmp_path / "out" / split), batch_size=1), False, windows=False, sample_rate=16000, hop=160))
    test = read("test")
    assert sorted(b["key"][0] for b in test) == ["103-1240-0001", "19-198-0001"]
    assert {b["speaker_name"][0] for b in test} == {"103", "19"}
    assert all(b["labels"][0].tolist() == [i % 41 for i in range(b["labels"].shape[1])] for b in test)
    train = read("train")
    assert sorted(b["key"][0] for b in train) == ["103-1240-0000", "1034-121119-0005", "19-198-0002"]
    assert sum("labels" in b for b in train) == 2  # 19-198-0002 had no alignment: written without labels
