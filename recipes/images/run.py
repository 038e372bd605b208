"""The four image baselines on real handwritten digits, on CPU: make the shards (if missing), pretrain SimCLR,
MoCo v2, BYOL and Barlow Twins with recipes/images/mnist.yaml through the one trainer, then kNN (k 200, T 0.1) and
a linear probe on frozen backbone features of the 1,000 held-out digits, against the random-init backbone.

    python recipes/images/run.py                  # 300 steps each
    python recipes/images/run.py --steps 0        # probes of existing runs
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
from cpc.checkpoint import load  # noqa: E402
from cpc.data.labelled import load_images  # noqa: E402
from cpc.eval.probes import ProbeConfig, image_probes  # noqa: E402
from cpc.methods import METHODS  # noqa: E402
from cpc.recipe import build_method, load_config, pretrain  # noqa: E402

IMAGE_METHODS = [name for name in METHODS if name != "cpc"]

RECIPE = ROOT / "recipes" / "images" / "mnist.yaml"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/mnist_digits")
    parser.add_argument("--steps", type=int, default=300, help="pretraining steps per method (0: probe existing runs)")
    parser.add_argument("--methods", nargs="+", default=list(IMAGE_METHODS), choices=list(IMAGE_METHODS))
    parser.add_argument("--out", default="runs/images")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    data, out = Path(args.data), Path(args.out)
    if not (data / "train" / "index.json").exists():
        subprocess.run([sys.executable, str(ROOT / "datasets" / "mnist_digits" / "make_shards.py"), "--out",
                        str(data)], check=True)
    train, test = load_images(data / "train"), load_images(data / "test")
    probe = ProbeConfig(epochs=50, batch_size=128, lr=1e-3)
    rows, results = [], {}
    for method in args.methods:
        overrides = [f"method={method}", f"train.out={out / method}", f"data.shards={data / 'train'}"]
        if args.steps:
            overrides.append(f"train.steps={args.steps}")
            print(f"pretraining {method} for {args.steps} steps", flush=True)
            pretrain(load_config(RECIPE, overrides), overwrite=True)  # the script owns its run folders
        results[method] = image_probes(load(out / method), train, test, probe)
        rows.append(f"| {method:<22} | {100 * results[method]['knn']:5.1f} | {100 * results[method]['linear']:5.1f} |")
        print(rows[-1], flush=True)
    torch.manual_seed(0)
    random = build_method(load_config(RECIPE, ["method=simclr"])).backbone
    results["random init"] = image_probes(random, train, test, probe)
    rows.append(f"| {'random init':<22} | {100 * results['random init']['knn']:5.1f} | "
                f"{100 * results['random init']['linear']:5.1f} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print("\n| backbone features      | kNN % | linear % |\n|---|---|---|\n" + "\n".join(rows))
    print(f"\n{len(test[1])} held-out digits, 10 classes; numbers: {out}/results.json")
    return results


if __name__ == "__main__":
    main()
