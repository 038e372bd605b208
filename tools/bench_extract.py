"""Feature extraction speed: audio-seconds per wall-second (x real time) for the 256-channel models, 2 threads,
batches of 10 s utterances, fp32 and bf16 autocast; whole-batch and chunked-stream extraction.

    python tools/bench_extract.py
"""

from __future__ import annotations

import argparse

import torch

from cpc.features import extract_batch, extract_chunked
from cpc.models.cpc import CPCModel, cpc_base_config
from timing import best_of  # tools/timing.py: scripts here run with tools/ on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    configs = {"base (channel norm, LSTM)": cpc_base_config()}
    linear = cpc_base_config()
    linear.encoder.norm, linear.predictor.kind = "batch", "linear"
    configs["linear256 (BatchNorm, LSTM)"] = linear
    wavs = [torch.randn(int(args.seconds * 16000)) for _ in range(args.batch)]
    audio = args.batch * args.seconds
    print(f"{args.batch} utterances x {args.seconds:.0f} s, 2 threads, best of {args.repeats}; x real time")
    print(f"{'model':<28} {'batched fp32':>13} {'batched bf16':>13} {'stream 4 s fp32':>16}")
    for name, config in configs.items():
        model = CPCModel(config).eval()
        fp32 = best_of(lambda: extract_batch(model, wavs), args.repeats)

        def bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                extract_batch(model, wavs)

        half = best_of(bf16, args.repeats)
        stream = best_of(lambda: extract_chunked(model, wavs[0], 4 * 16000), args.repeats)
        print(f"{name:<28} {audio / fp32:>12.0f}x {audio / half:>12.0f}x {args.seconds / stream:>15.0f}x")


if __name__ == "__main__":
    main()
