"""Real English speech by many actors, offline: the dialogue of the CD version of Flight of the Amazon Queen
(Debian main: `flight-of-the-amazon-queen`, freeware) -> a pretraining corpus of 16 kHz mono FLAC shards.

    python datasets/amazon_queen/make_shards.py --out data/amazon_queen

The game's data is one resource file, `queen.1c`, as rebuilt by ScummVM's compression tool: a table of named
entries, then their bytes. Its layout (all integers big-endian):
    "QTBL", version string (6 bytes, "CEM10" = CD, English), 2 bytes, compression (1 byte: 0 none, 1 MP3,
    2 Ogg Vorbis, 3 FLAC), entry count (uint16), then per entry: name (12 bytes, NUL padded), bundle (uint8),
    offset (uint32, from the start of the file), size (uint32).
Every sound is an `.SB` entry; in a rebuilt file its bytes are one clip in the compression format (MP3 at
11.025 kHz here). Which `.SB` entries are speech, and whose, follows from how the game names the voice files:
    TTHHHHPn, TTXXXXPn   dialogue: the person Joe talks to. TT (decimal) is the talk key of a dialogue file
                         (`NAME.DOG`, its key is the third int16 after a 20-byte header); speaker = NAME without
                         trailing digits, lower case (SPARKY1..8.DOG -> "sparky")
    TTHHHHJn, TTSSSSJn,  dialogue: Joe, the player character (speaker "joe")
    TTXXXXJn
    JOEddddn             Joe's descriptions and remarks (speaker "joe")
    BBBBBiin             a cutaway scene BBBBB (the name of a `.CUT` entry, padded with "_" to 5 letters), record
                         ii of its list: speaker "joe" for Joe's records, else the name of the person object the
                         record speaks as (QUEEN.JAS / QUEEN2.JAS object table, lower case: "princess_azura");
                         empty for text records and for the 3 cutaways whose records do not read back cleanly
(HHHH: the dialogue line, hex; n: the part of the sentence, hex.) The other `.SB` entries are sound effects (names
padded with "S": 116BSSSS) or entries no naming rule reaches (left out, listed in skipped.tsv).

Output under --out: train/, val/ shards (speaker, kind, entry, scene, licence in each sample's json; val = about
--val-percent of the sentences, chosen by a hash of the sentence's voice file prefix, so the parts of a sentence
stay together), clips.tsv (every speech clip: key, speaker, kind, seconds), speakers.tsv, skipped.tsv,
bandwidth.tsv (the corpus power spectrum after resampling to 16 kHz). The package is installed with apt-get when
missing (as root; --no-install refuses and says what to install).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
import shutil
import struct
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
from cpc.data.ingest import AudioItem  # noqa: E402
from cpc.data.labels import safe_key  # noqa: E402
from cpc.data.shards import write_splits  # noqa: E402

SAMPLE_RATE = 16000
HOP = 160
PACKAGE = "flight-of-the-amazon-queen"
RESOURCE = Path("/usr/share/scummvm/flight-of-the-amazon-queen/queen.1c")
LICENCE = "Flight-of-the-Amazon-Queen-License (freeware; modified versions must say so)"
AUTHOR = "John Passfield and Steven Stamatiadis"
MAGIC = b"QTBL"
HEADER = struct.Struct(">4s6s2sBH")  # magic, version, 2 bytes, compression, entry count
ENTRY = struct.Struct(">12sBII")  # name, bundle, offset, size
DOG_HEADER = 20  # bytes before a dialogue file's own header (level count, unique key, talk key, ...)
CUT_HEADER = 20  # the same for a cutaway file
JAS_HEADER = 20  # and for the object table
ROOM_FADE = -1  # the object number of a cutaway record that fades the room in: Joe's record
TEXT_RECORDS = (-2, -3, -4)  # cutaway records of text spoken and/or shown without a person (speaker unknown)
COMPRESSION = {1: "MP3", 2: "OGG", 3: "FLAC"}  # the codes ScummVM's compression tool writes; soundfile reads all
DIALOGUE = re.compile(r"(?P<key>\d\d)(?:[0-9A-F]{4}|XXXX|SSSS)(?P<who>[PJ])[0-9A-F]")
JOE_REMARK = re.compile(r"JOE\d{5}")
SOUND_EFFECT = re.compile(r"\d+[A-Z]?S+")


class Entry(NamedTuple):
    """One named entry of the resource table: where its bytes are in the file."""

    name: str
    bundle: int
    offset: int
    size: int


class Clip(NamedTuple):
    """What a `.SB` entry's name says: speech or not, the speaker (empty when unknown) and the scene."""

    kind: str  # "dialogue", "joe", "cutaway", or "sound effect" / "unknown" (not speech)
    speaker: str
    scene: str  # the dialogue or cutaway file the line belongs to ("" for Joe's remarks)


def sibling(relative: str):
    """Another datasets/ script as a module (datasets/ holds scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(f"datasets_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prompts = sibling("recorded_prompts/make_shards.py")  # ensure_installed, held_out


# ---------------------------------------------------------------- the resource file

def read_table(data: bytes, path: str = "queen.1c") -> tuple[str, str, dict[str, Entry]]:
    """A rebuilt resource file's bytes -> (version string, compression name, {entry name: Entry})."""
    if len(data) < HEADER.size or data[:4] != MAGIC:
        raise ValueError(f"{path} is not a rebuilt Flight of the Amazon Queen resource file (no QTBL table): "
                         f"use the queen.1c of the Debian package {PACKAGE}")
    _, version, _, compression, count = HEADER.unpack_from(data)
    if compression not in COMPRESSION:
        raise ValueError(f"{path}: sounds stored with compression code {compression}; this reader takes "
                         f"{', '.join(f'{c} ({n})' for c, n in COMPRESSION.items())}")
    if len(data) < HEADER.size + count * ENTRY.size:
        raise ValueError(f"{path}: the table of {count} entries runs past the end of the file (cut short?)")
    entries = {}
    for index in range(count):
        raw, bundle, offset, size = ENTRY.unpack_from(data, HEADER.size + index * ENTRY.size)
        name = raw.split(b"\0", 1)[0].decode("ascii")
        if bundle != 1 or offset + size > len(data):
            raise ValueError(f"{path}: entry {name} lies outside the file (bundle {bundle}, offset {offset}, "
                             f"size {size}); the file is cut short or not a single-bundle rebuilt file")
        entries[name] = Entry(name, bundle, offset, size)
    return version.split(b"\0", 1)[0].decode("ascii"), COMPRESSION[compression], entries


def entry_bytes(data: bytes, entry: Entry) -> bytes:
    return data[entry.offset : entry.offset + entry.size]


def talk_keys(data: bytes, entries: dict[str, Entry]) -> dict[int, str]:
    """{talk key: dialogue file name} from every `.DOG` entry (the key is the 3rd int16 of its own header)."""
    keys = {}
    for name, entry in entries.items():
        if name.endswith(".DOG"):
            key = struct.unpack_from(">h", data, entry.offset + DOG_HEADER + 4)[0]
            keys[key] = name
    return keys


def character(dialogue_file: str) -> str:
    """A dialogue file's name -> the character Joe talks to: "SPARKY3.DOG" -> "sparky"."""
    return re.sub(r"\d+$", "", dialogue_file.rsplit(".", 1)[0]).lower()


class GameObject(NamedTuple):
    """An entry of the game's object table (QUEEN.JAS): its name and whether it is a person."""

    name: str
    person: bool


def game_objects(data: bytes, entries: dict[str, Entry]) -> list[GameObject | None]:
    """The object table, indexed by object number (index 0 is None): QUEEN.JAS holds after its 20-byte header
    the counts of rooms, names, objects, descriptions (uint16), then 8 int16 per object (name index, x, y,
    description, entry object, room, state, image; image -3 or -4 = a person); the names are lines of the text
    entry QUEEN2.JAS, after the descriptions."""
    missing = [name for name in ("QUEEN.JAS", "QUEEN2.JAS") if name not in entries]
    if missing:
        raise ValueError(f"the resource file has no {' or '.join(missing)} (the game's object table): use the "
                         f"queen.1c of the Debian package {PACKAGE}")
    jas = entry_bytes(data, entries["QUEEN.JAS"])[JAS_HEADER:]
    _, _, count, descriptions = struct.unpack_from(">4H", jas)
    lines = entry_bytes(data, entries["QUEEN2.JAS"]).decode("latin-1").splitlines()
    objects: list[GameObject | None] = [None]
    for index in range(count):
        name, *_, image = struct.unpack_from(">8h", jas, 8 + 16 * index)
        line = descriptions + abs(name) - 1
        objects.append(GameObject(lines[line].strip() if name and line < len(lines) else "", image in (-3, -4)))
    return objects


def cutaway_speakers(cut: bytes, objects: list[GameObject | None]) -> dict[int, str] | None:
    """{record index (1-based, as in the voice file name): speaker} of one `.CUT` entry, for the records that
    speak as a person ("joe" for Joe, else the object's name, lower case); None when the walk through the
    records does not end 2 bytes before the file's game-state section (a record read wrongly).

    After a 20-byte header: panel, record count (int16, negative = not skippable), flags, then the offsets of
    the game-state section, the sentences and the bank names (uint16). Each record: 17 int16 (object number,
    3 move/bank values, animation list, execute, 4 limits, special move, animation type, from-object, 2 start
    coordinates, room, scale), a person count and that many int16; a record that runs an animation is
    followed by frames of a header int16 and 9 int16 each, up to a header of -2. A record is spoken by a
    person when it has no animation list and its object is Joe (0) or a person object."""
    try:
        return _walk_cutaway(cut[CUT_HEADER:], objects)
    except struct.error:  # a misread record pointed past the end
        return None


def _walk_cutaway(body: bytes, objects: list[GameObject | None]) -> dict[int, str] | None:
    _, count, _, game_state = struct.unpack_from(">HhhH", body)
    offset, speakers = 12, {}  # the header: panel, object count, flags, 3 section offsets
    for index in range(1, abs(count) + 1):
        record = struct.unpack_from(">17h", body, offset)
        number, anim_list, execute, from_object = record[0], record[4], record[5], record[12]
        people = struct.unpack_from(">h", body, offset + 34)[0]
        offset += 36 + 2 * people
        number = 0 if number == ROOM_FADE else number  # a room fade is Joe's record
        known = 0 < number < len(objects)
        person = anim_list == 0 and (number == 0 or (known and objects[number].person))
        animated = not person and from_object <= 0 and number not in TEXT_RECORDS and execute != 0
        if animated:  # animation frames: a header int16 and 9 int16 each, until a header of -2
            while struct.unpack_from(">h", body, offset)[0] != -2:
                offset += 20
            offset += 2
        elif person and from_object <= 0:
            name = "joe" if number == 0 else objects[number].name.lower()
            speakers[index] = "joe" if name == "joe king" else re.sub(r"[^a-z0-9]+", "_", name).strip("_")
    return speakers if offset + 2 == game_state else None


def classify(sound: str, keys: dict[int, str], cutaways: dict[str, dict[int, str] | None]) -> Clip:
    """A `.SB` entry's name without the extension -> what it is, by the game's voice file naming rules."""
    dialogue = DIALOGUE.fullmatch(sound)
    if dialogue and int(dialogue["key"]) in keys:
        dog = keys[int(dialogue["key"])]
        speaker = "joe" if dialogue["who"] == "J" else character(dog)
        return Clip("dialogue", speaker, dog.rsplit(".", 1)[0])
    if JOE_REMARK.fullmatch(sound):
        return Clip("joe", "joe", "")
    scene = sound[:5].rstrip("_")
    if scene in cutaways and re.fullmatch(r"\d\d[0-9A-F]", sound[5:]):
        return Clip("cutaway", (cutaways[scene] or {}).get(int(sound[5:7]), ""), scene)
    if SOUND_EFFECT.fullmatch(sound):
        return Clip("sound effect", "", "")
    return Clip("unknown", "", "")


# ---------------------------------------------------------------- audio

def decode_clip(encoded: bytes) -> tuple[np.ndarray, int]:
    """One compressed clip (MP3, Ogg or FLAC bytes) -> float32 mono at 16 kHz and its original rate."""
    audio, rate = sf.read(io.BytesIO(encoded), dtype="float32", always_2d=True)
    return resampled(audio.mean(axis=1), rate), rate


def resampled(mono: np.ndarray, rate: int) -> np.ndarray:
    """float32 mono at `rate` -> at 16 kHz (torchaudio's windowed sinc)."""
    import torch
    import torchaudio.functional

    if rate == SAMPLE_RATE or not len(mono):
        return mono
    return torchaudio.functional.resample(torch.from_numpy(mono), rate, SAMPLE_RATE).numpy()


def clip_item(audio: np.ndarray, key: str, speaker: str, meta: dict, wav_dir: Path) -> tuple[AudioItem, float]:
    """A decoded 16 kHz clip -> a 16-bit wav file under wav_dir and its (item, seconds)."""
    wav = wav_dir / f"{key}.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
    return AudioItem(str(wav), speaker, key, meta), len(audio) / SAMPLE_RATE


class Spectrum:
    """The summed power spectrum of many clips (Hann windows of 512 samples, hop 256) at 16 kHz."""

    def __init__(self, window: int = 512):
        self.window = window
        self.power = np.zeros(window // 2 + 1)
        self.hz = np.fft.rfftfreq(window, 1 / SAMPLE_RATE)

    def add(self, audio: np.ndarray) -> None:
        if len(audio) < self.window:
            return
        frames = np.lib.stride_tricks.sliding_window_view(audio, self.window)[:: self.window // 2]
        self.power += (np.abs(np.fft.rfft(frames * np.hanning(self.window), axis=1)) ** 2).sum(axis=0)

    def share_above(self, hz: float) -> float:
        return float(self.power[self.hz >= hz].sum() / max(self.power.sum(), 1e-30))

    def level(self, low_hz: float, high_hz: float) -> float:
        """Mean power per Hz in [low, high) relative to that in 0.1-4 kHz, dB."""
        band = self.power[(self.hz >= low_hz) & (self.hz < high_hz)].mean()
        return float(10 * np.log10(band / max(self.power[(self.hz >= 100) & (self.hz < 4000)].mean(), 1e-30)))

    def edge(self, share: float = 0.99) -> float:
        """The frequency below which `share` of the energy lies (Hz)."""
        cumulative = np.cumsum(self.power) / max(self.power.sum(), 1e-30)
        return float(self.hz[np.searchsorted(cumulative, share)])


# ---------------------------------------------------------------- the corpus

def speech_items(resource: Path, wav_dir: Path) -> tuple[list[tuple[AudioItem, float]], list[tuple[str, str]],
                                                         Spectrum]:
    """The speech clips of a resource file, decoded to 16 kHz wav files under wav_dir: ([(item, seconds)],
    [(left-out entry, reason)], their spectrum)."""
    from cpc.progress import progress_bar

    data = resource.read_bytes()
    version, codec, entries = read_table(data, str(resource))
    keys = talk_keys(data, entries)
    objects = game_objects(data, entries)
    cutaways = {name[:-4]: cutaway_speakers(entry_bytes(data, entry), objects) for name, entry in entries.items()
                if name.endswith(".CUT")}
    items, skipped, spectrum = [], [], Spectrum()
    sounds = sorted(name for name in entries if name.endswith(".SB"))
    for name in progress_bar(sounds, desc=f"decoding {resource.name} ({version}, {codec})", unit="clip"):
        sound = name[:-3]
        clip = classify(sound, keys, cutaways)
        if clip.kind in ("sound effect", "unknown"):
            skipped.append((name, "sound effect" if clip.kind == "sound effect" else "no voice file naming rule"))
            continue
        try:
            audio, rate = decode_clip(entry_bytes(data, entries[name]))
        except Exception as error:  # soundfile raises LibsndfileError, RuntimeError or TypeError by format
            skipped.append((name, f"undecodable: {error}"))
            continue
        if len(audio) < HOP:
            skipped.append((name, "empty (under one 10 ms frame)"))
            continue
        spectrum.add(audio)
        meta = {"language": "en", "kind": clip.kind, "entry": name, "scene": clip.scene, "game": version,
                "codec": f"{codec} {rate} Hz", "bandwidth": "narrowband" if rate < SAMPLE_RATE else "wideband",
                "licence": LICENCE, "author": AUTHOR, "package": PACKAGE}
        items.append(clip_item(audio, safe_key(f"queen_{sound}"), clip.speaker, meta, wav_dir))
    return items, skipped, spectrum


def split_of(entry: str, val_percent: float) -> str:
    """"train" or "val" for a `.SB` entry, from a hash of its voice file prefix (the name without the part
    digit and extension), so the parts of one sentence stay together."""
    return "val" if prompts.held_out(entry[:-4], val_percent, "amazon-queen-val") else "train"


def write_tables(out: Path, pairs: list[tuple[AudioItem, float]], skipped: list[tuple[str, str]],
                 spectrum: Spectrum) -> dict[str, tuple[int, float]]:
    """clips.tsv, speakers.tsv, skipped.tsv, bandwidth.tsv under out; returns {speaker: (clips, seconds)}."""
    out.mkdir(parents=True, exist_ok=True)
    speakers: dict[str, tuple[int, float]] = {}
    for item, seconds in pairs:
        clips, total = speakers.get(item.speaker, (0, 0.0))
        speakers[item.speaker] = (clips + 1, total + seconds)
    (out / "clips.tsv").write_text("key\tentry\tspeaker\tkind\tscene\tseconds\n" + "".join(
        f"{i.key}\t{i.fields['entry']}\t{i.speaker}\t{i.fields['kind']}\t{i.fields['scene']}\t{s:.3f}\n"
        for i, s in pairs))
    ranked = sorted(speakers.items(), key=lambda pair: -pair[1][1])
    (out / "speakers.tsv").write_text("speaker\tclips\thours\n" + "".join(
        f"{name or '(unknown)'}\t{clips}\t{seconds / 3600:.3f}\n" for name, (clips, seconds) in ranked))
    (out / "skipped.tsv").write_text("entry\treason\n" + "".join(f"{n}\t{r}\n" for n, r in skipped))
    bands = [(3000, 3500), (3500, 4000), (4000, 4500), (4500, 5000), (5000, 5500), (5500, 8000)]
    rows = [(f"level {lo / 1000:g}-{hi / 1000:g} kHz (dB per Hz, relative to 0.1-4 kHz)",
             f"{spectrum.level(lo, hi):.1f}") for lo, hi in bands]
    rows += [("share of energy above 4 kHz", f"{spectrum.share_above(4000):.4f}"),
            ("share of energy above 5.5 kHz", f"{spectrum.share_above(5500):.6f}"),
            ("99% of the energy below (Hz)", f"{spectrum.edge(0.99):.0f}"),
            ("99.9% of the energy below (Hz)", f"{spectrum.edge(0.999):.0f}")]
    (out / "bandwidth.tsv").write_text("".join(f"{name}\t{value}\n" for name, value in rows))
    return speakers


def options(doc: str, source: str, default: Path, source_help: str, unit: str) -> argparse.ArgumentParser:
    """The command line both game corpora share; `source` names the option that locates the game's files."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument(source, default=str(default), help=source_help)
    parser.add_argument("--val-percent", type=float, default=5.0, help=f"{unit} held out for validation")
    parser.add_argument("--shard-mb", type=float, default=10.0,
                        help="shard size: small shards let a weighted mixture of corpora draw them finely")
    parser.add_argument("--keep-wav", action="store_true", help="keep the decoded wav/ folder")
    parser.add_argument("--no-install", action="store_true")
    return parser


def shard(out: Path, pairs: list[tuple[AudioItem, float]], held_out: Callable[[AudioItem], bool],
          args: argparse.Namespace) -> None:
    """train/ and val/ shard sets under out (`held_out` picks val), then the decoded wav/ folder goes unless kept."""
    splits = {"train": set(), "val": set()}
    for item, _ in pairs:
        splits["val" if held_out(item) else "train"].add(item.key)
    write_splits([item for item, _ in pairs], out, splits, max_bytes=args.shard_mb * 1e6, sample_rate=SAMPLE_RATE)
    if not args.keep_wav:
        shutil.rmtree(out / "wav", ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = options(__doc__, "--resource", RESOURCE, "the game's queen.1c", "sentences").parse_args(argv)
    out, resource = Path(args.out), Path(args.resource)
    if args.resource == str(RESOURCE):
        prompts.ensure_installed([PACKAGE], install=not args.no_install)
    if not resource.is_file():
        raise SystemExit(f"--resource {resource} does not exist: give the path of the game's queen.1c")
    wav_dir = out / "wav"
    try:
        pairs, skipped, spectrum = speech_items(resource, wav_dir)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    speakers = write_tables(out, pairs, skipped, spectrum)
    seconds = sum(s for _, s in pairs)
    print(f"{len(pairs)} speech clips, {seconds / 3600:.2f} h, {len([s for s in speakers if s])} named speakers "
          f"({speakers.get('', (0, 0.0))[1] / 3600:.2f} h unnamed); {len(skipped)} entries left out "
          f"(skipped.tsv); energy above 4 kHz {spectrum.share_above(4000):.2%}, 99% below "
          f"{spectrum.edge(0.99):.0f} Hz")
    shard(out, pairs, lambda item: split_of(item.fields["entry"], args.val_percent) == "val", args)


if __name__ == "__main__":
    main()
