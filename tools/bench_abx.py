"""ABX speed against the reference: cpc.eval.abx.score.abx_errors vs zrc_abx2 (PyPI zerospeech-libriabx2) on the same
.npy features (log-mel frames of the bundled synthetic sample) and the same item file, default settings (cosine,
groups of 10, 5 X speakers, seed 3459, both speaker and context modes). Calls alternate (ours, reference, ours, ...)
so that drift of the machine hits both alike; the best call of each is compared, and the scores are printed side by
side (they differ only through subsampling draws).

    python tools/bench_abx.py [--split test|train|all] [--unit phone|triphone] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from cpc.eval.abx.items import read_items, write_items
from cpc.eval.abx.score import abx_errors
from cpc.eval.sources import load_feature_folder

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "synthetic_speech" / "sample"


def build(folder: Path, split: str, unit: str, n_mels: int) -> Path:
    """Log-mel .npy features and an item file for the sample's utterances -> the item file."""
    from cpc.data.labels import read_alignments
    from cpc.models.encoders import LogMelFrames
    from cpc.data.labelled import load_utterances

    splits = ["test", "train"] if split == "all" else [split]
    utterances = [u for s in splits for u in load_utterances(str(SAMPLE / s))]
    alignments = read_alignments(SAMPLE / "converted_aligned_phones.txt")
    mel = LogMelFrames(16000, 160, n_mels=n_mels)
    with torch.no_grad():
        for u in utterances:
            np.save(folder / f"{u.key}.npy", mel(u.wav[None])[0].numpy())
    path = folder.parent / f"{split}-{unit}.item"
    count = write_items({u.key: alignments[u.key] for u in utterances}, {u.key: u.speaker for u in utterances},
                        path, unit=unit, phones=(SAMPLE / "phones.txt").read_text().split())
    print(f"{len(utterances)} utterances ({split}), {count} {unit} items, log-mel {n_mels}")
    return path


def reference_call(folder: Path, item: Path):
    from zrc_abx2.ABX_src.models import Pooling
    from zrc_abx2.eval_ABX import EvalABX, _load_npy

    files = list(dict.fromkeys(read_items(item).files.tolist()))
    seq = [(f, str(folder / f"{f}.npy")) for f in files]

    def run() -> dict[str, float]:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = EvalABX()._ABX(Pooling.NONE, 3459, _load_npy, str(item), seq, "cosine", 1 / 0.01,
                                    ["within", "across"], ["within", "any"], max_x_across=5, max_size_group=10)
        return {k: 100 * v for k, v in scores.items()}

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test", choices=["test", "train", "all"])
    parser.add_argument("--unit", default="phone", choices=["phone", "triphone"])
    parser.add_argument("--n-mels", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "features"
        folder.mkdir()
        item = build(folder, args.split, args.unit, args.n_mels)
        calls = {"cpc.eval.abx": lambda: abx_errors(load_feature_folder(folder), item, device=args.device,
                                                    progress=False),
                 "zrc_abx2": reference_call(folder, item)}
        times: dict[str, list[float]] = {name: [] for name in calls}
        scores: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for name, fn in calls.items():
                start = time.perf_counter()
                scores[name] = fn()
                times[name].append(time.perf_counter() - start)
                print(f"  {name:<13} {times[name][-1]:7.1f} s")
    best = {name: min(t) for name, t in times.items()}
    print(f"{'key':<15}{'cpc.eval.abx':>14}{'zrc_abx2':>11}   (error %)")
    for key in scores["zrc_abx2"]:
        print(f"{key:<15}{scores['cpc.eval.abx'][key]:>14.3f}{scores['zrc_abx2'][key]:>11.3f}")
    print(f"best of {args.repeats}, {args.threads} threads, ours on {args.device}: cpc.eval.abx "
          f"{best['cpc.eval.abx']:.1f} s, zrc_abx2 {best['zrc_abx2']:.1f} s -> "
          f"{best['zrc_abx2'] / best['cpc.eval.abx']:.1f}x faster")


if __name__ == "__main__":
    main()
