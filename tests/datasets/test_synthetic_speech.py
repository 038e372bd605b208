import shutil

import numpy as np
import pytest
import torch

from cpc.data.audio import AudioDataConfig, audio_stream
from cpc.data.labels import read_alignments

from .conftest import ROOT, load_script

SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample"
corpus = load_script("datasets/synthetic_speech/make_corpus.py")


def test_frame_labels_use_the_phone_at_each_frame_centre():
    phones = [("pau", 0.015), ("ax", 0.0251), ("t", 0.05)]  # ends in seconds
    labels = corpus.frame_labels(phones, samples=800)  # 5 frames, centres at 5, 15, 25, 35, 45 ms
    ids = [corpus.PHONES.index(p) for p in ("sil", "ah", "t")]
    assert labels.tolist() == [ids[0], ids[1], ids[1], ids[2], ids[2]]


def test_phone_folding():
    assert corpus.fold("pau") == "sil" and corpus.fold("axr") == "er" and corpus.fold("zh") == "zh"
    assert len(corpus.PHONES) == 40
    with pytest.raises(ValueError, match="unknown phone 'q'"):
        corpus.fold("q")


def test_shipped_sample_is_complete_and_aligned():
    train, test = (SAMPLE / "train.txt").read_text().split(), (SAMPLE / "test.txt").read_text().split()
    alignments = read_alignments(SAMPLE / "converted_aligned_phones.txt")
    assert set(train) | set(test) == set(alignments) and not set(train) & set(test)
    speakers = lambda keys: {k.rsplit("_", 1)[0] for k in keys}
    assert len(speakers(train)) >= 5 and speakers(test) <= speakers(train)
    assert len(np.unique(np.concatenate(list(alignments.values())))) == 40
    seen, speech, silence = {}, [], []
    for batch in audio_stream(AudioDataConfig(shards=str(SAMPLE / "test"), batch_size=1), train=False, windows=False, sample_rate=16000, hop=160):
        key = batch["key"][0]
        seen[key] = True
        assert batch["labels"].shape[1] == batch["wav"].shape[1] // 160
        assert batch["labels"][0].tolist() == alignments[key].tolist()
        silent = batch["labels"][0] == 0
        energy = batch["wav"][0, : silent.numel() * 160].view(-1, 160).pow(2).mean(1)
        speech.append(energy[~silent])
        silence.append(energy[silent])
    assert set(seen) == set(test)
    assert torch.cat(speech).mean() > 5 * torch.cat(silence).mean()  # labels match the sound: phones are louder


@pytest.mark.skipif(shutil.which("flite") is None or shutil.which("festival") is None, reason="no synthesisers")
def test_generator_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["make_corpus", "--out", str(tmp_path), "--utterances", "9", "--no-install"])
    corpus.main()
    assert len((tmp_path / "train.txt").read_text().split()) + len((tmp_path / "test.txt").read_text().split()) == 9
    assert (tmp_path / "train" / "index.json").exists() and not (tmp_path / "wav").exists()
