"""Benchmark time-domain augmentation: window-audio-seconds augmented per CPU-second (time.process_time, one
thread), for each effect alone and for the chains, on 8 x 20480-sample windows of the bundled synthetic speech;
then the audio reader (FLAC shards -> decoded windows -> batches, no workers) with and without the augment_items
stage, measured in the same run so the ratio holds on this machine.

    python tools/bench_augment.py
    python tools/bench_augment.py --repeats 40 --batches 400

Each figure is the best of `--repeats` timed calls (this machine drifts 10-15 % between identical runs).
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample" / "train"
WINDOW, BATCH, RATE = 20480, 8, 16000


def speech() -> list[np.ndarray]:
    from cpc.data.audio import AudioDataConfig, audio_stream

    stream = audio_stream(AudioDataConfig(shards=str(SAMPLE), batch_size=1), False, windows=False, sample_rate=RATE,
                          hop=160)
    return [b["wav"][0, : int(b["lengths"][0])].numpy() for b in stream]


def speech_windows(utterances: list[np.ndarray]) -> np.ndarray:
    audio = np.concatenate(utterances)
    return np.stack([audio[i * WINDOW : (i + 1) * WINDOW] for i in range(BATCH)]).astype(np.float32)


def best_cpu(fn, repeats: int) -> float:
    """CPU seconds of the fastest of `repeats` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def configs() -> dict:
    from cpc.data.augment import EFFECTS, AugmentConfig

    def only(effect, **changes):
        return AugmentConfig(past=True, **{f"{e}_prob": float(e == effect) for e in EFFECTS}, **changes)

    return {
        "pitch (+-300 cents)": only("pitch"),
        "noise, coloured": only("noise"),
        "reverb (RT60 0.2-0.8 s)": only("reverb"),
        "band reject": only("bandreject"),
        "time dropout": only("dropout"),
        "default chain, past": AugmentConfig(past=True),
        "default chain, past + future": AugmentConfig(past=True, future=True),
        "default, one effect per window": AugmentConfig(past=True, combine="one"),
        "all five effects, past": AugmentConfig(past=True, bandreject_prob=1.0, dropout_prob=1.0),
    }


def effect_table(windows: np.ndarray, repeats: int) -> None:
    from cpc.data.augment import Augmenter

    audio_s = windows.size / RATE
    print(f"{'augmentation (8 x 20480 samples)':<32} {'ms / batch':>10} {'window-audio-s per CPU-s':>25}")
    for name, config in configs().items():
        augmenter = Augmenter(config, RATE)
        rng = np.random.default_rng(0)
        copies = int(config.past) + int(config.future)
        seconds = best_cpu(lambda: [augmenter.rows(windows, rng) for _ in range(copies)], repeats)
        print(f"{name:<32} {1000 * seconds:>10.2f} {audio_s / seconds:>25.0f}")


def build_shards(folder: Path, utterances: list[np.ndarray], recordings: int) -> list[str]:
    from cpc.data.shards import AudioItem, audio_samples, write_shards
    import soundfile as sf

    rng = random.Random(0)
    items = []
    for i in range(recordings):  # ~20 s recordings of concatenated utterances, FLAC
        pieces, total = [], 0
        while total < 20 * RATE:
            pieces.append(utterances[rng.randrange(len(utterances))])
            total += len(pieces[-1])
        path = folder / f"utt{i:04d}.flac"
        sf.write(path, np.concatenate(pieces)[: 20 * RATE], RATE, subtype="PCM_16")
        items.append(AudioItem(str(path), f"s{i % 10}", f"utt{i:04d}"))
    write_shards(audio_samples(items, RATE), str(folder / "shards" / "shard-%06d.tar"), max_bytes=20e6, progress=False)
    return sorted(str(p) for p in (folder / "shards").glob("*.tar"))


def reader(urls: list[str], config, seed: int = 0):
    """The training audio stream itself (cpc.data.audio.audio_stream), with `config` as its data.augment (None:
    no augmentation)."""
    from cpc.data.audio import AudioDataConfig, audio_stream
    from cpc.data.augment import AugmentConfig

    data = AudioDataConfig(shards=urls, batch_size=BATCH, window=WINDOW, seed=seed,
                           augment=config if config is not None else AugmentConfig())
    return iter(audio_stream(data, train=True, sample_rate=RATE, hop=160))


def reader_table(urls: list[str], batches: int, repeats: int) -> None:
    from cpc.data.augment import AugmentConfig

    contenders = {"reader alone": None, "reader + default, past": AugmentConfig(past=True),
                  "reader + default, past + future": AugmentConfig(past=True, future=True),
                  "reader + one effect per window": AugmentConfig(past=True, combine="one")}
    streams = {name: reader(urls, config) for name, config in contenders.items()}
    for stream in streams.values():  # fill the shuffle buffers: not steady state
        for _ in itertools.islice(stream, 150):
            pass
    best = {name: float("inf") for name in streams}
    for _ in range(repeats):  # interleaved, so drift of the machine hits every contender alike
        for name, stream in streams.items():
            start = time.process_time()
            for _ in itertools.islice(stream, batches):
                pass
            best[name] = min(best[name], time.process_time() - start)
    audio_s = batches * BATCH * WINDOW / RATE
    anchor = audio_s / best["reader alone"]
    print(f"\n{'FLAC shards -> batches of 8 x 20480':<32} {'window-audio-s per CPU-s':>25} {'vs reader':>10}")
    for name, seconds in best.items():
        print(f"{name:<32} {audio_s / seconds:>25.0f} {audio_s / seconds / anchor:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per figure; the best counts")
    parser.add_argument("--batches", type=int, default=100, help="batches per timed reader pass")
    parser.add_argument("--recordings", type=int, default=30, help="20 s FLAC recordings in the reader's shards")
    parser.add_argument("--no-reader", action="store_true", help="only the per-effect table")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(1)
    utterances = speech()
    from cpc.data.augment.signal import fft

    print(f"torch threads 1; FFT: {fft.__name__}")
    effect_table(speech_windows(utterances), args.repeats)
    if not args.no_reader:
        with tempfile.TemporaryDirectory() as tmp:
            urls = build_shards(Path(tmp), utterances, args.recordings)
            reader_table(urls, args.batches, max(3, args.repeats // 5))


if __name__ == "__main__":
    main()
