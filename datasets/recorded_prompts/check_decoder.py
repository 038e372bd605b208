"""Check the G.722 decoding without listening: on a fixed sample of prompts of every wideband voice,

- backends: the `g722` PyPI package and Debian's ffmpeg give the same samples (max |difference|);
- duration: 2 samples per byte (64 kbit/s), and the same length as the 8 kHz .wav of the same prompt
  (asterisk-core-sounds-{en,es}-wav, when installed), in ms;
- same recording: correlation of the log spectrograms below 3.75 kHz with that .wav;
- bandwidth: energy per band relative to 0-4 kHz, in dB (G.722 passes 50-7000 Hz: 4-7 kHz well above the
  7-8 kHz floor, which the 8 kHz formats cannot have);
- frame edges: decoding packet by packet (20 ms = 160 bytes, as RTP carries it) gives the whole-file samples,
  and the sample-to-sample jumps at 10 ms boundaries are no larger than elsewhere (99th percentile ratio).

    python datasets/recorded_prompts/check_decoder.py [--per-voice 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("make_shards", HERE / "make_shards.py")
corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(corpus)

BANDS = [(4000, 5000), (5000, 6000), (6000, 7000), (7000, 8000)]


def band_db(audio: np.ndarray, rate: int) -> list[float]:
    """Energy in each of BANDS relative to 0-4 kHz, in dB (from the whole-file power spectrum)."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    base = power[freqs < 4000].sum()
    return [10 * np.log10(power[(freqs >= lo) & (freqs < hi)].sum() / base + 1e-20) for lo, hi in BANDS]


def log_spectrogram(audio: np.ndarray, rate: int) -> torch.Tensor:
    """|STFT| in dB, 32 ms windows every 10 ms: bins 31.25 Hz apart at 8 and 16 kHz alike."""
    n_fft = int(rate * 0.032)
    spec = torch.stft(torch.from_numpy(audio), n_fft, int(rate * 0.01), window=torch.hann_window(n_fft),
                      return_complex=True).abs()
    return 20 * torch.log10(spec + 1e-5)


def edge_jumps(audio: np.ndarray, period: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """|x[n] - x[n-1]| where n is a multiple of `period` (10 ms) and where it is not."""
    jumps = np.abs(np.diff(audio.astype(np.float64)))
    at_edges = np.zeros(len(jumps), dtype=bool)
    at_edges[period - 1 :: period] = True
    return jumps[at_edges], jumps[~at_edges]


def check_file(path: Path) -> dict:
    import G722

    data = path.read_bytes()
    package = corpus.decode_g722(data, "g722")
    row = {"prompt": str(path), "bytes": len(data), "samples": len(package), "seconds": len(package) / 16000}
    if shutil.which("ffmpeg"):
        ffmpeg = corpus.decode_g722(data, "ffmpeg")
        row["ffmpeg_max_diff"] = int(np.abs(ffmpeg.astype(int)[: len(package)] - package.astype(int)).max()) \
            if len(ffmpeg) == len(package) else f"length {len(ffmpeg)} vs {len(package)}"
    decoder = G722.G722(16000, 64000)
    packets = np.concatenate([np.asarray(decoder.decode(data[i : i + 160]), dtype=np.int16)
                              for i in range(0, len(data), 160)])
    row["packets_equal"] = bool(np.array_equal(packets, package))
    audio = package.astype(np.float32) / 32768
    row["bands_db"] = band_db(audio, 16000)
    row["edges"], row["inside"] = edge_jumps(audio)
    narrow = path.with_suffix(".wav")
    if narrow.exists():
        wav, rate = sf.read(narrow, dtype="float32")
        row["wav_ms_diff"] = 1000 * (len(package) / 16000 - len(wav) / rate)
        wide, slim = log_spectrogram(audio, 16000), log_spectrogram(wav, rate)
        frames = min(wide.shape[1], slim.shape[1])
        bins = 120  # < 3.75 kHz, below the 8 kHz file's anti-alias filter
        row["wav_spec_corr"] = float(np.corrcoef(wide[:bins, :frames].flatten(), slim[:bins, :frames].flatten())[0, 1])
        row["wav_bands_db"] = band_db(torchaudio.functional.resample(torch.from_numpy(wav), rate, 16000).numpy(), 16000)
    return row


def edge_ratio(rows: list[dict]) -> float:
    """99th percentile of the jumps at 10 ms boundaries over that of the others, pooled over files: ~1 = no clicks."""
    edges, inside = np.concatenate([r["edges"] for r in rows]), np.concatenate([r["inside"] for r in rows])
    return float(np.percentile(edges, 99) / np.percentile(inside, 99))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-voice", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import G722  # noqa: F401
    except ImportError:
        raise SystemExit("needs the PyPI package g722: pip install g722")
    print(f"{'voice':<20} {'files':>5} {'s':>6} {'bytes*2=n':>9} {'ffmpeg=':>8} {'packets=':>8} {'edge':>5} "
          f"{'4-5k':>6} {'5-6k':>6} {'6-7k':>6} {'7-8k':>6} {'wav ms':>7} {'corr':>5} {'wav 4-5k':>8}")
    for voice in [v for v in corpus.VOICES if not v.narrowband]:
        files = sorted(p for name, p in corpus.prompt_files(Path("/"), voice).items()
                       if corpus.is_speech(name) and p.stat().st_size >= 160)  # a few files are empty
        if not files:
            print(f"{voice.name:<20} not installed ({voice.package})")
            continue
        rows = [check_file(p) for p in random.Random(args.seed).sample(files, min(args.per_voice, len(files)))]
        ff = [r["ffmpeg_max_diff"] for r in rows if "ffmpeg_max_diff" in r]
        wav = [r for r in rows if "wav_ms_diff" in r]
        bands = np.mean([r["bands_db"] for r in rows], axis=0)
        print(f"{voice.name:<20} {len(rows):>5} {sum(r['seconds'] for r in rows):>6.1f} "
              f"{str(all(r['samples'] == 2 * r['bytes'] for r in rows)):>9} "
              f"{(str(max(ff)) if ff and all(isinstance(d, int) for d in ff) else str(ff[:1]) if ff else '-'):>8} "
              f"{str(all(r['packets_equal'] for r in rows)):>8} {edge_ratio(rows):>5.2f} "
              + " ".join(f"{b:>6.1f}" for b in bands)
              + (f" {max(abs(r['wav_ms_diff']) for r in wav):>7.2f} {min(r['wav_spec_corr'] for r in wav):>5.3f}"
                 f" {np.mean([r['wav_bands_db'][0] for r in wav]):>8.1f}" if wav else f" {'-':>7} {'-':>5} {'-':>8}"))
    print("bytes*2=n: every file decodes to 2 samples per byte; ffmpeg=: max |g722 - ffmpeg| in int16 steps; "
          "packets=: 20 ms packet-wise decoding equals whole-file decoding; edge: 99th percentile of the sample-to-sample "
          "jumps at 10 ms boundaries / elsewhere, pooled over the files; bands: mean dB relative to 0-4 kHz; wav ms: max |length "
          "difference| to the 8 kHz .wav; corr: min log-spectrogram correlation below 3.75 kHz with it; wav 4-5k: "
          "the 8 kHz .wav's 4-5 kHz band (resampled to 16 kHz).")


if __name__ == "__main__":
    sys.exit(main())
