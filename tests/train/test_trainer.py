import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import cpc
from cpc import checkpoint
from cpc.errors import Interrupted, Preempted, UserError
from cpc.train.optim import OptimConfig
from cpc.train.trainer import TrainConfig, Trainer

from .helpers import global_batches, parameters, regression_method

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample"


def quiet(out, **changes):
    # On the CPU even where a GPU is present: the tolerances and the DDP (gloo) cases are CPU ones.
    defaults = dict(steps=4, out=str(out), checkpoint_every=100, log_every=1, progress=False, device="cpu")
    return TrainConfig(**{**defaults, **changes})


def fit(method, batches, out, optim=OptimConfig(lr=1e-2), **changes):
    trainer = Trainer(method, lambda start, segment: iter(batches[start:]), optim, quiet(out, **changes))
    return trainer.fit()


def test_gradient_accumulation_equals_the_whole_batch(tmp_path):
    whole = regression_method()
    fit(whole, global_batches(3), tmp_path / "a", steps=3)
    halves = [{"wav": b["wav"][i : i + 2]} for b in global_batches(3) for i in (0, 2)]
    accumulated = regression_method()
    fit(accumulated, halves, tmp_path / "b", optim=OptimConfig(lr=1e-2, accumulate=2), steps=3)
    for name, value in parameters(whole).items():
        assert torch.allclose(value, parameters(accumulated)[name], atol=1e-6), name


def ddp_worker(rank, world, port, out, results, init_from=""):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    method = regression_method(seed=rank if init_from else 0)  # from a checkpoint, the ranks start apart
    shards = [{"wav": b["wav"][rank::world]} for b in global_batches(3)]  # each rank holds half of every batch
    fit(method, shards, out, steps=3, init_from=init_from)
    if rank == 0:
        results["params"] = parameters(method)


@pytest.mark.parametrize("start", ["fresh", "init_from"])
def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tmp_path, start):
    init_from = ""
    if start == "init_from":  # only rank 0 reads the file; every rank must train from its weights
        fit(regression_method(seed=5), global_batches(1), tmp_path / "first", steps=1)
        init_from = str(tmp_path / "first")
    single = regression_method()
    fit(single, global_batches(3), tmp_path / "single", steps=3, init_from=init_from)
    results = mp.Manager().dict()
    port = 29500 + os.getpid() % 1000
    mp.spawn(ddp_worker, args=(2, port, str(tmp_path / "ddp"), results, init_from), nprocs=2, join=True)
    for name, value in parameters(single).items():  # gloo sums in another order: float tolerance
        assert torch.allclose(value, results["params"][name], atol=1e-5), name
    assert [p.name for p in checkpoint.checkpoints(tmp_path / "ddp")] == ["step-00000003.pt"]  # rank 0 only


def test_non_finite_gradients_skip_the_step_on_the_device_then_stop_the_run(tmp_path):
    batches = global_batches(5)
    poisoned = list(batches)
    poisoned[1] = {"wav": torch.full_like(batches[1]["wav"], float("nan"))}
    skipped = regression_method()
    with pytest.warns(RuntimeWarning, match=r"1 step\(s\) up to step 2 had non-finite gradients and were skipped"):
        fit(skipped, poisoned, tmp_path / "a", steps=4)
    # A skipped step changes nothing (weights, Adam's moments and step count): the run equals one without it.
    without = regression_method()
    fit(without, batches[:1] + batches[2:], tmp_path / "b", steps=3)
    for name, value in parameters(without).items():
        assert torch.equal(value, parameters(skipped)[name]), name
    all_bad = [{"wav": torch.full_like(b["wav"], float("nan"))} for b in batches]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="3 steps in a row with non-finite gradients by step 3"):
            fit(regression_method(), all_bad, tmp_path / "c", steps=4, max_bad_steps=3)


def cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "cpc.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


RESUME_SETTINGS = [
    "--set", "cpc_preset=small", "--set", "data.window=3200", "--set", "data.batch_size=4",
    "--set", f"data.shards={SAMPLE / 'train'}", "--set", "val_shards=", "--set", "optim.warmup_steps=2", "--set", "optim.schedule=constant",
    "--set", "train.checkpoint_every=3", "--set", "train.progress=false", "--set", "train.log_every=1",
    "--set", "train.device=cpu",
]


def test_exact_resume_after_sigkill(tmp_path):
    straight = cli("pretrain", "recipes/demo/cpc.yaml", *RESUME_SETTINGS, "--set", "train.steps=6",
                   "--set", f"train.out={tmp_path / 'straight'}")
    assert straight.wait(timeout=240) == 0, straight.stdout.read()
    # Same recipe (constant lr after warm-up, so the total does not matter), run long; SIGKILL (no clean exit) as soon as the step-3 checkpoint exists, then resume to 6.
    killed = cli("pretrain", "recipes/demo/cpc.yaml", *RESUME_SETTINGS, "--set", "train.steps=1000",
                 "--set", f"train.out={tmp_path / 'killed'}")
    deadline = time.time() + 240
    while checkpoint.latest(tmp_path / "killed") is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert checkpoint.latest(tmp_path / "killed").name == "step-00000003.pt"
    resumed = cli("pretrain", "recipes/demo/cpc.yaml", *RESUME_SETTINGS, "--set", "train.steps=6",
                  "--set", f"train.out={tmp_path / 'killed'}", "--resume")
    assert resumed.wait(timeout=240) == 0, resumed.stdout.read()
    a, b = checkpoint.read(tmp_path / "straight"), checkpoint.read(tmp_path / "killed")
    assert a["step"] == b["step"] == 6
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name


def test_cli_pretrains_on_the_bundled_corpus_and_load_rebuilds_the_model(tmp_path):
    out = tmp_path / "run"
    run = cli("pretrain", "recipes/demo/cpc.yaml", "--set", "train.steps=4", "--set", "train.checkpoint_every=2",
              "--set", "train.validate_every=2", "--set", "train.validation_batches=2", "--set", f"train.out={out}",
              "--set", "data.window=3200", "--set", "train.progress=false")
    output = run.communicate(timeout=240)[0]
    assert run.returncode == 0, output
    assert {p.name for p in out.iterdir()} >= {"step-00000002.pt", "step-00000004.pt", "log.csv", "curves.png"}
    log = (out / "log.csv").read_text()
    assert "val,loss_k1" in log and "train,audio-s/s" in log
    model = cpc.load(out)
    state = checkpoint.read(out)["model"]
    assert all(torch.equal(v, state[f"model.{k}"]) for k, v in model.state_dict().items())
    assert not model.training and model(torch.randn(1, 3200))["c"].shape == (1, 20, 64)


def test_bf16_autocast_on_cpu_trains(tmp_path):
    method = regression_method()
    before = parameters(method)
    last = fit(method, global_batches(3), tmp_path, steps=3, precision="bf16")
    assert math.isfinite(last["loss"])
    assert any(not torch.equal(v, parameters(method)[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        fit(regression_method(), global_batches(2), tmp_path / "b", steps=1, precision="fp8")


def test_compiled_networks_train_like_eager_ones(tmp_path):
    eager, compiled = regression_method(), regression_method()
    fit(eager, global_batches(2), tmp_path / "eager", steps=2)
    fit(compiled, global_batches(2), tmp_path / "compiled", steps=2, compile=True)
    for name, value in parameters(eager).items():
        assert torch.allclose(value, parameters(compiled)[name], atol=1e-4), name


def test_fp16_autocast_trains_the_log_mel_regression_with_finite_losses(tmp_path):
    """Mel power of ordinary speech-level input exceeds fp16's 65,504: the target is computed in float32 outside
    autocast, so fp16 training (with its grad scaler) has finite losses and skips no step."""
    method = regression_method()
    batches = [{"wav": b["wav"] * (torch.arange(b["wav"].shape[1]) < 200)} for b in global_batches(4)]
    # Sound, then silence (as in speech): standardised, the sound is loud and its mel power overflows fp16.
    prepared = method.model.prepare(batches[0]["wav"])
    assert method.model.logmel.transform[0](prepared).max() > torch.finfo(torch.float16).max
    before = {k: v.detach().clone() for k, v in method.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scaler's first steps may overflow (it starts at 2**16): skipped
        last = fit(method, batches * 2, tmp_path, steps=8, precision="fp16")
    losses = [float(line.split(",")[3]) for line in (tmp_path / "log.csv").read_text().splitlines()[1:]
              if ",train,loss," in line]
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses), losses
    assert all(torch.isfinite(p).all() and not torch.equal(p, before[k]) for k, p in method.named_parameters())


@pytest.mark.parametrize("first, then", [("fp32", "fp16"), ("fp16", "fp32")])
def test_resuming_in_another_precision_starts_or_drops_the_grad_scaler(tmp_path, first, then):
    batches = global_batches(3)
    method = regression_method()
    Trainer(method, lambda start, segment: iter(batches[start:]), OptimConfig(lr=1e-2),
            quiet(tmp_path, steps=2, precision=first, checkpoint_every=2)).fit()
    resumed = regression_method()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        last = Trainer(resumed, lambda start, segment: iter(batches[start:]), OptimConfig(lr=1e-2),
                       quiet(tmp_path, steps=3, precision=then, checkpoint_every=2)).fit(resume=True)
    assert checkpoint.read(tmp_path)["step"] == 3 and math.isfinite(last["loss"])


def test_a_run_that_fails_before_its_first_step_closes_its_log_and_does_not_block_the_folder(tmp_path):
    trainer = Trainer(regression_method(), lambda start, segment: iter([{"wav": torch.zeros(2, 100)}]),
                      OptimConfig(), quiet(tmp_path))
    with pytest.raises(ValueError, match="prediction steps need at least"):
        trainer.fit()
    assert trainer.runlog.stream.closed and (tmp_path / "log.csv").read_text() == "step,split,name,value\n"
    last = fit(regression_method(), global_batches(2), tmp_path, steps=2)  # not refused: nothing was logged
    assert math.isfinite(last["loss"])


@pytest.mark.parametrize("name, error, status", [("SIGUSR1", Preempted, 75), ("SIGTERM", Preempted, 75),
                                                 ("SIGINT", Interrupted, 130)])
def test_a_stop_signal_mid_step_saves_that_step_releases_the_folder_and_restores_the_handlers(tmp_path, name, error,
                                                                                              status):
    batches = global_batches(6)

    def stream(start, segment):
        for index, batch in enumerate(batches[start:], start):
            if index == 2:  # while step 3 runs: the run stops after it
                os.kill(os.getpid(), getattr(signal, name))
            yield batch

    before = signal.getsignal(getattr(signal, name))
    trainer = Trainer(regression_method(), stream, OptimConfig(lr=1e-2), quiet(tmp_path, steps=6))
    with pytest.raises(error) as stopped:
        trainer.fit()
    assert type(stopped.value) is error and stopped.value.exit_status == status
    assert str(stopped.value).startswith("interrupted at step 3;" if name == "SIGINT" else f"stopped by {name} at "
                                         "step 3;")
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["step-00000003.pt"]
    assert not (tmp_path / "run.lock").exists() and signal.getsignal(getattr(signal, name)) is before


def test_a_second_ctrl_c_stops_at_once_and_still_releases_the_folder(tmp_path):
    def stream(start, segment):
        for index, batch in enumerate(global_batches(6)[start:], start):
            if index == 2:
                os.kill(os.getpid(), signal.SIGINT)  # the first asks for a stop at the step boundary
                os.kill(os.getpid(), signal.SIGINT)  # the second stops mid-step
            yield batch

    with pytest.raises(KeyboardInterrupt):
        Trainer(regression_method(), stream, OptimConfig(lr=1e-2), quiet(tmp_path, steps=6)).fit()
    assert not checkpoint.checkpoints(tmp_path) and not (tmp_path / "run.lock").exists()


def test_a_checkpoint_written_before_data_position_resumes_at_its_batch_and_segment(tmp_path):
    """A checkpoint holding the old `data_segment` key (and no `data_position`) resumes exactly: the stream restarts
    at step x accumulate batches with the recorded segment, not the segment of the new checkpoint_every."""
    batches = [{"wav": b["wav"][i : i + 2]} for b in global_batches(4) for i in (0, 2)]
    accumulate = OptimConfig(lr=1e-2, accumulate=2)
    asked = []

    def stream(start, segment):
        asked.append((start, segment))
        return iter(batches[start:])

    straight = regression_method()
    Trainer(straight, stream, accumulate, quiet(tmp_path / "straight", steps=4, checkpoint_every=2)).fit()
    assert checkpoint.read(tmp_path / "straight")["data_position"] == {"batch": 8, "segment": 4}
    Trainer(regression_method(), stream, accumulate, quiet(tmp_path / "old", steps=2, checkpoint_every=2)).fit()
    path = checkpoint.latest(tmp_path / "old")
    state = torch.load(path, weights_only=True)
    state["data_segment"] = state.pop("data_position")["segment"]  # the layout before the key had this name
    torch.save(state, path)
    resumed = regression_method()
    asked.clear()
    Trainer(resumed, stream, accumulate, quiet(tmp_path / "old", steps=4, checkpoint_every=1)).fit(resume=True)
    assert asked == [(4, 4)]
    assert checkpoint.read(tmp_path / "old")["data_position"] == {"batch": 8, "segment": 4}
    for name, value in parameters(straight).items():
        assert torch.equal(value, parameters(resumed)[name]), name


def test_init_from_starts_a_fresh_run_from_another_runs_weights(tmp_path):
    fit(regression_method(), global_batches(3), tmp_path / "first", steps=3)
    batches = global_batches(5)[3:]
    by_hand = regression_method(seed=1)
    by_hand.load_state_dict(checkpoint.read(tmp_path / "first")["model"])
    fit(by_hand, batches, tmp_path / "by_hand", steps=2)
    started = regression_method(seed=1)
    fit(started, batches, tmp_path / "started", steps=2, init_from=str(tmp_path / "first"))
    assert checkpoint.read(tmp_path / "started")["step"] == 2  # a fresh step count, not 3 + 2
    for name, value in parameters(by_hand).items():
        assert torch.equal(value, parameters(started)[name]), name


def test_init_from_a_checkpoint_of_another_architecture_names_what_differs(tmp_path):
    fit(regression_method(), global_batches(1), tmp_path / "first", steps=1)
    narrower = regression_method()
    del narrower.model.regressor  # the checkpoint holds a head this model does not have
    narrower.model.regressor = None
    expected = (f"train.init_from {tmp_path / 'first'}: its weights do not fit this model (2 differ, e.g. "
                "model.regressor.project.weight not in this model): start from a checkpoint of the same architecture "
                "(the same cpc.model settings, or fewer heads), or drop train.init_from")
    with pytest.raises(UserError) as refused:
        fit(narrower, global_batches(1), tmp_path / "second", steps=1, init_from=str(tmp_path / "first"))
    assert str(refused.value) == expected
    assert checkpoint.latest(tmp_path / "second") is None


def test_init_from_loads_what_the_checkpoint_has_and_a_new_head_keeps_its_initialisation(tmp_path, capsys):
    fit(regression_method(), global_batches(1), tmp_path / "first", steps=1)
    saved = checkpoint.read(tmp_path / "first")["model"]

    def headed():
        method = regression_method(seed=1)
        method.model.extra = torch.nn.Linear(2, 2)  # a module added for the new run (the loss leaves it alone)
        return method

    by_hand, started = headed(), headed()
    initial = parameters(started)["model.extra.weight"]
    assert by_hand.load_state_dict(saved, strict=False).missing_keys == ["model.extra.weight", "model.extra.bias"]
    fit(by_hand, global_batches(3)[1:], tmp_path / "by_hand", steps=2)
    capsys.readouterr()
    fit(started, global_batches(3)[1:], tmp_path / "started", steps=2, init_from=str(tmp_path / "first"))
    assert capsys.readouterr().out.startswith(
        f"initialised from {tmp_path / 'first' / 'step-00000001.pt'} (step 1); optimiser, schedule and data start "
        "anew; new, from their initialisation: model.extra\n")
    for name, value in parameters(by_hand).items():
        assert torch.equal(value, parameters(started)[name]), name
    assert torch.equal(started.model.extra.weight, initial)
