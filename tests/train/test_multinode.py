"""Two torchrun "nodes" on this machine (gloo), each with its own node-local train.out: pretraining with
validation (the test split is one shard, so rank 1 has no validation data at all), SIGKILL of both nodes, then
--resume on both. Rank 0 chooses the checkpoint and sends it to rank 1, whose folder holds none: the result is
bit-identical to an uninterrupted 2-node run."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from cpc import checkpoint

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample"
SETTINGS = [
    "--set", "cpc_preset=small", "--set", "data.window=3200", "--set", "data.batch_size=4",
    "--set", f"data.shards={SAMPLE / 'train'}", "--set", f"val_shards={SAMPLE / 'test'}",
    "--set", "optim.warmup_steps=2", "--set", "optim.schedule=constant",
    "--set", "train.checkpoint_every=3", "--set", "train.validate_every=2", "--set", "train.validation_batches=20",
    "--set", "train.progress=false", "--set", "train.log_every=1", "--set", "train.device=cpu",
]


def node(rank: int, port: int, out: Path, steps: int, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank),
               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
               "-m", "cpc.cli", "pretrain", "recipes/demo/cpc.yaml", *SETTINGS,
               "--set", f"train.steps={steps}", "--set", f"train.out={out}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process below it (torchrun starts its workers in sessions of their own)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    os.kill(pid, signal.SIGKILL)
    for child in children:
        kill_tree(int(child))


def run_nodes(port: int, outs: list[Path], steps: int, *extra: str) -> None:
    nodes = [node(rank, port, out, steps, *extra) for rank, out in enumerate(outs)]
    outputs = [n.communicate(timeout=300)[0] for n in nodes]
    for n, output in zip(nodes, outputs):
        assert n.returncode == 0, output


def validation_rows(out: Path) -> dict[int, dict[str, float]]:
    with open(out / "log.csv", newline="") as stream:
        rows = [r for r in csv.DictReader(stream) if r["split"] == "val"]
    steps: dict[int, dict[str, float]] = {}
    for row in rows:
        steps.setdefault(int(row["step"]), {})[row["name"]] = float(row["value"])
    return steps


def test_two_nodes_with_node_local_folders_resume_bit_identically_after_sigkill(tmp_path):
    port = 29800 + os.getpid() % 100
    straight = [tmp_path / "straight0", tmp_path / "straight1"]
    run_nodes(port, straight, 6)
    assert [p.name for p in checkpoint.checkpoints(straight[0])] == ["step-00000003.pt", "step-00000006.pt"]
    assert not straight[1].exists() or not any(straight[1].iterdir())  # only rank 0 writes
    logged = validation_rows(straight[0])
    assert sorted(logged) == [2, 4, 6] and all(v["samples"] == 80 for v in logged.values())  # 20 steps x 4 windows

    killed = [tmp_path / "killed0", tmp_path / "killed1"]
    nodes = [node(rank, port + 1, out, 1000) for rank, out in enumerate(killed)]
    try:
        deadline = time.time() + 300
        while checkpoint.latest(killed[0]) is None and time.time() < deadline:
            time.sleep(0.01)
    finally:  # never leave a 1000-step run behind, even when the test fails
        for n in nodes:
            kill_tree(n.pid)
            n.wait()
    assert checkpoint.latest(killed[0]).name == "step-00000003.pt"
    run_nodes(port + 2, killed, 6, "--resume")

    a, b = checkpoint.read(straight[0]), checkpoint.read(killed[0])
    assert a["step"] == b["step"] == 6
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    for (_, x), (_, y) in zip(sorted(a["optimiser"]["state"].items()), sorted(b["optimiser"]["state"].items())):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert validation_rows(killed[0]) == logged  # each (step, name) once, equal to the uninterrupted run's
