"""Check a frame alignment the way one checks any aligner: a linear log-mel probe trained and scored with the
labels shifted by k frames should peak at k = 0 (labels on the frames they describe) or k = 1.

    python datasets/recorded_prompts/check_alignment.py data/prompts/english

Reads the labelled english/dev (probe training, its epoch chosen on a tenth of it) and english/test shards that
make_shards.py wrote. Shift k moves every utterance's labels k frames later (frame t is scored against the label
of frame t - k; frames with no label left are dropped), so a peak at k = +1 means the labels come one frame early.
Prints a table of dev and test accuracy per shift, then the level of the frames of a few phone labels: the
fricatives' energy must sit in 4-7 kHz and the vowels' and nasals' below 4 kHz, and silence well below both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
from cpc.data.labelled import Utterance, load_utterances  # noqa: E402
from cpc.eval.featurize import featurizer  # noqa: E402
from cpc.eval.probes import ProbeConfig, frame_probe  # noqa: E402


def shift_labels(labels: torch.Tensor, k: int) -> torch.Tensor:
    """(frames,) labels moved k frames later (k < 0: earlier); the frames left without a label get -1."""
    shifted = torch.full_like(labels, -1)
    if k >= 0:
        shifted[k:] = labels[: len(labels) - k]
    else:
        shifted[:k] = labels[-k:]
    return shifted


def shifted(utterances: list[Utterance], k: int) -> list[Utterance]:
    return [Utterance(u.key, u.wav, shift_labels(u.labels, k), u.speaker, u.sample_rate) for u in utterances]


def cached(features):
    """The features of each waveform computed once, whatever the shift."""
    memo: dict[int, torch.Tensor] = {}

    def compute(wav: torch.Tensor) -> torch.Tensor:
        if id(wav) not in memo:
            memo[id(wav)] = features(wav)
        return memo[id(wav)]

    return compute


def shift_table(dev: list[Utterance], test: list[Utterance], shifts: list[int], features,
                config: ProbeConfig) -> list[tuple[int, float, float]]:
    """[(k, dev accuracy, test accuracy)] of the frame probe with labels shifted by each k."""
    rows = []
    for k in shifts:
        result = frame_probe(shifted(dev, k), shifted(test, k), features, classes=40, config=config)
        rows.append((k, result.dev_accuracy, result.accuracy))
    return rows


def peak_offset(rows: list[tuple[int, float, float]]) -> float | None:
    """Sub-frame shift of the best dev accuracy: the vertex of the parabola through the peak and its neighbours."""
    by_shift = {k: dev for k, dev, _ in rows}
    best = max(by_shift, key=by_shift.get)
    if best - 1 not in by_shift or best + 1 not in by_shift:
        return None
    left, centre, right = by_shift[best - 1], by_shift[best], by_shift[best + 1]
    curvature = left - 2 * centre + right
    return best + (left - right) / (2 * curvature) if curvature < 0 else float(best)


BAND_PHONES = ("sil", "s", "sh", "z", "f", "t", "k", "iy", "aa", "ah", "n", "m")


def band_contrast(utterances: list[Utterance], phones: list[str]) -> dict[str, tuple[int, float, float]]:
    """{phone: (frames, 0.1-4 kHz level dB, 4-7 kHz minus 0.1-4 kHz dB)} over the frames labelled with it: the
    fricatives' energy sits high and the vowels' and nasals' low if the labels sit on the right sounds (and the
    decoded audio has its upper band)."""
    window = 400  # 25 ms, centred on each 10 ms label frame
    levels: dict[int, list[torch.Tensor]] = {}
    for u in utterances:
        power = torch.stft(u.wav, window, 160, window=torch.hann_window(window), center=True,
                           return_complex=True).abs().pow(2)[:, : len(u.labels)]  # frame k centred at 160 k
        freqs = torch.fft.rfftfreq(window, 1 / u.sample_rate)
        low = power[(freqs >= 100) & (freqs < 4000)].sum(0)
        high = power[(freqs >= 4000) & (freqs < 7000)].sum(0)
        pair = torch.stack([10 * torch.log10(low + 1e-12), 10 * torch.log10(high + 1e-12)], 1)
        labels = u.labels[: len(pair)]
        for label in labels.unique().tolist():
            levels.setdefault(label, []).append(pair[labels == label])
    table = {}
    for label, parts in levels.items():
        pairs = torch.cat(parts)
        table[phones[label]] = (len(pairs), float(pairs[:, 0].mean()), float((pairs[:, 1] - pairs[:, 0]).mean()))
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("english", help="the english/ folder make_shards.py wrote (dev/ and test/ shards)")
    parser.add_argument("--shifts", type=int, nargs="+", default=list(range(-3, 4)))
    parser.add_argument("--features", default="logmel")
    parser.add_argument("--context", type=int, default=0, help="frames of context each side")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    root = Path(args.english)
    dev, test = load_utterances(str(root / "dev")), load_utterances(str(root / "test"))
    features = cached(featurizer(args.features, sample_rate=16000))
    rows = shift_table(dev, test, args.shifts, features, ProbeConfig(context=args.context, epochs=args.epochs))
    frames = sum(len(u.labels) for u in dev), sum(len(u.labels) for u in test)
    print(f"{args.features} linear probe, context +-{args.context}, {len(dev)} dev / {len(test)} test utterances "
          f"({frames[0]} / {frames[1]} frames)")
    print(f"{'shift k':>8} {'dev acc':>8} {'test acc':>9}")
    best = max(rows, key=lambda r: r[1])[0]
    for k, dev_accuracy, accuracy in rows:
        print(f"{k:>+8d} {100 * dev_accuracy:>7.1f}% {100 * accuracy:>8.1f}%{'  <- best on dev' if k == best else ''}")
    offset = peak_offset(rows)
    if offset is not None:
        print(f"parabola through the dev peak and its neighbours: labels best shifted by {offset:+.2f} frames")
    if best not in (0, 1):
        print(f"WARNING: the probe peaks at k = {best:+d}, not 0 or +1: the labels are off by about {best} frames")
    phones = (root / "phones.txt").read_text().split()
    table = band_contrast(dev + test, phones)
    print("\nlevel per phone label (dev + test): 0.1-4 kHz in dB, and 4-7 kHz relative to it")
    print(f"{'phone':>6} {'frames':>7} {'0.1-4k dB':>10} {'4-7k - 0.1-4k':>14}")
    for phone in BAND_PHONES:
        if phone in table:
            frames, low, contrast = table[phone]
            print(f"{phone:>6} {frames:>7} {low:>10.1f} {contrast:>14.1f}")


if __name__ == "__main__":
    main()
