import io
import itertools
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.multiprocessing as mp

from cpc.data.audio import AudioDataConfig, audio_stream, decode_audio
from cpc.data.ingest import AudioItem
from cpc.data.shards import audio_samples, write_shards
from cpc.data.stages import SkipCounter, Stream, loader


def config(folder, **changes):
    settings = dict(shards=str(folder), batch_size=4, window=3200, shuffle_samples=3, shuffle_windows=10)
    return AudioDataConfig(**{**settings, **changes})


def test_windows_carry_their_own_labels(shards):
    folder = shards[0]
    for batch in itertools.islice(audio_stream(config(folder), train=True, sample_rate=16000, hop=160), 10):
        assert batch["wav"].shape == (4, 3200) and batch["labels"].shape == (4, 20)
        # each frame's constant value is its label / 100: labels must describe exactly these samples
        assert torch.equal(torch.round(batch["wav"][:, ::160] * 100).long(), batch["labels"])


def test_training_offsets_vary_and_reproduce_from_seed_and_start(shards):
    folder = shards[0]
    keys = lambda cfg, start: [k for b in itertools.islice(audio_stream(cfg, True, start, sample_rate=16000, hop=160), 6) for k in b["key"]]
    assert keys(config(folder), 0) == keys(config(folder), 0)
    assert keys(config(folder), 0) != keys(config(folder), 5)
    assert keys(config(folder), 0) != keys(config(folder, seed=1), 0)
    starts = {int(k.split("@")[1]) % 3200 for k in keys(config(folder), 0)}
    assert len(starts) > 1 and all(s % 160 == 0 for s in starts)


def test_same_speaker_batches(shards):
    folder = shards[0]
    for batch in itertools.islice(audio_stream(config(folder, group="speaker"), train=True, sample_rate=16000, hop=160), 5):
        assert len(set(batch["speaker_name"])) == 1 and batch["speaker"].tolist() == [0, 0, 0, 0]


def eval_keys(folder, rank, world, workers, monkeypatch):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    stream = audio_stream(config(folder, batch_size=1), train=False, windows=False, sample_rate=16000, hop=160)
    return [k for batch in loader(stream, num_workers=workers) for k in batch["key"]]


@pytest.mark.parametrize("world, workers", [(1, 0), (2, 0), (2, 2), (3, 1)])
def test_evaluation_reads_every_sample_exactly_once(shards, world, workers, monkeypatch):
    folder, _, items, _ = shards
    seen = [k for rank in range(world) for k in eval_keys(folder, rank, world, workers, monkeypatch)]
    assert sorted(seen) == sorted(item.key for item in items)  # complete and disjoint


def test_whole_utterances_padded_with_lengths(shards):
    folder, _, items, _ = shards
    (batch,) = list(audio_stream(AudioDataConfig(shards=str(folder / "shard-000000.tar"), batch_size=2), False, windows=False, sample_rate=16000, hop=160))
    longest = int(batch["lengths"].max())
    assert batch["wav"].shape == (2, longest)
    short = int(batch["lengths"].argmin())
    assert (batch["labels"][short, batch["lengths"][short] // 160 :] == -1).all()


def test_corrupt_unreadable_and_short_samples_are_skipped_and_counted(tmp_path, shards):
    folder = shards[0]
    bad = tmp_path / "bad" / "bad-000000.tar"
    bad.parent.mkdir()
    with tarfile.open(bad, "w") as tar:
        for name, data in [("corrupt.flac", b"garbage"), ("corrupt.json", b"{}"), ("noaudio.json", b"{}")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(1000, np.float32), 16000)
    write_shards(audio_samples([AudioItem(str(short), "s", "short")], 16000), str(tmp_path / "bad" / "short-%06d.tar"), progress=False)
    truncated = tmp_path / "bad" / "trunc-000000.tar"
    truncated.write_bytes((folder / "shard-000000.tar").read_bytes()[:3000])
    urls = [str(bad), str(tmp_path / "bad" / "short-000000.tar"), str(truncated), str(folder / "shard-000001.tar")]
    stream = Stream(urls, decode_audio, "wav", 1, train=False, window=3200, quantum=160)
    skips = SkipCounter()
    batches = 0
    for batch in stream:
        skips.merge(batch["skipped"])
        batches += 1
    report = skips.report()
    assert skips.counts["unreadable audio or metadata"] == 1 and "corrupt" in report
    assert skips.counts["no audio file in sample"] == 1
    assert skips.counts["shorter than one window"] == 1 and "short" in report
    assert any(reason.startswith("unreadable shard data") for reason in skips.counts)
    assert batches > 0  # the good shard still counts


def float_wav_shard(path, samples: dict) -> None:
    """A shard of float WAV samples (what `cpc shards` never writes, but other tools do): key -> waveform."""
    import json

    import webdataset as wds

    with wds.TarWriter(str(path)) as writer:
        for key, wav in samples.items():
            buffer = io.BytesIO()
            sf.write(buffer, wav, 16000, format="WAV", subtype="FLOAT")
            writer.write({"__key__": key, "wav": buffer.getvalue(), "json": json.dumps({"speaker": "s"}).encode()})


def test_non_finite_samples_never_reach_a_batch_and_mostly_silent_training_is_reported(tmp_path):
    from cpc.data.labelled import load_utterances
    from cpc.data.stages import SILENCE_WINDOWS, SilentCorpus

    rng = np.random.default_rng(0)
    speech = (rng.standard_normal(3200 * 8) * 0.1).astype(np.float32)
    poisoned = speech.copy()
    poisoned[100] = np.nan
    samples = {"speech": speech, "poisoned": poisoned, **{f"silent{i}": np.zeros(3200 * 8, np.float32)
                                                          for i in range(12)}}
    float_wav_shard(tmp_path / "s.tar", samples)
    loaded = load_utterances(str(tmp_path / "s.tar"), 16000)
    assert [u.key for u in loaded] == [k for k in samples if k != "poisoned"]
    assert loaded.skips.report() == "1 non-finite samples (NaN or Inf) (e.g. poisoned)"
    stream = Stream([str(tmp_path / "s.tar")], decode_audio, "wav", 4, train=True, window=3200, quantum=160)
    with pytest.warns(SilentCorpus) as warned:
        batches = list(itertools.islice(stream, 25))  # 100 windows: the first 64 are judged, once
    assert all(torch.isfinite(b["wav"]).all() for b in batches)
    (message,) = [str(w.message) for w in warned if w.category is SilentCorpus]
    silent = int(message.split()[0])
    assert silent > SILENCE_WINDOWS / 2 and message.startswith(
        f"{silent} of the first {SILENCE_WINDOWS} training windows ({silent / SILENCE_WINDOWS:.0%}) are digital "
        "silence (every sample 0), e.g. silent")

def count_training_steps(rank, world, folder, steps, results):
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world))
    stream = audio_stream(config(folder), train=True, sample_rate=16000, hop=160)
    results[rank] = sum(1 for _ in itertools.islice(loader(stream, num_workers=1), steps))


def test_training_gives_identical_step_counts_on_two_ranks(tmp_path, corpus):
    items, alignments = corpus
    # Uneven shards: 5 samples in one, 1 in the other; a split stream would give the ranks different counts.
    write_shards(audio_samples(items[:5], 16000), str(tmp_path / "u" / "a-%03d.tar"), max_count=5, progress=False, index_path=str(tmp_path / "ia.json"))
    write_shards(audio_samples(items[5:], 16000), str(tmp_path / "u" / "b-%03d.tar"), progress=False, index_path=str(tmp_path / "ib.json"))
    folder = str(tmp_path / "u" / "{a,b}-000.tar")
    results = mp.Manager().dict()
    processes = [mp.get_context("spawn").Process(target=count_training_steps, args=(r, 2, folder, 25, results)) for r in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert dict(results) == {0: 25, 1: 25}


def test_bad_config():
    with pytest.raises(ValueError, match="window 3000 must be a multiple of the model.s hop 160"):
        audio_stream(AudioDataConfig(shards="x", window=3000), train=True, sample_rate=16000, hop=160)
    with pytest.raises(FileNotFoundError, match="not found"):
        audio_stream(AudioDataConfig(shards="/nonexistent/s-{0..2}.tar"), train=True, sample_rate=16000, hop=160)


SAMPLE = __import__("pathlib").Path(__file__).resolve().parents[2] / "datasets" / "synthetic_speech" / "sample"


def test_augmented_training_windows_carry_a_clean_future_and_repeat_from_their_start_position():
    from cpc.data.augment import AugmentConfig

    noise_only = AugmentConfig(past=True, pitch_prob=0.0, reverb_prob=0.0, noise_prob=1.0, noise_colours=("pink",))
    config = AudioDataConfig(shards=str(SAMPLE / "train"), batch_size=4, window=3200, augment=noise_only,
                             shuffle_samples=10, shuffle_windows=50)
    stream = lambda start: audio_stream(config, train=True, sample_rate=16000, hop=160, start=start, segment=4)
    first = list(itertools.islice(iter(stream(0)), 6))
    resumed = list(itertools.islice(iter(stream(4)), 2))  # a resumed run's stream starts at batch 4
    for a, b in zip(first[4:], resumed):
        assert torch.equal(a["wav"], b["wav"]) and torch.equal(a["wav_future"], b["wav_future"])
    batch = first[0]
    assert batch["wav"].shape == batch["wav_future"].shape == (4, 3200)
    noise = batch["wav"] - batch["wav_future"]  # the context input is noisy, the target clean: 5-15 dB SNR
    snr = 10 * torch.log10(batch["wav_future"].pow(2).mean(1) / noise.pow(2).mean(1))
    assert ((snr > 4.9) & (snr < 15.1)).all(), snr
    evaluation = next(iter(audio_stream(config, train=False, sample_rate=16000, hop=160)))
    assert "wav_future" not in evaluation  # validation is never augmented


@pytest.mark.parametrize("weights, low, high", [((1e-6, 1), 0.95, 1.0), ((1, 1e-6), 0.0, 0.05)])
def test_training_draws_shards_by_the_mixtures_weights(weights, low, high):
    """data.mix replaces data.shards for training (cpc.data.mixing draws each shard by its corpus's weight of the
    audio time); a near-zero weight all but silences a corpus."""
    test_keys = set((SAMPLE / "test.txt").read_text().split())
    mix = [f"{SAMPLE / 'train'}={weights[0]}", f"{SAMPLE / 'test'}={weights[1]}"]
    config = AudioDataConfig(shards="", mix=mix, batch_size=8, window=3200, shuffle_samples=10, shuffle_windows=50,
                             open_shards=1)
    batches = itertools.islice(iter(audio_stream(config, train=True, sample_rate=16000, hop=160)), 20)
    keys = [key.split("@")[0] for batch in batches for key in batch["key"]]
    share = sum(key in test_keys for key in keys) / len(keys)
    assert low <= share <= high, share


@pytest.mark.parametrize("group, pure", [("source", True), (None, False)])
def test_group_source_builds_each_batch_from_one_corpus_of_the_mixture(group, pure):
    test_keys = set((SAMPLE / "test.txt").read_text().split())
    mix = [f"{SAMPLE / 'train'}=1", f"{SAMPLE / 'test'}=1"]
    config = AudioDataConfig(shards="", mix=mix, batch_size=4, window=3200, shuffle_samples=10, shuffle_windows=50,
                             open_shards=2, group=group)
    batches = list(itertools.islice(iter(audio_stream(config, train=True, sample_rate=16000, hop=160)), 30))
    corpora = [{key.split("@")[0] in test_keys for key in batch["key"]} for batch in batches]
    assert all(len(found) == 1 for found in corpora) == pure
    assert {True, False} == set().union(*corpora)  # both corpora are drawn
