"""A 2-process torchrun run (gloo, one machine) stopped the ways a cluster stops it: SIGTERM to torchrun (what
SLURM, Kubernetes and a torchrun agent send), after which `--resume` continues; and a worker SIGKILLed under
`--max-restarts 1`, after which torchrun's restarted workers resume by themselves (`--resume` on a fresh folder
starts at step 0, so one command serves both starts). Both end bit-identical to an uninterrupted run. And the SLURM
script of recipes/slurm, with stand-ins for srun and scontrol: the time limit's warning checkpoints and requeues."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cpc import checkpoint

from .test_multinode import SETTINGS, kill_tree

ROOT = Path(__file__).resolve().parents[2]
STEPS = 10
# No validation (test_multinode covers it); a constant learning rate after warm-up, so train.steps may change.
QUICK = [arg for key, value in zip(SETTINGS[::2], SETTINGS[1::2])
         if not value.startswith(("val_shards=", "train.valid")) for arg in (key, value)] + ["--set", "val_shards=null"]


def torchrun(out: Path, steps: int, *extra: str, restarts: int = 0, share_store: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--max-restarts", str(restarts), "--monitor-interval", "0.1",
               "-m", "cpc.cli", "pretrain", "recipes/demo/cpc.yaml", *QUICK,
               "--set", f"train.steps={steps}", "--set", f"train.out={out}", *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                                 "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "0" if share_store else "1"})


def finish(run: subprocess.Popen) -> str:
    try:
        output = run.communicate(timeout=300)[0]
    except subprocess.TimeoutExpired:
        kill_tree(run.pid)
        pytest.fail(f"no end after 300 s: {run.communicate()[0]}")
    assert run.returncode == 0, output
    return output


def wait_for(condition, what: str, running: subprocess.Popen) -> None:
    deadline = time.time() + 300
    while not condition():
        if time.time() > deadline or running.poll() is not None:
            kill_tree(running.pid)
            pytest.fail(f"never saw {what}: {running.communicate()[0]}")
        time.sleep(0.01)


def assert_same_parameters(a: Path, b: Path) -> None:
    x, y = checkpoint.read(a), checkpoint.read(b)
    assert x["step"] == y["step"] == STEPS
    for name, value in x["model"].items():
        assert torch.equal(value, y["model"][name]), name


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    finish(torchrun(out, STEPS))
    return out


def test_sigterm_to_torchrun_checkpoints_one_step_of_every_rank_and_resume_is_exact(tmp_path, straight):
    out = tmp_path / "run"
    running = torchrun(out, 1000, "--resume")  # --resume on a fresh folder: starts at step 0
    log = out / "log.csv"
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) > 1, "a logged step", running)
    os.kill(running.pid, signal.SIGTERM)  # torchrun passes it on to both workers
    output = running.communicate(timeout=120)[0]
    stopped = re.findall(r"cpc pretrain: stopped by SIGTERM at step (\d+); checkpoint (\S+); continue with --resume "
                         r"\(exit status 75: requeue\)\n", output)
    assert len(stopped) == 1, output  # said once, by rank 0
    step = int(stopped[0][0])
    assert 1 <= step < STEPS and stopped[0][1] == str(out / f"step-{step:08d}.pt")
    assert checkpoint.read(out)["step"] == step and not (out / "run.lock").exists()
    assert len(checkpoint.read(out)["rng"]) == 2  # both ranks stopped at that step and saved their RNG states
    resumed = finish(torchrun(out, STEPS, "--resume"))
    assert f"resuming from {out / f'step-{step:08d}.pt'} (step {step})" in resumed
    assert_same_parameters(straight, out)


def rank_zero_worker(agent: int) -> int | None:
    """The pid of the worker torchrun (pid `agent`) started with RANK=0."""
    children = subprocess.run(["pgrep", "-P", str(agent)], capture_output=True, text=True).stdout.split()
    for child in children:
        try:
            environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"RANK=0" in environment:
            return int(child)
    return None


def test_a_worker_killed_mid_run_is_restarted_by_torchrun_and_resumes_exactly(tmp_path, straight):
    out = tmp_path / "run"
    running = torchrun(out, STEPS, "--resume", restarts=1)
    wait_for(lambda: checkpoint.latest(out) is not None, "the step-3 checkpoint", running)
    worker = rank_zero_worker(running.pid)
    lock = (out / "run.lock").read_text()
    assert f'"pid": {worker}' in lock  # rank 0 holds the folder's lock
    os.kill(worker, signal.SIGKILL)  # no clean exit: its lock stays behind
    output = finish(running)
    assert checkpoint.latest(out).name == f"step-{STEPS:08d}.pt"
    assert output.count("--resume: no checkpoint in") == 1  # the first start
    assert f"took over {out / 'run.lock'} from a run that is gone (host " in output  # the restart, same host
    assert re.search(rf"resuming from {re.escape(str(out))}/step-0000000[3-9]\.pt", output), output
    assert not (out / "run.lock").exists()
    assert_same_parameters(straight, out)


def test_the_slurm_script_passes_the_time_limit_warning_on_and_requeues_the_job(tmp_path):
    """recipes/slurm/pretrain.sbatch with stand-ins for srun (runs its command) and scontrol (logs requeues)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    stand_ins = {"srun": 'exec "$@"',
                 "scontrol": f'if [ "$1" = show ]; then echo localhost; else echo "$@" >> {tmp_path / "requeues"}; fi',
                 "torchrun": f'exec {sys.executable} -m torch.distributed.run "$@"'}
    for name, body in stand_ins.items():
        (bin_ / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_ / name).chmod(0o755)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"cpc_preset: small\ndata: {{shards: {ROOT / 'datasets/synthetic_speech/sample/train'}, "
                      "batch_size: 4, window: 3200}\n"
                      "train: {steps: 1000, log_every: 1, progress: false, device: cpu}\n")
    out = tmp_path / "run"
    environment = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
                   "RECIPE": str(recipe), "RUN": str(out), "SLURM_JOB_ID": "4711", "SLURM_JOB_NODELIST": "node1",
                   "SLURM_NNODES": "1", "SLURM_GPUS_PER_NODE": "2"}
    script = subprocess.Popen(["bash", "recipes/slurm/pretrain.sbatch"], cwd=ROOT, env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = out / "log.csv"
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) > 1, "a logged step", script)
    os.kill(script.pid, signal.SIGUSR1)  # what --signal=B:USR1@120 sends
    output = script.communicate(timeout=120)[0]
    stopped = re.findall(r"cpc pretrain: stopped by SIGUSR1 at step (\d+); checkpoint", output)
    assert len(stopped) == 1, output
    assert checkpoint.read(out)["step"] == int(stopped[0]) and not (out / "run.lock").exists()
    assert (tmp_path / "requeues").read_text() == "requeue 4711\n"
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE" not in output  # --max-restarts 3 with a store per round: no warning


def test_restarts_over_torchruns_shared_store_are_named_as_a_hazard(monkeypatch):
    from cpc.train.distributed import stale_store_hazard

    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "3")
    assert stale_store_hazard() == (
        "torchrun --max-restarts shares its rendezvous store with the workers, and a restarted group can read the "
        "addresses of the group before it and fail to connect: launch torchrun with "
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "0")  # no restarts: nothing stale to read
    assert stale_store_hazard() is None
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "3")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 at launch
    assert stale_store_hazard() is None
