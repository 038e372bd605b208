"""Feature extraction speed: audio-seconds per wall-second (x real time) for the 256-channel models, 2 threads,
batches of 10 s utterances: fp32, bf16 autocast, the int8 encoder (with fp32 or bf16 g_ar; BatchNorm encoders
only), and chunked-stream extraction (4 s chunks). Modes alternate call by call (A B C A B C) so drift hits all alike.

    python tools/bench_extract.py

`--long`: memory and speed of extracting one long recording, what `cpc extract RUN file.wav OUT` does (the same
library calls: read_files, extract_corpus, save_npy) with the `base` model, for each of `--minutes` (1, 10, 40)
in its own process, so the peak RSS (ru_maxrss) is that length's own; x real time counts the extraction only,
not the imports, per wall-second and per CPU-second of the process (what a shared core does not distort). The recordings are synthetic (speech-band noise), written in blocks to a temporary folder.
`--chunk-seconds 0` measures whole-file encoding instead (the default before streaming; memory grows with length).

    taskset -c 0 python tools/bench_extract.py --long --threads 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from cpc.eval.features import LONG_SECONDS, extract_batch, extract_chunked
from cpc.models.cpc import CPCModel, cpc_base_config
from cpc.models.int8 import int8_model
from timing import interleaved_best_of  # tools/timing.py: scripts here run with tools/ on sys.path

MODES = ("fp32", "bf16", "int8 + fp32", "int8 + bf16", "stream 4 s fp32", "stream int8+bf16")


ONE_LENGTH = """
import json, resource, sys, time
import numpy as np, torch
from cpc.data.stages import SkipCounter
from cpc.data.ingest import items_from_path
from cpc.eval.features import extract_corpus, read_files, save_npy
from cpc.models.cpc import CPCModel, cpc_base_config

path, out, chunk, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = CPCModel(cpc_base_config()).eval()
list(extract_corpus(model, [("warm-up", np.zeros(16000, np.float32))]))  # oneDNN picks its kernels once, not timed
start, cpu = time.perf_counter(), time.process_time()
skips = SkipCounter()
utterances = read_files(items_from_path(path), model.config.sample_rate, skips, long_samples=chunk)
for key, frames in extract_corpus(model, utterances, chunk_samples=chunk, skips=skips):
    save_npy(f"{out}/{key}.npy", frames)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "frames": len(np.load(f"{out}/{key}.npy", mmap_mode="r"))}))
"""


def synthetic_recording(path: Path, minutes: float, rate: int = 16000) -> None:
    """A long 16-bit WAV of speech-band noise with a syllable-rate envelope, written a minute at a time."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as file:
        for _ in range(round(minutes)):
            t = np.arange(60 * rate) / rate
            noise = np.convolve(rng.standard_normal(60 * rate), np.hanning(16) / 8, mode="same")
            file.write((0.1 * noise * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32))


def long_recordings(args) -> None:
    """Each length in its own process: x real time and peak RSS."""
    print(f"one recording per process, base model, {args.threads} thread(s), chunks of {args.chunk_seconds:g} s "
          "(0: whole file)")
    print(f"{'minutes':>8} {'x real time':>12} {'per CPU-s':>10} {'peak RSS':>10} {'frames':>9}")
    tools = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as scratch:
        for minutes in args.minutes:
            wav, out = Path(scratch) / f"long{minutes:g}.wav", Path(scratch) / f"out{minutes:g}"
            synthetic_recording(wav, minutes)
            out.mkdir()
            done = subprocess.run([sys.executable, "-c", ONE_LENGTH, str(wav), str(out),
                                   str(round(args.chunk_seconds * 16000)), str(args.threads)],
                                  cwd=tools.parent, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.splitlines()[-1])
            print(f"{minutes:>8g} {60 * minutes / result['seconds']:>11.1f}x "
                  f"{60 * minutes / result['cpu_seconds']:>9.1f}x {result['peak_rss'] / 1e9:>8.2f} GB "
                  f"{result['frames']:>9}", flush=True)
            wav.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long", action="store_true", help="peak RSS and speed of one long recording per length")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 40], help="--long: the lengths")
    parser.add_argument("--chunk-seconds", type=float, default=LONG_SECONDS, help="--long: as cpc extract's")
    parser.add_argument("--threads", type=int, default=2, help="--long: torch threads")
    args = parser.parse_args()
    if args.long:
        long_recordings(args)
        return
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
