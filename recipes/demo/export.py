"""Export a run's newest checkpoint as a small, model-only checkpoint that `cpc.load` reads.

    python recipes/demo/export.py runs/shipped_cpc recipes/demo/cpc_shipped.pt
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
from cpc.checkpoint import read  # noqa: E402

if __name__ == "__main__":
    run, target = sys.argv[1], sys.argv[2]
    state = read(run)
    torch.save({k: state[k] for k in ("model", "model_config", "config", "step", "version")}, target)
    print(f"{target}: step {state['step']}, {Path(target).stat().st_size / 1e6:.1f} MB")
