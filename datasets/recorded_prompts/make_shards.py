"""Real recorded speech, offline: Debian's Asterisk voice prompts (professional speakers, transcripts listed in
the packages) -> a pretraining corpus of the non-English voices and an English real-speech phone set.

    python datasets/recorded_prompts/make_shards.py --out data/prompts                # wideband voices
    python datasets/recorded_prompts/make_shards.py --out data/prompts --narrowband   # + the 8 kHz voices

The English (en-US) prompts are EVALUATION DATA ONLY: they never go into the pretraining shards. From them the
script builds a phone set: each prompt forced-aligned to its transcript with PocketSphinx (its en-US model and
CMU dictionary; pass 1 a linear word grammar with optional silence/noise fillers, pass 2 its phone alignment),
phones folded into the project's 40 classes (CMU's 39 + silence, the synthetic corpus's order), one label per
10 ms frame in the CPC alignment format, a fixed dev / test split by prompt text (a hash, so it never moves).
Prompts whose transcript has no single reading (numbers over 99, decimals), words outside the dictionary, or
no alignment are left out and listed in english/skipped.tsv.

Output under --out:
  pretrain/train, pretrain/val   shards of the non-English voices (speaker = voice; language, locale, prompt,
                                 transcript, licence in each sample's json), split by prompt (--val-percent)
  english/dev, english/test      labelled shards; english/converted_aligned_phones.txt, phones.txt, dev.txt,
                                 test.txt, segments.tsv (key, word, phone, start s, end s), skipped.tsv
  voices.tsv                     prompts and hours of speech per voice

Wideband voices come from `asterisk-core-sounds-{es,fr,it,ru,en}-g722` (G.722, 16 kHz), installed with apt-get
when missing (`--no-install` refuses). The 8 kHz voices (`--narrowband`: asterisk-prompt-es-co, -fr-armelle,
-it-menardi-wav; GSM / 8 kHz wav, upsampled to 16 kHz, so nothing above 4 kHz) are fetched with `apt-get
download` and unpacked under --out/debs: two of them conflict with the core-sounds packages that hold the
transcripts. G.722 is decoded with the `g722` package from PyPI (`--decoder ffmpeg` for Debian's ffmpeg; both
gave bit-identical samples, see check_decoder.py). Needs `pip install pocketsphinx g722` (pocketsphinx only for
the English set).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
from cpc.data.ingest import AudioItem  # noqa: E402
from cpc.data.labels import safe_key  # noqa: E402
from cpc.data.shards import write_splits  # noqa: E402

SAMPLE_RATE = 16000
HOP = 160
SOUNDS = Path("usr/share/asterisk/sounds")  # relative to / (installed) or to an unpacked package
DOCS = Path("usr/share/doc")
# CMU's 39 phones (no stress) plus silence, in the synthetic corpus's order: class ids mean the same in both.
PHONES = ["sil"] + (
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh".split()
)
# PocketSphinx's en-us model: its silence and filler phones are silence here.
FILLER_PHONES = {"SIL": "sil", "+NSN+": "sil", "+SPN+": "sil"}
# PocketSphinx frame t is the 25.625 ms window [160 t, 160 t + 410) samples: centred 12.8 ms after 10 t ms, so
# the boundary between its frames t - 1 and t lies at 10 t ms + (410 - 160) / 2 samples.
SPHINX_WINDOW, SPHINX_HOP = 410, 160
SPHINX_OFFSET = (SPHINX_WINDOW - SPHINX_HOP) / 2 / SAMPLE_RATE  # seconds: 7.8 ms
# Prompts that are tones, noise or silence in every language (their English transcripts are in brackets).
NON_SPEECH = {"beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys", "confbridge-join",
              "confbridge-leave"}
NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                "sixteen seventeen eighteen nineteen").split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
SYMBOL_WORDS = {"*": " star ", "#": " pound ", "&": " and ", "%": " percent ", "+": " plus "}
# Misspellings in the English transcript list, and words read as two dictionary words.
SPELLING = {"umute": "unmute", "decending": "descending", "fourtieth": "fortieth", "exclaimation": "exclamation",
            "represenatives": "representatives", "indentified": "identified", "witheld": "withheld",
            "xray": "x ray", "touchtone": "touch tone", "lowercase": "lower case", "uppercase": "upper case",
            "forevermore": "forever more", "backtick": "back tick", "caret": "carrot"}
# Words of the prompts missing from PocketSphinx's CMU dictionary (CMU phones); the rest are left out.
PRONUNCIATIONS = {"unmute": "AH N M Y UW T", "unmuted": "AH N M Y UW T IH D", "prepend": "P R IY P EH N D",
                  "prepending": "P R IY P EH N D IH NG", "undelete": "AH N D IH L IY T",
                  "rerecord": "R IY R IH K AO R D", "pbx": "P IY B IY EH K S", "digium": "D IH JH IY AH M",
                  "waldo's": "W AO L D OW Z", "semicolon": "S EH M IY K OW L AH N"}


class Voice(NamedTuple):
    """One recorded voice: its speaker id (the folder name Debian uses), language, where its audio comes from."""

    name: str
    language: str
    locale: str
    package: str
    author: str
    licence: str
    folder: str = ""  # under usr/share/asterisk/sounds; "" = the whole tree of an unpacked package
    extension: str = ".g722"
    transcripts: str = ""  # the package whose doc folder holds core-sounds-<language>.txt.gz
    narrowband: bool = False


VOICES = [
    Voice("en_US_f_Allison", "en", "en-US", "asterisk-core-sounds-en-g722", "Allison Smith", "CC-BY-SA-3.0",
          "en_US_f_Allison", transcripts="asterisk-core-sounds-en"),
    Voice("es_MX_f_Allison", "es", "es-MX", "asterisk-core-sounds-es-g722", "Allison Smith", "CC-BY-SA-3.0",
          "es_MX_f_Allison", transcripts="asterisk-core-sounds-es"),
    Voice("fr_CA_f_June", "fr", "fr-CA", "asterisk-core-sounds-fr-g722", "June Wallack", "CC-BY-SA-3.0",
          "fr_CA_f_June", transcripts="asterisk-core-sounds-fr"),
    Voice("it_IT_m_Carlo", "it", "it-IT", "asterisk-core-sounds-it-g722", "Carlo Flora", "CC-BY-3.0",
          "it_IT_m_Carlo", transcripts="asterisk-core-sounds-it"),
    Voice("ru_RU_f_IvrvoiceRU", "ru", "ru-RU", "asterisk-core-sounds-ru-g722", "Maxim Topal (ivrvoice.ru)",
          "CC-BY-3.0", "ru_RU_f_IvrvoiceRU", transcripts="asterisk-core-sounds-ru"),
    Voice("es_CO_f_July", "es", "es-CO", "asterisk-prompt-es-co", "July E. Jimenez (Avatar Ltda.)", "GPL-2",
          extension=".gsm", narrowband=True),
    Voice("fr_FR_f_Armelle", "fr", "fr-FR", "asterisk-prompt-fr-armelle", "Armelle Desjardins (Michel Gutierrez)",
          "BSD-style", extension=".gsm", narrowband=True),
    Voice("it_IT_f_Menardi", "it", "it-IT", "asterisk-prompt-it-menardi-wav", "Paola Dal Zot (Marco Menardi)",
          "CC-BY-SA-3.0-IT", "it_IT_f_Menardi", extension=".wav", narrowband=True),
]
EVALUATION_ONLY = {"en"}  # languages that never go into the pretraining shards


# ---------------------------------------------------------------- fetching the packages

def installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.endswith(" installed")


def ensure_installed(packages: list[str], install: bool) -> None:
    """apt-get install the packages that are missing (as root), or stop saying what to install."""
    missing = [p for p in packages if not installed(p)]
    if not missing:
        return
    if not install:
        raise SystemExit(f"missing Debian packages: apt-get install {' '.join(missing)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def unpacked(package: str, cache: Path, install: bool) -> Path:
    """The root of `package` unpacked under cache/<package> (apt-get download + dpkg-deb -x), without installing
    it: the narrowband es/fr packages conflict with the core-sounds packages that hold the transcripts."""
    root = cache / package
    if (root / ".unpacked").exists():
        return root
    if not install:
        raise SystemExit(f"{package} is not unpacked under {cache}; run without --no-install")
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", package], cwd=cache, check=True, capture_output=True)
    deb = max(cache.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root / ".unpacked").touch()
    return root


def voice_root(voice: Voice, cache: Path, install: bool) -> Path:
    if voice.narrowband:
        return unpacked(voice.package, cache, install)
    ensure_installed([voice.package], install)  # the -g722 packages depend on their transcript packages
    return Path("/")


def prompt_files(root: Path, voice: Voice) -> dict[str, Path]:
    """{prompt name (path under the voice folder, no extension, e.g. "digits/7"): file}, sorted by name. In an
    unpacked narrowband tree the language folder is dropped wherever it sits (es/digits/1, digits/es/1)."""
    base = root / SOUNDS / voice.folder
    files = {}
    for path in sorted(base.rglob(f"*{voice.extension}")):
        parts = path.relative_to(base).with_suffix("").parts
        if not voice.folder:
            parts = tuple(p for p in parts if p != voice.language)
        files.setdefault("/".join(parts), path)
    return files


# ---------------------------------------------------------------- transcripts and text

def parse_transcripts(text: str) -> dict[str, str]:
    """core-sounds-<language>.txt: `name: transcript` lines (';' comments) -> {name: transcript}; first wins."""
    prompts: dict[str, str] = {}
    for line in text.lstrip("\ufeff").splitlines():
        name, sep, transcript = line.partition(":")
        if line.startswith(";") or not sep or " " in name.strip() or not name.strip():
            continue
        prompts.setdefault(name.strip(), transcript.strip())
    return prompts


def read_transcripts(voice: Voice, root: Path) -> dict[str, str]:
    if not voice.transcripts:
        return {}
    path = root / DOCS / voice.transcripts / f"core-sounds-{voice.language}.txt.gz"
    if not path.exists():
        print(f"{voice.name}: no transcript list at {path}; its prompts are kept without text")
        return {}
    return parse_transcripts(gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace"))


def is_speech(prompt: str, transcript: str = "") -> bool:
    """False for silence files, tones and noises (by name, or a transcript that is all [..], (..) or <..>)."""
    if prompt.startswith("silence/") or prompt in NON_SPEECH:
        return False
    text = transcript.strip()
    return not (text and re.fullmatch(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>", text))


def number_words(n: int) -> list[str] | None:
    """0..99 -> its English words ("forty two" -> ["forty", "two"]); None beyond (no single reading)."""
    if n < 20:
        return [NUMBER_WORDS[n]]
    if n < 100:
        return [TENS[n // 10 - 2]] + ([NUMBER_WORDS[n % 10]] if n % 10 else [])
    return None


def english_words(transcript: str) -> list[str] | None:
    """A prompt's English transcript -> lower-case dictionary words, or None when it has no single reading
    (numbers over 99 or with a decimal point: "dial 500", "28.8 modem")."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", transcript)  # "at [@]" -> "at"
    for symbol, word in SYMBOL_WORDS.items():
        text = text.replace(symbol, word)
    if re.search(r"\d[.,]\d", text):
        return None
    text = re.sub(r"(\d+)", r" \1 ", text)  # "3D" -> "3 D"
    text = re.sub(r"\b([A-Za-z])\.", r"\1 ", text)  # "A.M." -> "A M"
    words = []
    for token in re.sub(r"[^A-Za-z0-9']+", " ", text).lower().split():
        token = token.strip("'")
        if token.isdigit():
            spoken = number_words(int(token))
            if spoken is None:
                return None
            words.extend(spoken)
        elif token:
            words.extend(SPELLING.get(token, token).split())
    return words


def held_out(text: str, percent: float, salt: str) -> bool:
    """Whether a prompt is held out, from a hash of its text: fixed for ever, independent of which other prompts
    exist, and prompts with the same text always land together."""
    digest = int(hashlib.sha1(f"{salt}:{' '.join(text.lower().split())}".encode()).hexdigest(), 16)
    return digest % 10000 < percent * 100


# ---------------------------------------------------------------- audio

def decode_g722(data: bytes, decoder: str = "auto") -> np.ndarray:
    """G.722 at 64 kbit/s (bytes) -> int16 samples at 16 kHz (two per byte), with the `g722` package from PyPI
    or Debian's ffmpeg; "auto" takes the package when it is installed."""
    if not data:
        return np.zeros(0, dtype=np.int16)  # a few prompt files are empty (ru "is")
    if decoder in ("auto", "g722"):
        try:
            import G722  # the PyPI package `g722`
        except ImportError:
            if decoder == "g722":
                raise SystemExit("--decoder g722 needs the PyPI package: pip install g722") from None
        else:
            return np.asarray(G722.G722(SAMPLE_RATE, 64000).decode(data), dtype=np.int16)
    return ffmpeg_decode(data, "g722")


def ffmpeg_decode(data: bytes, container: str) -> np.ndarray:
    """Raw G.722 or GSM bytes -> int16 samples at the codec's rate (16 or 8 kHz), via ffmpeg."""
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is missing: apt-get install ffmpeg (or pip install g722 for G.722)")
    result = subprocess.run(["ffmpeg", "-v", "error", "-f", container, "-i", "pipe:0", "-f", "s16le", "-ac", "1",
                             "pipe:1"], input=data, capture_output=True, check=True)
    return np.frombuffer(result.stdout, dtype=np.int16)


def read_prompt(path: Path, decoder: str = "auto") -> np.ndarray:
    """A prompt file (.g722, .gsm, .wav) -> float32 mono at 16 kHz."""
    import torch
    import torchaudio.functional

    if path.suffix == ".g722":
        audio, rate = decode_g722(path.read_bytes(), decoder).astype(np.float32) / 32768, SAMPLE_RATE
    elif path.suffix == ".gsm":
        audio, rate = ffmpeg_decode(path.read_bytes(), "gsm").astype(np.float32) / 32768, 8000
    else:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        audio = torchaudio.functional.resample(torch.from_numpy(audio), rate, SAMPLE_RATE).numpy()
    return audio


# ---------------------------------------------------------------- alignment

def fold_phone(name: str) -> str:
    """A PocketSphinx en-us phone (AA, SIL, +NSN+, ...) -> one of PHONES."""
    phone = FILLER_PHONES.get(name, name.lower())
    if phone not in PHONES:
        raise ValueError(f"unknown phone {name!r}")
    return phone


def phone_segments(entries: list[tuple[str, str, int, int]]) -> list[tuple[str, str, float, float]]:
    """PocketSphinx (word, phone, start frame, frames) -> (word, folded phone, start s, end s) on the audio's
    time axis (its frame t stands for the window centred 12.8 ms after 10 t ms, see SPHINX_OFFSET)."""
    hop = SPHINX_HOP / SAMPLE_RATE
    return [(re.sub(r"\(\d+\)$", "", word), fold_phone(phone), start * hop + SPHINX_OFFSET,
             (start + frames) * hop + SPHINX_OFFSET) for word, phone, start, frames in entries]


def frame_labels(segments: list[tuple[str, str, float, float]], samples: int) -> np.ndarray:
    """One class id per 10 ms frame (samples [160 k, 160 k + 160)): the phone whose span holds the frame's centre;
    frames outside every span are silence."""
    labels = np.zeros(samples // HOP, dtype=np.int16)
    centres = (np.arange(len(labels)) * HOP + HOP / 2) / SAMPLE_RATE
    for _, phone, start, end in segments:
        labels[(centres >= start) & (centres < end)] = PHONES.index(phone)
    return labels


class Aligner:
    """PocketSphinx en-US forced alignment: a linear grammar of the words with optional silence and noise fillers
    between them, then the phone alignment of the best path."""

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise SystemExit("the English phone set needs PocketSphinx: pip install pocketsphinx") from None
        self.decoder = Decoder(samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL")
        for word, phones in PRONUNCIATIONS.items():
            if self.decoder.lookup_word(word) is None:
                self.decoder.add_word(word, phones, False)

    def known(self, word: str) -> bool:
        return self.decoder.lookup_word(word) is not None

    def __call__(self, pcm: np.ndarray, words: list[str]) -> list[tuple[str, str, int, int]] | None:
        """int16 samples at 16 kHz and their words -> [(word, phone, start frame, frames)], or None if the
        grammar found no path through all the words."""
        decoder = self.decoder
        grammar = decoder.create_fsg("prompt", 0, len(words), [(i, i + 1, 1.0, w) for i, w in enumerate(words)])
        decoder.add_fsg("prompt", grammar)
        decoder.activate_search("prompt")
        data = np.ascontiguousarray(pcm, dtype=np.int16).tobytes()
        decoder.start_utt()
        decoder.process_raw(data, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is None or hypothesis.hypstr.split() != words:
            return None
        decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(data, full_utt=True)
        decoder.end_utt()
        return [(word.name, phone.name, phone.start, phone.duration) for word in decoder.get_alignment()
                for phone in word]


# ---------------------------------------------------------------- the corpus

def voice_items(voice: Voice, root: Path, wav_dir: Path, decoder: str) -> list[tuple[AudioItem, float]]:
    """The speech prompts of one voice, decoded to 16 kHz wav files under wav_dir: [(item, seconds)]."""
    from cpc.progress import progress_bar

    transcripts = read_transcripts(voice, root)
    items = []
    for prompt, path in progress_bar(prompt_files(root, voice).items(), desc=voice.name, unit="prompt"):
        text = transcripts.get(prompt, "")
        if not is_speech(prompt, text):
            continue
        audio = read_prompt(path, decoder)
        if len(audio) < HOP:
            continue
        key = safe_key(f"{voice.name}_{prompt}")
        wav = wav_dir / voice.name / f"{key}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        sf.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
        meta = {"language": voice.language, "locale": voice.locale, "voice": voice.name, "prompt": prompt,
                "text": text, "licence": voice.licence, "author": voice.author, "package": voice.package,
                "bandwidth": "narrowband" if voice.narrowband else "wideband"}
        items.append((AudioItem(str(wav), voice.name, key, meta), len(audio) / SAMPLE_RATE))
    return items


def english_set(items: list[AudioItem], out: Path, test_percent: float, max_mb: float) -> dict:
    """Align every English prompt, write labels, split lists and labelled dev/test shards; returns counts."""
    from cpc.progress import progress_bar

    aligner = Aligner()
    lines, segments_rows, skipped, splits = [], [], [], {"dev": set(), "test": set()}
    alignments = {}
    for item in progress_bar(items, desc="aligning English", unit="prompt"):
        words = english_words(item.fields["text"]) if item.fields["text"] else None
        if not words:
            skipped.append((item.key, "no single reading of the transcript", item.fields["text"]))
            continue
        unknown = [w for w in words if not aligner.known(w)]
        if unknown:
            skipped.append((item.key, f"not in the dictionary: {' '.join(unknown)}", item.fields["text"]))
            continue
        pcm, _ = sf.read(item.path, dtype="int16")
        entries = aligner(pcm, words)
        if entries is None:
            skipped.append((item.key, "no alignment", item.fields["text"]))
            continue
        segments = phone_segments(entries)
        labels = frame_labels(segments, len(pcm))
        alignments[item.key] = labels
        lines.append(f"{item.key} {' '.join(map(str, labels))}")
        segments_rows += [f"{item.key}\t{w}\t{p}\t{s:.4f}\t{e:.4f}" for w, p, s, e in segments]
        item.fields["words"] = " ".join(words)
        splits["test" if held_out(" ".join(words), test_percent, "english-test") else "dev"].add(item.key)
    out.mkdir(parents=True, exist_ok=True)
    (out / "converted_aligned_phones.txt").write_text("\n".join(lines) + "\n")
    (out / "phones.txt").write_text("\n".join(PHONES) + "\n")
    (out / "segments.tsv").write_text("key\tword\tphone\tstart\tend\n" + "\n".join(segments_rows) + "\n")
    (out / "skipped.tsv").write_text("key\treason\ttranscript\n" + "".join(f"{k}\t{r}\t{t}\n" for k, r, t in skipped))
    for name, keys in splits.items():
        (out / f"{name}.txt").write_text("".join(f"{k}\n" for k in sorted(keys)))
    items = [item for item in items if item.key in alignments]
    write_splits(items, out, splits, alignments, max_bytes=max_mb * 1e6, sample_rate=SAMPLE_RATE)
    print(f"English: {len(items)} prompts aligned ({len(splits['dev'])} dev, {len(splits['test'])} test), "
          f"{len(skipped)} left out (english/skipped.tsv)")
    return {"aligned": len(items), "skipped": len(skipped)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--narrowband", action="store_true", help="add the 8 kHz voices (es-CO, fr-FR, it-IT)")
    parser.add_argument("--voices", nargs="*", help="only these voices (names as in voices.tsv)")
    parser.add_argument("--no-english", action="store_true", help="skip the English phone set (no PocketSphinx)")
    parser.add_argument("--test-percent", type=float, default=40.0, help="English prompts held out for test")
    parser.add_argument("--val-percent", type=float, default=5.0, help="pretraining prompts held out for validation")
    parser.add_argument("--decoder", choices=["auto", "g722", "ffmpeg"], default="auto")
    parser.add_argument("--shard-mb", type=float, default=10.0,
                        help="shard size: small shards let a weighted mixture of corpora draw them finely")
    parser.add_argument("--keep-wav", action="store_true", help="keep the decoded wav/ folder")
    parser.add_argument("--no-install", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    voices = [v for v in VOICES if (args.narrowband or not v.narrowband) and (not args.voices or v.name in args.voices)]
    if args.no_english:
        voices = [v for v in voices if v.language not in EVALUATION_ONLY]
    if not voices:
        raise SystemExit("no voice selected")
    wav_dir = out / "wav"
    pretrain, english, rows = [], [], []
    for voice in voices:
        root = voice_root(voice, out / "debs", install=not args.no_install)
        pairs = voice_items(voice, root, wav_dir, args.decoder)
        seconds = sum(s for _, s in pairs)
        rows.append(f"{voice.name}\t{voice.locale}\t{'eval' if voice.language in EVALUATION_ONLY else 'pretrain'}\t"
                    f"{len(pairs)}\t{seconds / 3600:.3f}\t{voice.author}\t{voice.licence}\t{voice.package}")
        if voice.language in EVALUATION_ONLY:
            english.extend(item for item, _ in pairs)
        else:
            pretrain.extend(item for item, _ in pairs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "voices.tsv").write_text("voice\tlocale\tuse\tspeech prompts\thours\tauthor\tlicence\tpackage\n"
                                    + "\n".join(rows) + "\n")
    print("\n".join(rows))
    if pretrain:
        splits = {"train": set(), "val": set()}
        for item in pretrain:
            splits["val" if held_out(item.fields["text"] or item.key, args.val_percent, "pretrain-val") else "train"].add(item.key)
        write_splits(pretrain, out / "pretrain", splits, max_bytes=args.shard_mb * 1e6, sample_rate=SAMPLE_RATE)
    if english:
        english_set(english, out / "english", args.test_percent, args.shard_mb)
    if not args.keep_wav:
        shutil.rmtree(wav_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
