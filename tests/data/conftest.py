import numpy as np
import pytest
import soundfile as sf

from cpc.data.ingest import AudioItem
from cpc.data.shards import audio_samples, write_shards


def labelled_signal(labels: np.ndarray, hop: int = 160) -> np.ndarray:
    """Audio whose every 10 ms frame holds the constant value label / 100: the label is readable from the audio."""
    return np.repeat(labels.astype(np.float32) / 100, hop)


@pytest.fixture
def corpus(tmp_path):
    """Six labelled 16 kHz utterances from three speakers, written as WAV, plus their alignment dict."""
    rng = np.random.default_rng(0)
    items, alignments = [], {}
    for i in range(6):
        frames = int(rng.integers(150, 400))
        labels = rng.integers(0, 40, frames).astype(np.int16)
        path = tmp_path / "wav" / f"spk{i % 3}" / f"utt{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, labelled_signal(labels), 16000, subtype="PCM_16")
        key = f"spk{i % 3}_utt{i}"
        items.append(AudioItem(str(path), f"spk{i % 3}", key))
        alignments[key] = labels
    return items, alignments


@pytest.fixture
def shards(tmp_path, corpus):
    items, alignments = corpus
    index = write_shards(
        audio_samples(items, 16000, alignments=alignments), str(tmp_path / "shards" / "shard-%06d.tar"),
        max_count=2, progress=False,
    )
    return tmp_path / "shards", index, items, alignments
