"""Benchmark one full CPC training step (forward, backward, Adam): audio-seconds per second, ms per step, peak RSS.

Each configuration runs in a fresh subprocess so its peak RSS is its own. Defaults follow the benchmark protocol of docs/performance.md:
batch 8 x 20480 samples, K = 12, N = 128 batch negatives, 2 threads.

    python tools/bench_train.py                      # the three configurations, fp32
    python tools/bench_train.py --bf16               # the same under CPU bf16 autocast
    python tools/bench_train.py --only base --steps 20
    python tools/bench_train.py --only shipped --only logmel --threads 1   # the log-mel front end vs raw audio
    python tools/bench_train.py --compare-loss 150   # fp32 vs bf16 training curves on toy audio
    python tools/bench_train.py --malloc-trim-mb 8   # glibc returns freed blocks: less RSS, slower (README)

Peak RSS includes a floor no trainer avoids: importing torch (0.52 GB for the CUDA build here) and constructing a
torch.optim optimiser, which imports torch._dynamo (another 0.16 GB). "step" is the peak minus that floor.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONFIGS = {
    # name: (preset, changes to the model config)
    "paper": ("paper", {}),
    "base": ("base", {}),
    "linear256": ("base", {"norm": "batch", "predictor": "linear"}),  # CPC_audio's 256-ch linear-head setup
    "shipped": ("base", {"channels": 128, "ar": "gru", "predictor": "linear"}),  # recipes/demo/cpc_shipped.yaml
    "logmel": ("logmel", {}),  # the log-mel front end, sized as the shipped model
}
DEFAULT = ("paper", "base", "linear256")


def current_rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e9


def build_method(name: str):
    from cpc.methods import CPCMethod, cpc_preset

    preset, changes = CONFIGS[name]
    config = cpc_preset(preset)
    if "norm" in changes:
        config.model.encoder.norm = changes["norm"]
    if "predictor" in changes:
        config.model.predictor.kind = changes["predictor"]
    if "channels" in changes:
        config.model.encoder.channels = changes["channels"]
    if "ar" in changes:
        config.model.ar.kind = changes["ar"]
    return CPCMethod(config)


def compare_loss(name: str, steps: int, threads: int) -> None:
    """Train the same initial model on the same toy batches in fp32 and under bf16 autocast; print both curves."""
    import torch

    from cpc.data.synthetic import sinusoid_batch

    torch.set_num_threads(threads)
    curves = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        method = build_method(name)
        optimiser = torch.optim.Adam(method.parameters(), lr=5e-4)
        g = torch.Generator().manual_seed(0)
        curve = []
        for _ in range(steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, logs = method.training_step({"wav": sinusoid_batch(8, 20480, generator=g)})
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            curve.append((loss.item(), logs["accuracy"].item()))
        curves["bf16" if bf16 else "fp32"] = curve
    print(f"{name}: InfoNCE loss / accuracy on toy sinusoids, batch 8 x 20480, Adam 5e-4")
    for i in range(0, steps, max(1, steps // 10)):
        (l32, a32), (l16, a16) = curves["fp32"][i], curves["bf16"][i]
        print(f"step {i:4d}   fp32 {l32:.3f} / {a32:.3f}   bf16 {l16:.3f} / {a16:.3f}")


def run_one(name: str, steps: int, warmup: int, batch: int, samples: int, threads: int, bf16: bool,
            trim_mb: float) -> dict:
    import torch

    from cpc.train.allocator import limit_allocator_slack

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    method = build_method(name)
    optimiser = torch.optim.Adam(method.parameters(), lr=2e-4)
    floor_gb = current_rss_gb()
    limit_allocator_slack(trim_mb)  # what the Trainer does (train.malloc_trim_mb)
    wav = torch.randn(batch, samples)
    losses, times = [], []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = method.training_step({"wav": wav})
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            losses.append(loss.item())
    step_s = sorted(times)[len(times) // 2]  # median: robust to a noisy neighbour
    return {
        "config": name,
        "params_M": sum(p.numel() for p in method.parameters()) / 1e6,
        "ms_per_step": 1000 * step_s,
        "audio_s_per_s": batch * samples / 16000 / step_s,
        "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "floor_GB": floor_gb,
        "mean_loss": sum(losses) / len(losses),
        "bf16": bf16,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=20480)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="CPU bf16 autocast")
    parser.add_argument("--malloc-trim-mb", type=float, default=0.0, help="as train.malloc_trim_mb (0: glibc default)")
    parser.add_argument("--compare-loss", type=int, metavar="STEPS", help="fp32 vs bf16 loss curves on toy audio")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare_loss:
        for name in args.only or ["linear256"]:
            compare_loss(name, args.compare_loss, args.threads)
        return
    if args.child:
        result = run_one(args.child, args.steps, args.warmup, args.batch, args.samples, args.threads, args.bf16,
                         args.malloc_trim_mb)
        print(json.dumps(result))
        return
    print(f"batch {args.batch} x {args.samples} samples, K=12, N=128, {args.threads} threads, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}, median of {args.steps} steps, malloc trim "
          f"{args.malloc_trim_mb:g} MB")
    print(f"{'config':<10} {'params':>8} {'ms/step':>9} {'audio-s/s':>10} {'peak RSS':>9} {'floor':>6} {'step':>6}")
    for name in args.only or DEFAULT:
        command = [sys.executable, __file__, "--child", name] + [
            f"--{k}={v}" for k, v in (("steps", args.steps), ("warmup", args.warmup), ("batch", args.batch),
                                      ("samples", args.samples), ("threads", args.threads),
                                      ("malloc-trim-mb", args.malloc_trim_mb))
        ] + (["--bf16"] if args.bf16 else [])
        r = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(f"{name:<10} {r['params_M']:>7.1f}M {r['ms_per_step']:>9.0f} {r['audio_s_per_s']:>10.1f} "
              f"{r['peak_rss_GB']:>8.2f}G {r['floor_GB']:>5.2f}G {r['peak_rss_GB'] - r['floor_GB']:>5.2f}G")


if __name__ == "__main__":
    main()
