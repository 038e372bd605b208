"""tools/gpu_check.py runs on a GPU machine once; `--device cpu --smoke` runs the same code at toy sizes here."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_on_the_cpu_at_toy_sizes():
    run = subprocess.run([sys.executable, "tools/gpu_check.py", "--device", "cpu", "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    checks = {row["check"]: row for row in summary["checks"]}
    assert summary["ok"] and len(checks) == 26
    assert all(f"train {name} {p}" in checks for name in ("cpc-paper", "cpc-base", "cpc-video", "cpc-logmel",
                                                          "simclr", "moco", "byol", "barlow") for p in ("bf16", "fp16"))
    assert checks["g_ar output dtype (bf16)"]["result"] == "float32"
    assert checks["resume, then cpc.load without a GPU"]["result"].endswith("cpu")
