"""The GPU check: what a first run on a GPU machine must show, in at most 5 minutes on one GPU.

    python tools/gpu_check.py                       # on a CUDA machine
    python tools/gpu_check.py --device cpu --smoke  # the same code at toy sizes on the CPU (a test runs this)

Checks, each one row of the table, then one JSON line with every figure:
- every method (CPC paper / base / video / log-mel regression, SimCLR, MoCo v2, BYOL, Barlow Twins) trains 15
  steps in bf16 and in fp16: finite losses, skipped steps counted (fp16's grad scaler may skip a few at first);
- g_ar's output dtype under autocast (cuDNN's RNN autocast would run GRU/LSTM in fp16 even under bf16);
- a sync audit of one training step (torch.cuda.set_sync_debug_mode): host syncs outside logging steps;
- model-bound throughput of CPC base at batch 64 and 256 x 20480 samples, audio-s/s and peak memory, with
  InfoNCE's dense and gather scoring;
- the reader with 0/4/8/12 worker processes and 4/8/12 reader threads against the model's need: data-bound or
  model-bound;
- the DDP code path at world 1 (NCCL on CUDA, gloo on CPU), forced by making the process group first;
- resume from a checkpoint written on this device, and cpc.load of it in a process that sees no GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from cpc import checkpoint  # noqa: E402
from cpc.losses import infonce  # noqa: E402
from cpc.recipe import build_method, data_loader, load_config  # noqa: E402
from cpc.train.trainer import Trainer, autocast_dtype  # noqa: E402

SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample" / "train"
# method -> overrides of the run; sizes are the GPU ones, `smoke` shrinks them.
METHODS = {
    "cpc-paper": ["cpc_preset=paper"],
    "cpc-base": ["cpc_preset=base"],
    "cpc-video": ["cpc_preset=video"],
    "cpc-logmel": ["cpc_preset=base", "cpc.model.regression_target=logmel", "cpc.regression_weight=0.1"],
    "simclr": ["method=simclr"],
    "moco": ["method=moco"],
    "byol": ["method=byol"],
    "barlow": ["method=barlow_twins"],
}


class Sizes:
    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.batch = 4 if smoke else 32
        self.window = 3200 if smoke else 20480
        self.video = (4, 8, 32, 32, 1) if smoke else (32, 16, 32, 32, 1)
        self.images = (4, 2, 3, 16, 16) if smoke else (128, 2, 3, 32, 32)
        self.steps = 6 if smoke else 15  # fp16: the grad scaler may skip the first steps (it starts at 2**16)
        self.throughput_batches = (2,) if smoke else (64, 256)
        self.throughput_window = 3200 if smoke else 20480
        self.workers = (0, 1) if smoke else (0, 4, 8, 12)
        self.image_overrides = ["data.size=16", "{m}.backbone.channels=[8,16]", "{m}.backbone.strides=[2,2]",
                                "{m}.proj_hidden=16", "{m}.proj_dim=8"] if smoke else ["{m}.backbone.arch=resnet18"]


def config_for(name: str, sizes: Sizes, out: Path, precision: str, device: str, steps: int):
    overrides = list(METHODS[name]) + [f"train.out={out}", f"train.steps={steps}", f"train.precision={precision}",
                                       f"train.device={device}", "train.progress=false", "train.log_every=1",
                                       f"train.checkpoint_every={steps}", "val_shards=", "optim.warmup_steps=0"]
    section = {"simclr": "simclr", "moco": "moco", "byol": "byol", "barlow": "barlow_twins"}.get(name)
    if section:
        overrides += [o.format(m=section) for o in sizes.image_overrides]
    if name == "cpc-base" and sizes.smoke or name in ("cpc-paper", "cpc-logmel") and sizes.smoke:
        overrides += ["cpc.model.encoder.channels=32", "cpc.model.ar.dim=32"]
    if name == "cpc-video":
        overrides += ["data.window=" + str(sizes.video[1])]
    if name.startswith("cpc") and name != "cpc-video":
        overrides += [f"data.window={sizes.window}"]
    return load_config(overrides=overrides)


def synthetic_batches(name: str, sizes: Sizes, count: int):
    g = torch.Generator().manual_seed(0)
    if name == "cpc-video":
        return [{"frames": torch.randint(0, 256, sizes.video, generator=g, dtype=torch.uint8)} for _ in range(count)]
    if name in ("simclr", "moco", "byol", "barlow"):
        return [{"views": torch.randn(sizes.images, generator=g)} for _ in range(count)]
    return [{"wav": torch.randn(sizes.batch, sizes.window, generator=g)} for _ in range(count)]


def log_values(out: Path, name: str) -> list[float]:
    lines = (out / "log.csv").read_text().splitlines()[1:]
    return [float(line.split(",")[3]) for line in lines if f",train,{name}," in line]


def fit(config, batches, resume: bool = False) -> dict:
    method = build_method(config)
    trainer = Trainer(method, lambda start, segment: iter(batches[start:]), config.optim, config.train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trainer.fit(resume=resume)


def check_methods(sizes: Sizes, device: str, tmp: Path, precisions: list[str]) -> list[dict]:
    rows = []
    for name in METHODS:
        for precision in precisions:
            out = tmp / f"{name}-{precision}"
            config = config_for(name, sizes, out, precision, device, sizes.steps)
            start = time.perf_counter()
            fit(config, synthetic_batches(name, sizes, sizes.steps))
            losses, skipped = log_values(out, "loss"), sum(log_values(out, "skipped_steps"))
            rows.append({"check": f"train {name} {precision}", "ok": len(losses) == sizes.steps
                         and all(math.isfinite(v) for v in losses) and skipped < sizes.steps,
                         "result": f"{sizes.steps} steps, last loss {losses[-1]:.3f}, skipped {skipped:.0f}, "
                                   f"{time.perf_counter() - start:.1f} s"})
    return rows


def check_ar_dtype(device: torch.device, precision: str) -> dict:
    from cpc.models.cpc import cpc_base

    model = cpc_base().to(device)
    dtype = autocast_dtype(precision, device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        c = model(torch.randn(2, 3200, device=device))["c"]
    return {"check": f"g_ar output dtype ({precision})", "ok": c.dtype in (torch.float32, dtype),
            "result": str(c.dtype).replace("torch.", "")}


def check_syncs(sizes: Sizes, device: torch.device, tmp: Path) -> dict:
    """One optimiser step (forward, backward, the trainer's update) under set_sync_debug_mode("warn")."""
    if device.type != "cuda":
        return {"check": "host syncs in one step", "ok": True, "result": "n/a on CPU"}
    config = config_for("cpc-base", sizes, tmp / "sync", "bf16", "cuda", 2)
    method = build_method(config).to(device)
    trainer = Trainer(method, None, config.optim, config.train)
    trainer.device = device
    from cpc.train.optim import build_optimiser

    optimiser = build_optimiser(method.param_groups(config.optim.weight_decay), config.optim)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    batch = {"wav": torch.randn(sizes.batch, sizes.window).pin_memory().to(device, non_blocking=True)}
    for audit in (False, True):  # the first step warms up (allocator, cuDNN choice)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn" if audit else "default")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss, _ = method.training_step(batch)
            loss.backward()
            trainer.update(optimiser, scaler)
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    return {"check": "host syncs in one step", "ok": not syncs, "result": f"{len(syncs)} sync(s)"
            + (f": {syncs[0][:80]}" if syncs else "")}


def check_throughput(sizes: Sizes, device: torch.device, tmp: Path) -> list[dict]:
    rows = []
    for batch in sizes.throughput_batches:
        for strategy, ratio in (("dense", 10**9), ("gather", 0)):
            saved = dict(infonce.DENSE_POOL_RATIO)
            infonce.DENSE_POOL_RATIO[device.type] = ratio
            try:
                config = config_for("cpc-base", sizes, tmp / f"tp{batch}{strategy}", "bf16" if device.type == "cuda"
                                    else "fp32", device.type, 4)
                method = build_method(config).to(device)
                from cpc.train.optim import build_optimiser

                optimiser = build_optimiser(method.param_groups(0.0), config.optim)
                wav = torch.randn(batch, sizes.throughput_window, device=device)
                dtype = autocast_dtype(config.train.precision, device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                seconds = []
                for step in range(4):
                    start = time.perf_counter()
                    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        loss, _ = method.training_step({"wav": wav})
                    loss.backward()
                    optimiser.step()
                    optimiser.zero_grad(set_to_none=True)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    seconds.append(time.perf_counter() - start)
                rate = batch * sizes.throughput_window / 16000 / min(seconds[1:])
                peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
                rows.append({"check": f"CPC base batch {batch} {strategy}", "ok": math.isfinite(loss.item()),
                             "result": f"{rate:.0f} audio-s/s, peak {peak:.2f} GiB", "audio_s_per_s": rate})
            except torch.OutOfMemoryError:
                rows.append({"check": f"CPC base batch {batch} {strategy}", "ok": False, "result": "out of memory"})
            finally:
                infonce.DENSE_POOL_RATIO.update(saved)
                torch.cuda.empty_cache() if device.type == "cuda" else None
    return rows


def check_loader(sizes: Sizes, need: float) -> list[dict]:
    rows = []
    runs = [("processes", w) for w in sizes.workers] + [("threads", w) for w in sizes.workers if w]
    for kind, workers in runs:
        config = load_config(overrides=["cpc_preset=base", f"data.shards={SAMPLE}", f"data.window={sizes.window}",
                                        f"data.batch_size={sizes.batch}", f"data.num_workers={workers}",
                                        f"data.workers={kind}"])
        loader = iter(data_loader(config, config.data.shards, True))
        for _ in range(5):
            next(loader)
        start, seconds = time.perf_counter(), 0.0
        for _ in range(40):
            seconds += next(loader)["wav"].numel() / 16000
        rate = seconds / (time.perf_counter() - start)
        bound = "data-bound" if rate < need else "model-bound"
        rows.append({"check": f"reader {workers} {kind if workers else 'workers'}", "ok": True,
                     "result": f"{rate:.0f} audio-s/s vs the model's {need:.0f}: {bound}", "audio_s_per_s": rate})
        del loader
    return rows


def check_ddp_world_one(sizes: Sizes, device: torch.device, tmp: Path) -> dict:
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{29400 + os.getpid() % 500}", rank=0,
                            world_size=1)
    try:
        config = config_for("cpc-base", sizes, tmp / "ddp", "bf16" if device.type == "cuda" else "fp32",
                            device.type, 3)
        last = fit(config, synthetic_batches("cpc-base", sizes, 3))
    finally:
        dist.destroy_process_group()
    return {"check": f"DDP code path, world 1 ({backend})", "ok": math.isfinite(last["loss"]),
            "result": f"loss {last['loss']:.3f}"}


def check_resume_and_cpu_load(sizes: Sizes, device: torch.device, tmp: Path) -> dict:
    out = tmp / "resume"
    precision = "bf16" if device.type == "cuda" else "fp32"
    batches = synthetic_batches("cpc-base", sizes, 4)
    fit(config_for("cpc-base", sizes, out, precision, device.type, 2), batches)
    fit(config_for("cpc-base", sizes, out, precision, device.type, 4), batches, resume=True)
    step = checkpoint.read(out)["step"]
    script = ("import torch, cpc; m = cpc.load(%r); print(tuple(m(torch.randn(1, 3200))['c'].shape), "
              "next(m.parameters()).device)" % str(out))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    ok = step == 4 and loaded.returncode == 0 and "cpu" in loaded.stdout
    return {"check": "resume, then cpc.load without a GPU", "ok": ok,
            "result": f"step {step}; " + (loaded.stdout.strip() or loaded.stderr.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--smoke", action="store_true", help="toy sizes (CPU test of this script)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible; use --device cpu --smoke")
    sizes = Sizes(args.smoke)
    precisions = ["bf16", "fp16"]
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows += check_methods(sizes, args.device, tmp, precisions)
        rows += [check_ar_dtype(device, p) for p in precisions]
        rows.append(check_syncs(sizes, device, tmp))
        throughput = check_throughput(sizes, device, tmp)
        rows += throughput
        need = max((r.get("audio_s_per_s", 0) for r in throughput), default=0)
        rows += check_loader(sizes, need)
        rows.append(check_ddp_world_one(sizes, device, tmp))
        rows.append(check_resume_and_cpu_load(sizes, device, tmp))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{'check':<42} {'ok':<4} result   ({name}, torch {torch.__version__})")
    for row in rows:
        print(f"{row['check']:<42} {'yes' if row['ok'] else 'NO':<4} {row['result']}")
    summary = {"device": name, "torch": torch.__version__, "seconds": round(time.perf_counter() - started, 1),
               "ok": all(r["ok"] for r in rows), "checks": rows}
    print(json.dumps(summary))
    if not summary["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
