"""Feature extraction speed: audio-seconds per wall-second (x real time) for the 256-channel models, 2 threads,
batches of 10 s utterances: fp32, bf16 autocast, the int8 encoder (with fp32 or bf16 g_ar; BatchNorm encoders
only), and chunked-stream extraction (4 s chunks). Modes alternate call by call (A B C A B C) so drift hits all alike.

    python tools/bench_extract.py
"""

from __future__ import annotations

import argparse

import torch

from cpc.eval.features import extract_batch, extract_chunked
from cpc.models.cpc import CPCModel, cpc_base_config
from cpc.models.int8 import int8_model
from timing import interleaved_best_of  # tools/timing.py: scripts here run with tools/ on sys.path

MODES = ("fp32", "bf16", "int8 + fp32", "int8 + bf16", "stream 4 s fp32", "stream int8+bf16")


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
    print(f"{'model':<28}" + "".join(f"{mode:>17}" for mode in MODES))
    for name, config in configs.items():
        model = CPCModel(config).eval()
        calls = {"fp32": lambda: extract_batch(model, wavs), "bf16": lambda: extract_batch(model, wavs, "c", "bf16")}
        if config.encoder.norm == "batch":
            quantized = int8_model(model, wavs[:2])
            calls["int8 + fp32"] = lambda: extract_batch(quantized, wavs)
            calls["int8 + bf16"] = lambda: extract_batch(quantized, wavs, "c", "bf16")
        calls["stream 4 s fp32"] = lambda: extract_chunked(model, wavs[0], 4 * 16000)
        if config.encoder.norm == "batch":
            calls["stream int8+bf16"] = lambda: extract_chunked(quantized, wavs[0], 4 * 16000, "c", "bf16")
        seconds = interleaved_best_of(calls, args.repeats)
        audio_of = {mode: args.seconds if mode.startswith("stream") else audio for mode in MODES}
        print(f"{name:<28}" + "".join(f"{audio_of[m] / seconds[m]:>16.0f}x" if m in seconds else f"{'n/a':>17}"
                                      for m in MODES))


if __name__ == "__main__":
    main()
