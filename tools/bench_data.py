"""Benchmark the audio reader: window-audio-seconds delivered per CPU-second (workers' CPU included), from FLAC
shards (DataLoader worker processes, or reader threads: data.workers) vs from one FLAC file per utterance (decode
the whole file, crop one window), for 0, 1 and 2 workers;
and the reader's peak RSS over 1x vs 10x the shards.

    python tools/bench_data.py                 # builds a corpus from the bundled synthetic speech in a temp dir
    python tools/bench_data.py --batches 200

The corpus: the bundled sample's utterances concatenated into ~20 s recordings, copied until there are
`--utterances` of them, as FLAC files and as shards of the same audio.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample" / "train"
WINDOW = 20480


def build_corpus(folder: Path, utterances: int) -> None:
    from cpc.data.audio import AudioDataConfig, audio_stream
    from cpc.data.ingest import AudioItem
    from cpc.data.shards import audio_samples, write_shards

    speech = [b["wav"][0, : int(b["lengths"][0])].numpy()
              for b in audio_stream(AudioDataConfig(shards=str(SAMPLE), batch_size=1), False, windows=False, sample_rate=16000, hop=160)]
    rng = random.Random(0)
    files = folder / "files"
    files.mkdir(parents=True)
    items = []
    for i in range(utterances):
        pieces, total = [], 0
        while total < 20 * 16000:
            pieces.append(speech[rng.randrange(len(speech))])
            total += len(pieces[-1])
        path = files / f"utt{i:05d}.flac"
        sf.write(path, np.concatenate(pieces)[: 20 * 16000], 16000, subtype="PCM_16")
        items.append(AudioItem(str(path), f"s{i % 10}", f"utt{i:05d}"))
    write_shards(audio_samples(items, 16000), str(folder / "shards" / "shard-%06d.tar"), max_bytes=20e6, progress=False)
    for copy in range(10):  # the 10x corpus: the same shards again under other names
        for shard in (folder / "shards").glob("shard-*.tar"):
            target = folder / "shards10" / f"c{copy}-{shard.name}"
            target.parent.mkdir(exist_ok=True)
            os.link(shard, target)


def process_tree_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and its live children (DataLoader workers)."""
    pids = [os.getpid()]
    for task in Path("/proc/self/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class PerFileCrops:
    """The usual per-file dataset: decode a whole file, return one random window."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        import torch

        audio, _ = sf.read(self.paths[i], dtype="float32")
        start = random.randrange(len(audio) - WINDOW + 1)
        return torch.from_numpy(audio[start : start + WINDOW])


def measure(kind: str, folder: Path, workers: int, batches: int, warmup: int = 200) -> dict:
    import torch

    from cpc.data.audio import AudioDataConfig, audio_stream
    from cpc.data.stages import loader

    torch.set_num_threads(1)
    if kind in ("shards", "threads"):
        data = loader(audio_stream(AudioDataConfig(shards=str(folder / "shards" / "index.json"), batch_size=8,
                                                   window=WINDOW), train=True, sample_rate=16000, hop=160),
                      num_workers=workers, kind="threads" if kind == "threads" else "processes")
    else:
        paths = sorted(str(p) for p in (folder / "files").glob("*.flac"))
        data = torch.utils.data.DataLoader(PerFileCrops(paths), batch_size=8, shuffle=True, num_workers=workers,
                                           persistent_workers=workers > 0)
        data = itertools.chain.from_iterable(itertools.repeat(data))
    iterator = iter(data)
    for _ in itertools.islice(iterator, warmup):  # worker start-up and shuffle buffers filling: not steady state
        pass
    start_cpu, start_wall = process_tree_cpu_seconds(), time.perf_counter()
    delivered = 0
    for batch in itertools.islice(iterator, batches):
        wav = batch["wav"] if isinstance(batch, dict) else batch
        delivered += wav.numel() / 16000
    cpu, wall = process_tree_cpu_seconds() - start_cpu, time.perf_counter() - start_wall
    return {"per_cpu_s": delivered / cpu, "per_wall_s": delivered / wall}


def reader_peak(folder: Path, shards: str) -> dict:
    from cpc.data.audio import AudioDataConfig, audio_stream

    seconds = 0.0
    urls = sorted(str(p) for p in (folder / shards).glob("*.tar"))
    for batch in audio_stream(AudioDataConfig(shards=urls, batch_size=8, window=WINDOW), train=False, sample_rate=16000, hop=160):
        seconds += batch["wav"].numel() / 16000
    return {"peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, "audio_h": seconds / 3600}


def child(args) -> None:
    folder = Path(args.folder)
    if args.child == "peak":
        print(json.dumps(reader_peak(folder, args.shards)))
    else:
        print(json.dumps(measure(args.child, folder, args.workers, args.batches)))


def run(args, *extra) -> dict:
    out = subprocess.run([sys.executable, __file__, "--folder", args.folder, *extra], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=60)
    parser.add_argument("--batches", type=int, default=800, help="measured after 200 warm-up batches")
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--shards", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.folder = tmp
        build_corpus(Path(tmp), args.utterances)
        print(f"{args.utterances} recordings of 20 s (FLAC), batches of 8 x {WINDOW} samples, "
              f"{args.batches} batches after 200 warm-up batches; CPU of the main process and its workers")
        print(f"{'reader':<10} {'workers':>7} {'window-audio-s per CPU-s':>26} {'vs 0 workers':>13} "
              f"{'per wall-s':>11}")
        for kind in ("shards", "threads", "per-file"):
            for workers in (0, 1, 2) if kind != "threads" else (1, 2):
                r = run(args, "--child", kind, "--workers", str(workers), "--batches", str(args.batches))
                in_process = r["per_cpu_s"] if workers == 0 else in_process  # threads: against shards' 0
                print(f"{kind:<10} {workers:>7} {r['per_cpu_s']:>26.0f} {r['per_cpu_s'] / in_process:>12.2f}x "
                      f"{r['per_wall_s']:>11.0f}")
        one, ten = run(args, "--child", "peak", "--shards", "shards"), run(args, "--child", "peak", "--shards", "shards10")
        print(f"reader peak RSS over the whole corpus (evaluation pass): {one['audio_h']:.2f} h -> "
              f"{one['peak_rss_MB']:.0f} MB; 10x ({ten['audio_h']:.2f} h) -> {ten['peak_rss_MB']:.0f} MB "
              f"({100 * (ten['peak_rss_MB'] / one['peak_rss_MB'] - 1):+.1f} %)")


if __name__ == "__main__":
    main()
