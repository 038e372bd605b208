"""More real English speech by many actors, offline: the voice-overs of the CD version of Beneath a Steel Sky
(Debian main: `beneath-a-steel-sky`, freeware) -> a pretraining corpus of 16 kHz mono FLAC shards.

    python datasets/steel_sky/make_shards.py --out data/steel_sky

The game's data is a directory, `sky.dnr`, and one data file, `sky.dsk` (integers little-endian):
    sky.dnr: the entry count (uint32), then 8 bytes per file: file number (uint16); offset (the low 23 bits of a
    uint32 at byte 2; bit 23 set = the offset counts 16-byte units); at byte 5 a 24-bit field: size (the low 22
    bits), bit 22 = the packed data holds the file header too, bit 23 = stored unpacked.
    A file starts with a 22-byte header of 11 uint16 (flag, ..., total size at word 6, ...). When it is packed
    (bit 23 clear and bit 7 of the flag set), the bytes after the header are RNC ProPack (method 1): LZ77 with
    Huffman-coded literal-run lengths, offsets and match lengths, 16-bit CRCs of the packed and unpacked data.
Speech: the game plays the text line `section << 12 | line` from file 50000 + (first file of the section) +
line, as 8-bit unsigned PCM at 11,025 Hz after the header, `total size - 22` bytes long (ScummVM's
engines/sky/disk.cpp and sound.cpp read the files this way); every file numbered 50000-55999 is such a line.
Which character speaks a line is decided by the game's scripts, not by the files, so its speaker is left empty.
The CD intro plays 88 more voice files (59500-59672, among the intro's pictures and background sounds), whose
speakers the intro sequence names (foster, shaman, joey, reich, guard). Sound effects and music live in other
files.

Output under --out: train/, val/ shards (file number, section and line, licence in each sample's json; val = about
--val-percent of the clips by a hash of the file number), clips.tsv, speakers.tsv, skipped.tsv (files that did
not unpack: CRC or length mismatch), bandwidth.tsv. The package is installed with apt-get when missing (as root;
--no-install refuses and says what to install).
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np


PACKAGE = "beneath-a-steel-sky"
GAME = Path("/usr/share/scummvm/beneath-a-steel-sky")
LICENCE = "Beneath-a-Steel-Sky-License (freeware; modified versions must say so)"
AUTHOR = "Revolution Software Ltd"
LINE_FILES = range(50000, 56000)  # the voice of text line `section << 12 | line`, sections 0-7
SECTION_FIRST_FILE = [0, 600, 1100, 2430, 3380, 4530, 5080, 5230]  # its file: 50000 + first file + line
# The CD intro's voice-overs (CDV_00 .. CDV_87) and who speaks them, as the intro sequence in ScummVM's
# engines/sky/intro.cpp lists them (the game files do not name speakers; CDV_28 and CDV_44 are never played).
# Files around them in 59494-59672 are the intro's images, palettes, animations and background sounds.
INTRO_VOICES = dict(zip(
    [59500, 59504, 59505, 59507, 59508, 59510, 59511, 59513, 59514, 59515, 59518, 59520, 59523, 59525, 59527,
     59528, 59531, 59534, 59535, 59536, 59539, 59541, 59545, 59546, 59551, 59554, 59556, 59558, 59561, 59562,
     59563, 59565, 59566, 59567, 59568, 59570, 59574, 59576, 59579, 59581, 59583, 59587, 59588, 59590, 59594,
     59596, 59600, 59602, 59606, 59610, 59612, 59613, 59614, 59615, 59616, 59618, 59621, 59622, 59624, 59627,
     59628, 59629, 59630, 59631, 59632, 59633, 59635, 59639, 59642, 59644, 59647, 59648, 59649, 59654, 59655,
     59656, 59659, 59660, 59663, 59664, 59665, 59666, 59667, 59668, 59669, 59670, 59671, 59672],
    [{"F": "foster", "S": "shaman", "J": "joey", "R": "reich", "G": "guard", "-": ""}[initial] for initial in
     "FSSSSSSSFFFSSFJSFFSJJFFFRRFS-RGRRRRRFFFFSSFS-FFFFFFFFJFSSSRRRFFSGFRFFFGRFFRFFFFRFFGFGGFF"]))
HEADER = 22  # bytes of a file header: 11 uint16
SPEECH_RATE = 11025


def _sibling(relative: str):
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(f"datasets_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


queen = _sibling("amazon_queen/make_shards.py")  # clip_item, resampled, Spectrum, write_tables; prompts' helpers


class DiskFile(NamedTuple):
    """Where one file of sky.dsk is and how it is stored."""

    number: int
    offset: int
    size: int
    stored: bool  # bit 23: the bytes are the file as it is, not packed
    header_packed: bool  # bit 22: the packed data begins with the file header itself


class RncError(ValueError):
    """RNC data that does not unpack to what its header promises."""


# ---------------------------------------------------------------- the directory and the files

def read_directory(dnr: bytes, path: str = "sky.dnr") -> dict[int, DiskFile]:
    """sky.dnr's bytes -> {file number: DiskFile}."""
    if len(dnr) < 4 or len(dnr) < 4 + 8 * struct.unpack_from("<I", dnr)[0]:
        raise ValueError(f"{path} is not a Beneath a Steel Sky directory (its entry count does not fit the file): "
                         f"use the sky.dnr of the Debian package {PACKAGE}")
    files = {}
    for index in range(struct.unpack_from("<I", dnr)[0]):
        number, where = struct.unpack_from("<HI", dnr, 4 + 8 * index)
        flags = int.from_bytes(dnr[9 + 8 * index : 12 + 8 * index], "little")
        offset = (where & 0x7FFFFF) << (4 if where & 0x800000 else 0)
        files[number] = DiskFile(number, offset, flags & 0x3FFFFF, bool(flags >> 23 & 1), bool(flags >> 22 & 1))
    return files


def load_file(disk: bytes, entry: DiskFile) -> bytes:
    """One file of sky.dsk, unpacked, header included."""
    data = disk[entry.offset : entry.offset + entry.size]
    if len(data) < HEADER:
        raise RncError(f"file {entry.number} is cut short ({len(data)} bytes)")
    flag = struct.unpack_from("<H", data)[0]
    if entry.stored or not flag & 0x80:
        return data
    unpacked = rnc_unpack(data[HEADER:])
    return unpacked if entry.header_packed else data[:HEADER] + unpacked


def speech_samples(file: bytes, number: int) -> np.ndarray:
    """An unpacked speech file -> its 8-bit unsigned samples as float32 in [-1, 1)."""
    total = struct.unpack_from("<H", file, 12)[0]
    if total < HEADER or total > len(file):
        raise RncError(f"file {number}: its header says {total} bytes, it has {len(file)}")
    return (np.frombuffer(file, dtype=np.uint8, count=total - HEADER, offset=HEADER).astype(np.float32) - 128) / 128


def speech_line(number: int) -> tuple[int, int]:
    """A text line's speech file number -> (text section, line in the section)."""
    index = number - LINE_FILES.start
    section = max(s for s, first in enumerate(SECTION_FIRST_FILE) if first <= index)
    return section, index - SECTION_FIRST_FILE[section]


# ---------------------------------------------------------------- RNC ProPack, method 1

def crc16(data: bytes) -> int:
    """CRC-16 (polynomial 0xA001, reflected, initial 0), the checksum RNC headers carry."""
    crc = 0
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
        table.append(value)
    return table


_CRC_TABLE = _crc_table()


class _Bits:
    """RNC's bit stream: 16-bit little-endian words read least significant bit first, loaded only when needed,
    so that literal bytes can sit in the same byte stream right after the last word loaded."""

    def __init__(self, data: bytes, position: int):
        self.data, self.position, self.bits, self.count = data, position, 0, 0

    def _word(self, position: int) -> int:
        return int.from_bytes(self.data[position : position + 2].ljust(2, b"\0"), "little")

    def peek(self, n: int) -> int:
        """The next n <= 16 bits without consuming them (nor loading a word for good)."""
        bits = self.bits if self.count >= n else self.bits | self._word(self.position) << self.count
        return bits & ((1 << n) - 1)

    def read(self, n: int) -> int:
        while self.count < n:
            self.bits |= self._word(self.position) << self.count
            self.position += 2
            self.count += 16
        value = self.bits & ((1 << n) - 1)
        self.bits >>= n
        self.count -= n
        return value

    def take_bytes(self, n: int) -> bytes:
        """n literal bytes from the byte stream, after the last word loaded."""
        chunk = self.data[self.position : self.position + n]
        self.position += n
        return chunk


class _Huffman:
    """One RNC code table: up to 16 symbols with 4-bit code lengths, canonical codes sent bit-reversed."""

    def __init__(self, bits: _Bits):
        lengths = [bits.read(4) for _ in range(bits.read(5))]
        self.width = max(lengths, default=0)
        self.lookup: list[tuple[int, int] | None] = [None] * (1 << self.width)
        code = 0
        for length in range(1, 17):
            for symbol, own in enumerate(lengths):
                if own != length:
                    continue
                reversed_code = int(f"{code >> (16 - length):0{length}b}"[::-1], 2)
                for high in range(1 << (self.width - length)):  # every continuation of the code's bits
                    self.lookup[reversed_code | high << length] = (symbol, length)
                code += 1 << (16 - length)

    def value(self, bits: _Bits) -> int:
        """The next coded value: symbols 0 and 1 are themselves, symbol s >= 2 is 2^(s-1) + (s-1 more bits).
        A table without codes decodes 0 from no bits."""
        if not self.width:
            return 0
        found = self.lookup[bits.peek(self.width)]
        if found is None:
            raise RncError("a bit pattern no code of the table matches")
        symbol, length = found
        bits.read(length)
        return symbol if symbol < 2 else (1 << (symbol - 1)) | bits.read(symbol - 1)


def rnc_unpack(packed: bytes) -> bytes:
    """RNC ProPack method 1 data (from its "RNC\\x01" header on) -> the unpacked bytes, CRCs checked."""
    if packed[:4] != b"RNC\x01":
        raise RncError(f"no RNC method 1 header (starts {packed[:4]!r})")
    unpacked_size, packed_size, unpacked_crc, packed_crc = struct.unpack_from(">IIHH", packed, 4)
    if crc16(packed[18 : 18 + packed_size]) != packed_crc:
        raise RncError("packed data CRC mismatch")
    bits = _Bits(packed, 18)
    bits.read(2)  # the lock and key flags
    out = bytearray()
    tables: list[_Huffman] = []
    for _ in range(packed[17]):  # blocks
        # a table sent without codes keeps the previous block's
        tables = [new if new.width or not tables else old for new, old in
                  zip([_Huffman(bits) for _ in range(3)], tables or [None] * 3)]
        runs, offsets, lengths = tables
        for left in range(bits.read(16), 0, -1):
            out += bits.take_bytes(runs.value(bits))
            if left > 1:  # every literal run but a block's last is followed by a match
                start = len(out) - offsets.value(bits) - 1
                length = lengths.value(bits) + 2
                if start < 0:
                    raise RncError("a match reaches before the start of the data")
                while length:  # a match may overlap its own output
                    piece = out[start : start + min(length, len(out) - start)]
                    out += piece
                    start, length = start + len(piece), length - len(piece)
    if len(out) != unpacked_size or crc16(out) != unpacked_crc:
        raise RncError(f"unpacked {len(out)} bytes of {unpacked_size}, or their CRC does not match")
    return bytes(out)


# ---------------------------------------------------------------- the corpus

def speech_items(game: Path, wav_dir: Path) -> tuple[list, list[tuple[str, str]], object]:
    """The speech files of the game, decoded to 16 kHz wav files under wav_dir: ([(item, seconds)],
    [(left-out file, reason)], their spectrum)."""
    from cpc.progress import progress_bar

    files = read_directory((game / "sky.dnr").read_bytes(), str(game / "sky.dnr"))
    disk = (game / "sky.dsk").read_bytes()
    items, skipped, spectrum = [], [], queen.Spectrum()
    numbers = sorted(n for n in files if n in LINE_FILES or n in INTRO_VOICES)
    for number in progress_bar(numbers, desc="unpacking sky.dsk speech", unit="clip"):
        try:
            audio = queen.resampled(speech_samples(load_file(disk, files[number]), number), SPEECH_RATE)
        except RncError as error:
            skipped.append((str(number), str(error)))
            continue
        if len(audio) < queen.HOP:
            skipped.append((str(number), "empty (under one 10 ms frame)"))
            continue
        spectrum.add(audio)
        if number in INTRO_VOICES:
            kind, scene, speaker = "intro", "intro", INTRO_VOICES[number]
        else:
            kind, scene, speaker = "line", "section {}, line {}".format(*speech_line(number)), ""
        meta = {"language": "en", "kind": kind, "entry": str(number), "scene": scene,
                "codec": f"8-bit PCM {SPEECH_RATE} Hz", "bandwidth": "narrowband", "licence": LICENCE,
                "author": AUTHOR, "package": PACKAGE}
        items.append(queen.clip_item(audio, f"sky_{number}", speaker, meta, wav_dir))
    return items, skipped, spectrum


def main(argv: list[str] | None = None) -> None:
    args = queen.options(__doc__, "--game", GAME, "the folder holding sky.dnr and sky.dsk", "clips").parse_args(argv)
    out, game = Path(args.out), Path(args.game)
    if args.game == str(GAME):
        queen.prompts.ensure_installed([PACKAGE], install=not args.no_install)
    missing = [name for name in ("sky.dnr", "sky.dsk") if not (game / name).is_file()]
    if missing:
        raise SystemExit(f"--game {game} has no {' or '.join(missing)}: give the folder of the game's data files")
    wav_dir = out / "wav"
    try:
        pairs, skipped, spectrum = speech_items(game, wav_dir)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    queen.write_tables(out, pairs, skipped, spectrum)
    seconds = sum(s for _, s in pairs)
    print(f"{len(pairs)} speech clips, {seconds / 3600:.2f} h; {len(skipped)} files left out "
          f"(skipped.tsv); energy above 4 kHz {spectrum.share_above(4000):.2%}, 99% below "
          f"{spectrum.edge(0.99):.0f} Hz")
    queen.shard(out, pairs, lambda item: queen.prompts.held_out(item.fields["entry"], args.val_percent,
                                                                "steel-sky-val"), args)


if __name__ == "__main__":
    main()
