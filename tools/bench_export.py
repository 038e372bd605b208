"""Streaming extraction speed of an ONNX export against torch's FeatureStream: audio-seconds per wall-second
(x real time) for the shipped checkpoint and the `base` preset, one thread each, chunks of --chunk-seconds fed
one by one as live audio would come. onnxruntime and torch calls alternate (A B A B) so drift hits both alike.

    OMP_NUM_THREADS=1 python tools/bench_export.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import cpc
from cpc.eval.export import OnnxFeatureStream, export_onnx, onnx_session
from cpc.eval.features import FeatureStream, utterance_stats
from cpc.models.cpc import CPCModel, cpc_base_config
from timing import interleaved_best_of  # tools/timing.py: scripts here run with tools/ on sys.path

SHIPPED = Path(__file__).resolve().parents[1] / "recipes" / "demo" / "cpc_shipped.pt"


def stream_all(stream, wav: np.ndarray, chunk: int) -> int:
    frames = sum(len(stream.push(wav[start : start + chunk])) for start in range(0, len(wav), chunk))
    return frames + len(stream.finish())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="audio streamed per timed call")
    parser.add_argument("--chunk-seconds", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = {"shipped (128-ch channel norm, GRU 256)": cpc.load(SHIPPED),
              "base (256-ch channel norm, LSTM 256)": CPCModel(cpc_base_config()).eval()}
    wav = (np.random.default_rng(0).standard_normal(int(args.seconds * 16000)) * 0.1).astype(np.float32)
    stats = utterance_stats(wav)
    print(f"{args.seconds:g} s streamed in {args.chunk_seconds:g} s chunks, 1 thread, best of {args.repeats}; "
          "x real time")
    print(f"{'model':<40}{'torch FeatureStream':>22}{'onnxruntime':>14}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for name, model in models.items():
            chunk = round(args.chunk_seconds * model.config.sample_rate)
            path = Path(folder) / "model.onnx"
            export_onnx(model, path, chunk)
            session = onnx_session(path, threads=1)  # made once, as a server would; a stream is its state only
            calls = {"torch": lambda: stream_all(FeatureStream(model, stats), wav, chunk),
                     "onnx": lambda: stream_all(OnnxFeatureStream(session, stats), wav, chunk)}
            best = interleaved_best_of(calls, args.repeats)
            speed = {mode: args.seconds / seconds for mode, seconds in best.items()}
            print(f"{name:<40}{speed['torch']:>21.0f}x{speed['onnx']:>13.0f}x{speed['onnx'] / speed['torch']:>8.2f}")


if __name__ == "__main__":
    main()
