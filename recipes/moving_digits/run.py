"""CPC on moving handwritten digits, end to end on CPU in a few minutes: make the corpus (if missing), pretrain
recipes/moving_digits/cpc.yaml, then linear probes on frozen features of held-out clips (digit images no training
clip uses): digit identity from clip-mean "appearance" (the frame trunk's maps averaged over space) and from
clip-mean context c, motion direction from c_t of every frame; the same probes on a randomly initialised model of
the same shape. Prints one table.

    python recipes/moving_digits/run.py                 # 1500 steps
    python recipes/moving_digits/run.py --steps 0       # probes of an existing run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from cpc.data.labelled import load_clips  # noqa: E402
from cpc.eval.featurize import featurizer  # noqa: E402
from cpc.eval.probes import ProbeConfig, class_probe, frame_probe  # noqa: E402
from cpc.recipe import load_config, pretrain  # noqa: E402

RECIPE = ROOT / "recipes" / "moving_digits" / "cpc.yaml"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/moving_digits")
    parser.add_argument("--clips", type=int, default=2000, help="training clips when the corpus is made")
    parser.add_argument("--steps", type=int, default=1500, help="pretraining steps (0: probe an existing run)")
    parser.add_argument("--out", default="runs/moving_digits")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of cpc.yaml, e.g. --set cpc.model.ar.dim=256 (repeatable)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    data, out = Path(args.data), Path(args.out)
    if not (data / "train" / "index.json").exists():
        print(f"1. making the moving-digits corpus in {data}")
        subprocess.run([sys.executable, str(ROOT / "datasets" / "moving_digits" / "make_corpus.py"),
                        "--out", str(data), "--clips", str(args.clips)], check=True)
    if args.steps:
        print(f"2. pretraining CPC for {args.steps} steps")
        config = load_config(RECIPE, [f"train.steps={args.steps}", f"train.out={out / 'cpc'}",
                                      f"data.shards={data / 'train'}", f"val_shards={data / 'test'}", *args.set])
        pretrain(config, overwrite=True)  # the script owns its run folder
    print("3. probes on held-out clips (train clips for the probe, a tenth of them for choosing the epoch)")
    train, test = load_clips(data / "train"), load_clips(data / "test")
    digit_config = ProbeConfig(epochs=100, batch_size=64, lr=3e-3)
    direction_config = ProbeConfig(epochs=20, batch_size=256)
    rows, results = [], {}
    digit_of = lambda clip: clip.targets["digit"]
    for name, spec in (("CPC (pretrained)", str(out / "cpc")), ("random init, same shape", f"random:{out / 'cpc'}")):
        context = featurizer(spec, "c")  # one model load for both context probes
        scores = {
            "digit, appearance": class_probe(train, test, featurizer(spec, "appearance"), digit_of, digit_config),
            "digit, c": class_probe(train, test, context, digit_of, digit_config),
            "direction, c_t": frame_probe(train, test, context, 8, direction_config),
        }
        results[name] = {task: result.accuracy for task, result in scores.items()}
        rows.append(f"| {name:<24} | " + " | ".join(f"{100 * r.accuracy:5.1f}" for r in scores.values()) + " |")
        print(rows[-1], flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print("\n| features                 | digit, pooled appearance % | digit, pooled c % | direction, c_t % |")
    print("|---|---|---|---|\n" + "\n".join(rows))
    print(f"\n{len(test)} held-out clips of unseen digit images; digit: 10 classes (chance 10 %) from clip-mean "
          f"features; direction: 8 classes per frame (chance 12.5 %); numbers: {out}/results.json")
    return results


if __name__ == "__main__":
    main()
