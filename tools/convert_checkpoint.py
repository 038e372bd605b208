"""Convert a checkpoint written by cpc 0.1 to today's layout, which `cpc.load` reads safely (weights_only):
adds the model's own config (`model_config`), stores random states as tensors and plain containers, and moves
renamed config keys (data.sample_rate -> cpc.model.sample_rate, train.num_workers -> data.num_workers).

    python tools/convert_checkpoint.py runs/old/step-00001000.pt            # in place (a .bak copy is kept)
    python tools/convert_checkpoint.py OLD.pt --out NEW.pt

Only convert files you wrote yourself: reading the old layout unpickles arbitrary objects, which can run code.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from cpc import checkpoint  # noqa: E402
from cpc.recipe import build_method, load_config  # noqa: E402


def modern_config(config: dict) -> dict:
    """A 0.1 run config with its renamed keys moved."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    data, train = config.setdefault("data", {}), config.setdefault("train", {})
    rate = data.pop("sample_rate", None)
    data.pop("hop", None)  # now the product of the encoder's strides
    if rate is not None and config.get("method", "cpc") == "cpc":
        model = config.setdefault("cpc", {}).setdefault("model", {})
        model.setdefault("sample_rate", rate)
    workers = train.pop("num_workers", None)
    if workers:
        data["num_workers"] = max(workers, data.get("num_workers", 0))
    return config


def safe_rng(states: dict) -> dict:
    """0.1's numpy/python states (a tuple holding an ndarray) -> the tensor form `checkpoint.restore_rng` reads."""
    with torch.random.fork_rng(devices=[]):
        saved = np.random.get_state(), random.getstate()
        np.random.set_state(states["numpy"])
        random.setstate(states["python"])
        torch.set_rng_state(states["torch"])
        converted = checkpoint.rng_states()
        np.random.set_state(saved[0])
        random.setstate(saved[1])
    return converted


def convert(state: dict) -> dict:
    config = modern_config(state["config"])
    method = build_method(load_config(data=config))
    state = dict(state, config=config)
    exported = method.exported
    state["model_config"] = checkpoint.model_record(getattr(method, exported), prefix=f"{exported}.")
    if "rng" in state:
        state["rng"] = [safe_rng(s) if isinstance(s.get("numpy"), tuple) else s for s in state["rng"]]
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint file written by cpc 0.1")
    parser.add_argument("--out", help="where to write the converted file (default: in place, keeping a .bak)")
    args = parser.parse_args()
    source = Path(args.checkpoint)
    state = torch.load(source, map_location="cpu", weights_only=False)  # the user vouches for this file
    if "model_config" in state:
        print(f"{source} is already in today's layout")
        return
    converted = convert(state)
    target = Path(args.out) if args.out else source
    if target == source:
        shutil.copy2(source, source.with_suffix(source.suffix + ".bak"))
    torch.save(converted, target)
    checkpoint.load(target)  # proves the result loads safely
    print(f"wrote {target} ({converted['model_config']['class']}, step {converted.get('step')})")


if __name__ == "__main__":
    main()
