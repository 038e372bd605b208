"""Make a phone-aligned speech corpus offline with Debian's speech synthesisers, which report exact phone timings.

    python datasets/synthetic_speech/make_corpus.py --out data/synth --utterances 400
    python datasets/synthetic_speech/make_corpus.py --out datasets/synthetic_speech/sample --utterances 120 --max-mb 6

Engines and voices (each voice at each pitch setting is one "speaker"):
- flite `-psdur` (end time of every phone): slt and awb at two pitch targets each, and rms (which ignores the pitch
  target); voices trained on real CMU ARCTIC speakers. flite's kal16 is left out: its reported timings overran its
  audio by ~0.1 s in our check, while slt/rms/awb and festival's matched their audio within 25 ms.
- festival `utt.save.segs` (segment end times): kal_diphone, ked_diphone, cmu_us_slt_arctic_hts.
- eSpeak NG through libespeak-ng's phoneme events (ctypes; the start sample of every phoneme): en-us, en-us+f3
  (a female variant) and en-gb; its 22.05 kHz output is resampled to 16 kHz.
Speaking rate varies per utterance (duration stretch 0.85-1.25). Sentences come from text already on disk (the
licence texts in /usr/share/common-licenses and /usr/share/doc/*/copyright). Phones are folded into CMU's 39 phones plus silence (40 classes).
Labels follow the CPC alignment format (`converted_aligned_phones.txt`): frame k = samples [160k, 160k + 160),
labelled by the phone sounding at its centre. Output: wav/ per speaker, the alignment file, phones.txt,
manifest.tsv, train.txt / test.txt (held-out sentences), and FLAC shards for each split (with index.json).
Missing synthesisers are installed with apt-get when run as root (`--no-install` to refuse).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
from cpc.data.ingest import AudioItem  # noqa: E402
from cpc.data.labels import read_alignments  # noqa: E402
from cpc.data.shards import write_splits  # noqa: E402

SAMPLE_RATE = 16000
HOP = 160
PACKAGES = ["flite", "festival", "festvox-kdlpc16k", "festvox-kallpc16k", "festvox-us-slt-hts", "libespeak-ng1"]
# CMU's 39 phones (no stress) plus silence: the class set of the labels, in this order.
PHONES = ["sil"] + (
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh".split()
)
# Engine phones outside that set, folded onto it.
FOLD = {"pau": "sil", "h#": "sil", "brth": "sil", "ssil": "sil", "ax": "ah", "axr": "er", "ix": "ih",
        "el": "l", "em": "m", "en": "n", "dx": "t", "nx": "n", "hv": "hh"}
# (voice, pitch factor). rms ignores int_f0_target_mean (its output was byte-identical at two targets), so it
# is one speaker; slt and awb do follow the pitch target.
FLITE_SPEAKERS = {
    "flite_slt_lo": ("slt", 0.9), "flite_slt_hi": ("slt", 1.15),
    "flite_awb_lo": ("awb", 0.9), "flite_awb_hi": ("awb", 1.15),
    "flite_rms": ("rms", 1.0),
}
FESTIVAL_SPEAKERS = {
    "festival_kal": "voice_kal_diphone",
    "festival_ked": "voice_ked_diphone",
    "festival_slthts": "voice_cmu_us_slt_arctic_hts",
}
BASE_F0 = {"slt": 170, "rms": 100, "awb": 110}
ESPEAK_SPEAKERS = {"espeak_us": "en-us", "espeak_usf": "en-us+f3", "espeak_gb": "en-gb"}
# eSpeak NG's English phoneme names -> CMU; None drops a zero-length modifier (";" palatalises the phone before it).
ESPEAK_FOLD = {
    "0": "aa", "3": "er", "3:": "er", "@": "ah", "@2": "ah", "@5": "ah", "@L": "l", "A:": "aa", "A@": "aa",
    "D": "dh", "E": "eh", "I": "ih", "I2": "ih", "I@": "ih", "N": "ng", "O": "ao", "O2": "ao", "O:": "ao",
    "O@": "ao", "OI": "oy", "S": "sh", "T": "th", "U": "uh", "U@": "uh", "V": "ah", "Z": "zh", "_": "sil",
    "_:": "sil", "_!": "sil", "a": "ae", "a#": "ah", "aI": "ay", "aI@": "ay", "aU": "aw", "aa": "aa", "dZ": "jh",
    "e@": "eh", "eI": "ey", "h": "hh", "i": "iy", "i:": "iy", "i@": "ih", "i@3": "ih", "j": "y", "l-": "l",
    "n-": "n", "o@": "ao", "oU": "ow", "r-": "r", "tS": "ch", "u:": "uw", "x": "k", "W": "w", ";": None,
    "?": "t", "@-": "ah", "I#": "ih", "aI3": "ay", "t#": "t", "t2": "t",  # glottal stop and flaps stand for t
    **{c: c for c in "b d f g k l m n p r s t v w z".split()},
}


def ensure_synthesisers(install: bool) -> None:
    if shutil.which("flite") and shutil.which("festival"):
        return
    if not install:
        raise SystemExit(f"flite/festival missing: apt-get install {' '.join(PACKAGES)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True)


def sentences_on_disk(limit: int, seed: int) -> list[str]:
    """Plain English sentences of 5-16 words from the licence and copyright texts Debian ships."""
    sources = sorted(Path("/usr/share/common-licenses").glob("*")) + sorted(Path("/usr/share/doc").glob("*/copyright"))
    text = " ".join(p.read_text(errors="ignore") for p in sources if p.is_file())
    candidates = []
    for sentence in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text)):
        if re.search(r"https?|www|@|\.(org|com|net)\b|\d", sentence):
            continue  # addresses and numbers read badly and carry little phonetic variety
        words = re.sub(r"[^A-Za-z ,']", " ", sentence).split()
        if 5 <= len(words) <= 16 and sum(w.isupper() for w in words) < 2:
            candidates.append(" ".join(words).lower())
    candidates = sorted(set(candidates))
    random.Random(seed).shuffle(candidates)
    if len(candidates) < limit:
        raise SystemExit(f"found only {len(candidates)} sentences on disk, asked for {limit}")
    return candidates[:limit]


def fold(phone: str) -> str:
    phone = FOLD.get(phone, phone)  # eSpeak names arrive already folded by ESPEAK_FOLD
    if phone not in PHONES:
        raise ValueError(f"unknown phone {phone!r}")
    return phone


def flite(text: str, voice: str, f0: float, stretch: float, wav: Path) -> list[tuple[str, float]]:
    result = subprocess.run(
        ["flite", "-voice", voice, "--setf", f"int_f0_target_mean={BASE_F0[voice] * f0:.0f}",
         "--setf", f"duration_stretch={stretch:.2f}", "-psdur", "-t", text, "-o", str(wav)],
        check=True, capture_output=True, text=True,
    )
    return [(p.rsplit(":", 1)[0], float(p.rsplit(":", 1)[1])) for p in result.stdout.split()]


def festival(text: str, voice: str, stretch: float, wav: Path, work: Path) -> list[tuple[str, float]]:
    segs = work / "segs.txt"
    script = work / "say.scm"
    quoted = text.replace("\\", " ").replace('"', " ")
    script.write_text(
        f'({voice})\n(Parameter.set \'Duration_Stretch {stretch:.2f})\n'
        f'(set! utt (utt.synth (Utterance Text "{quoted}")))\n'
        f'(utt.save.segs utt "{segs}")\n(utt.wave.resample utt {SAMPLE_RATE})\n(utt.save.wave utt "{wav}" \'riff)\n'
    )
    subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True)
    phones = []
    for line in segs.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] != "#":
            phones.append((parts[2], float(parts[0])))
    return phones


class ESpeak:
    """libespeak-ng in synchronous mode; each synthesis returns 16 kHz audio and (phone, end seconds) pairs."""

    PHONEME_EVENT, RATE_PARAMETER = 7, 1

    def __init__(self):
        import ctypes

        class Event(ctypes.Structure):
            _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                        ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]

        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        self.rate = self.lib.espeak_Initialize(2, 0, None, 1)  # AUDIO_OUTPUT_SYNCHRONOUS, phoneme events on
        if self.rate <= 0:
            raise RuntimeError("libespeak-ng failed to initialise")
        self.audio: list[int] = []
        self.starts: list[tuple[str, int]] = []

        def collect(wav, count, events):
            if wav and count > 0:
                self.audio.extend(wav[:count])
            i = 0
            while events[i].type != 0:
                if events[i].type == self.PHONEME_EVENT:
                    self.starts.append((events[i].id.decode(errors="replace"), events[i].sample))
                i += 1
            return 0

        self.callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                         ctypes.POINTER(Event))(collect)  # kept alive as long as self
        self.lib.espeak_SetSynthCallback(self.callback)

    def __call__(self, text: str, voice: str, stretch: float, wav: Path) -> list[tuple[str, float]]:
        import torch
        import torchaudio

        self.audio, self.starts = [], []
        self.lib.espeak_SetVoiceByName(voice.encode())
        self.lib.espeak_SetParameter(self.RATE_PARAMETER, int(175 / stretch), 0)
        encoded = text.encode()
        self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        audio = torch.tensor(self.audio, dtype=torch.float32) / 32768
        sf.write(wav, torchaudio.functional.resample(audio, self.rate, SAMPLE_RATE).numpy(), SAMPLE_RATE,
                 subtype="PCM_16")
        phones = [(ESPEAK_FOLD.get(name, name), start / self.rate) for name, start in sorted(self.starts, key=lambda p: p[1])]
        phones = [(name, start) for name, start in phones if name is not None]
        ends = [start for _, start in phones[1:]] + [len(audio) / self.rate]  # a phone lasts until the next starts
        return [(name, end) for (name, _), end in zip(phones, ends)]


def frame_labels(phones: list[tuple[str, float]], samples: int) -> np.ndarray:
    """One class id per 10 ms frame: the phone whose span holds the frame's centre (the last phone after its end)."""
    ends = np.array([end for _, end in phones])
    ids = np.array([PHONES.index(fold(p)) for p, _ in phones])
    centres = (np.arange(samples // HOP) * HOP + HOP / 2) / SAMPLE_RATE
    return ids[np.minimum(np.searchsorted(ends, centres, side="right"), len(ids) - 1)].astype(np.int16)


def synthesise(out: Path, utterances: int, seed: int, test_fraction: float, offset: int = 0):
    speakers = list(FLITE_SPEAKERS) + list(FESTIVAL_SPEAKERS) + list(ESPEAK_SPEAKERS)
    espeak = ESpeak()
    rng = random.Random(seed)
    texts = sentences_on_disk(offset + utterances, seed)[offset:]
    test_texts = set(texts[: max(1, int(len(texts) * test_fraction))])  # held-out sentences, not just recordings
    items, lines, test = [], [], []
    from cpc.progress import progress_bar

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for number, text in enumerate(progress_bar(texts, desc="synthesising", unit="utt")):
            speaker = speakers[number % len(speakers)]
            key = f"{speaker}_{number:05d}"
            wav = out / "wav" / speaker / f"{key}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            stretch = rng.uniform(0.85, 1.25)
            if speaker in FLITE_SPEAKERS:
                phones = flite(text, *FLITE_SPEAKERS[speaker], stretch, wav)
            elif speaker in FESTIVAL_SPEAKERS:
                phones = festival(text, FESTIVAL_SPEAKERS[speaker], stretch, wav, work)
            else:
                phones = espeak(text, ESPEAK_SPEAKERS[speaker], stretch, wav)
            info = sf.info(wav)
            if info.samplerate != SAMPLE_RATE:
                raise RuntimeError(f"{wav}: {info.samplerate} Hz, expected {SAMPLE_RATE}")
            labels = frame_labels(phones, info.frames)
            lines.append(f"{key} {' '.join(map(str, labels))}")
            items.append(AudioItem(str(wav), speaker, key, {"text": text, "engine": speaker.split("_")[0]}))
            if text in test_texts:
                test.append(key)
    (out / "converted_aligned_phones.txt").write_text("\n".join(lines) + "\n")
    (out / "phones.txt").write_text("\n".join(PHONES) + "\n")
    (out / "manifest.tsv").write_text(
        "path\tspeaker\tkey\ttext\n" + "".join(f"{i.path}\t{i.speaker}\t{i.key}\t{i.fields['text']}\n" for i in items)
    )
    return items, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--utterances", type=int, default=400)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offset", type=int, default=0,
                        help="skip this many sentences: --offset 110 gives sentences the shipped sample never uses")
    parser.add_argument("--max-mb", type=float, default=500, help="shard size")
    parser.add_argument("--keep-wav", action="store_true", help="keep the wav/ folder next to the shards")
    parser.add_argument("--no-install", action="store_true")
    args = parser.parse_args()
    ensure_synthesisers(install=not args.no_install)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items, test = synthesise(out, args.utterances, args.seed, args.test_fraction, args.offset)
    alignments = read_alignments(out / "converted_aligned_phones.txt")
    test_set = set(test)
    train = [i.key for i in items if i.key not in test_set]
    (out / "train.txt").write_text("\n".join(train) + "\n")
    (out / "test.txt").write_text("\n".join(test) + "\n")
    write_splits(items, out, {"train": set(train), "test": test_set}, alignments, max_bytes=args.max_mb * 1e6,
                 sample_rate=SAMPLE_RATE)
    if not args.keep_wav:
        shutil.rmtree(out / "wav")
        (out / "manifest.tsv").unlink()


if __name__ == "__main__":
    main()
