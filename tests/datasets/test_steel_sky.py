import struct

import numpy as np
import pytest

from cpc.data.labelled import load_utterances

from .conftest import load_script

sky = load_script("datasets/steel_sky/make_shards.py")

LENGTHS = [2, 2, 3, 4, 4, 4, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6]  # a complete prefix code over the 16 symbols


class RncWriter:
    """A small RNC method 1 packer for tests: bits least significant first in 16-bit little-endian words, literal
    bytes placed right after the last word a reader has loaded when it reaches them."""

    def __init__(self):
        self.layout: list = []  # word indexes and literal byte strings, in file order
        self.words: list[int] = []
        self.count = 0

    def bits(self, value: int, n: int) -> None:
        for i in range(n):
            if self.count == 16 * len(self.words):
                self.words.append(0)
                self.layout.append(len(self.words) - 1)
            self.words[self.count // 16] |= (value >> i & 1) << (self.count % 16)
            self.count += 1

    def literal(self, data: bytes) -> None:
        self.layout.append(bytes(data))

    def table(self, lengths: list[int]) -> dict[int, tuple[int, int]]:
        """Send code lengths; returns {symbol: (code as sent, bit count)} (canonical: shorter codes first)."""
        self.bits(len(lengths), 5)
        for length in lengths:
            self.bits(length, 4)
        codes, code, previous = {}, 0, 0
        for length, symbol in sorted((length, symbol) for symbol, length in enumerate(lengths) if length):
            code <<= length - previous
            previous = length
            codes[symbol] = (int(f"{code:0{length}b}"[::-1], 2), length)
            code += 1
        return codes

    def value(self, codes: dict[int, tuple[int, int]], value: int) -> None:
        symbol = value.bit_length()  # 0 -> 0, 1 -> 1, v >= 2 -> 2^(s-1) + (s-1 bits)
        self.bits(*codes[symbol])
        if symbol >= 2:
            self.bits(value - (1 << (symbol - 1)), symbol - 1)

    def packed(self, unpacked: bytes, blocks: int) -> bytes:
        body = b"".join(struct.pack("<H", self.words[item]) if isinstance(item, int) else item
                        for item in self.layout)
        header = b"RNC\x01" + struct.pack(">IIHH", len(unpacked), len(body), sky.crc16(unpacked),
                                          sky.crc16(body)) + bytes([0, blocks])
        return header + body


def rnc_pack(pieces: list[list], lengths: list[int] = LENGTHS) -> tuple[bytes, bytes]:
    """pieces: per block, a list of literal byte strings and (offset, length) matches, alternating and starting
    and ending with literals; a block after the first sends empty tables (the previous ones stay). Returns
    (packed, the bytes it unpacks to)."""
    writer, out = RncWriter(), bytearray()
    writer.bits(0, 2)
    codes = None
    for number, block in enumerate(pieces):
        tables = [writer.table(lengths if number == 0 else []) for _ in range(3)]
        codes = codes or tables
        runs, offsets, lengths_table = codes
        writer.bits((len(block) + 1) // 2, 16)
        for piece in block:
            if isinstance(piece, bytes):
                writer.value(runs, len(piece))
                writer.literal(piece)
                out += piece
            else:
                offset, length = piece
                writer.value(offsets, offset - 1)
                writer.value(lengths_table, length - 2)
                for _ in range(length):
                    out.append(out[-offset])
    return writer.packed(bytes(out), len(pieces)), bytes(out)


def speech_file(samples: np.ndarray, period: int, packed: bool, header_packed: bool = False) -> bytes:
    """A speech file of sky.dsk: 22-byte header (flag, total size at word 6), then 8-bit unsigned samples,
    stored, or RNC-packed after the header (the packed data holding the samples, or header and samples: 2
    periods as literals, the rest one overlapping match)."""
    pcm = samples.astype(np.uint8).tobytes()
    header = struct.pack("<11H", 0x80 if packed else 0, 0, 0, 0, 0, 0, 22 + len(pcm), 0, 0, 0, 0)
    if not packed:
        return header + pcm
    data = header + pcm if header_packed else pcm
    start = len(data) - len(pcm) + 2 * period
    packed_bytes, unpacked = rnc_pack([[data[:start], (period, len(data) - start), b""]])
    assert unpacked == data
    return header + packed_bytes  # the packed data always follows a header on disk


def directory(files: list[tuple[int, bytes, bool, bool]], sixteen: set[int] = frozenset()) -> tuple[bytes, bytes]:
    """(sky.dnr, sky.dsk) holding (number, bytes, stored, header packed) files; numbers in `sixteen` have their
    offset counted in 16-byte units."""
    disk, rows = bytearray(), []
    for number, data, stored, header_packed in files:
        disk += bytes(-len(disk) % 16)
        offset = len(disk) // 16 | 0x800000 if number in sixteen else len(disk)
        flags = len(data) | stored << 23 | header_packed << 22
        rows.append(struct.pack("<HI", number, offset)[:5] + flags.to_bytes(3, "little"))
        disk += data
    return struct.pack("<I", len(rows)) + b"".join(rows), bytes(disk)


def tone(seconds: float, period: int) -> np.ndarray:
    """8-bit unsigned samples of a sine repeating every `period` samples."""
    return np.round(128 + 60 * np.sin(2 * np.pi * np.arange(int(seconds * sky.SPEECH_RATE)) / period))


def test_rnc_unpacks_literals_overlapping_matches_and_a_second_block():
    blocks = [[b"abcdefgh" * 3, (8, 20), b"xyz", (1, 5), b""], [b"0123456789", (10, 25), b"!"]]
    packed, expected = rnc_pack(blocks)
    assert sky.rnc_unpack(packed) == expected
    assert expected[:52] == b"abcdefgh" * 5 + b"abcd" + b"xyzzzzzz"
    broken = bytearray(packed)
    broken[30] ^= 0x40
    with pytest.raises(sky.RncError, match="packed data CRC mismatch"):
        sky.rnc_unpack(bytes(broken))
    with pytest.raises(sky.RncError, match="no RNC method 1 header"):
        sky.rnc_unpack(b"PK\x03\x04" + bytes(20))


def test_crc16_is_the_arc_crc():
    assert sky.crc16(b"123456789") == 0xBB3D  # the CRC-16/ARC check value


def test_speech_file_numbers_name_section_and_line():
    assert sky.speech_line(50000) == (0, 0) and sky.speech_line(50599) == (0, 599)
    assert sky.speech_line(50600) == (1, 0) and sky.speech_line(52431) == (3, 1)
    assert sky.speech_line(55272) == (7, 42)
    assert len(sky.INTRO_VOICES) == 88 and sky.INTRO_VOICES[59500] == "foster" and sky.INTRO_VOICES[59527] == "joey"
    assert sky.INTRO_VOICES[59672] == "foster" and sky.INTRO_VOICES[59670] == "guard"


def test_directory_and_files_round_trip():
    samples = tone(0.2, 25)
    files = [(50001, speech_file(samples, 25, packed=True), False, False),
             (50002, speech_file(samples, 25, packed=False), True, False),
             (50003, speech_file(samples, 25, packed=True, header_packed=True), False, True)]
    dnr, dsk = directory(files, sixteen={50002})
    entries = sky.read_directory(dnr)
    assert sorted(entries) == [50001, 50002, 50003] and entries[50002].stored and entries[50003].header_packed
    for number in entries:
        audio = sky.speech_samples(sky.load_file(dsk, entries[number]), number)
        np.testing.assert_allclose(audio, (samples - 128) / 128)
    with pytest.raises(ValueError, match="sky.dnr is not a Beneath a Steel Sky directory"):
        sky.read_directory(struct.pack("<I", 99) + bytes(16))


def test_corpus_end_to_end(tmp_path):
    seconds = {50001: 0.6, 50700: 0.4, 51200: 0.5, 55272: 0.3, 52000: 0.45, 59500: 0.35, 59561: 0.3}
    files = [(n, speech_file(tone(s, 20 + n % 7), 20 + n % 7, packed=n != 51200), n == 51200, False)
             for n, s in seconds.items()]
    broken = bytearray(speech_file(tone(0.3, 30), 30, packed=True))
    broken[-3] ^= 0xFF
    files += [(50002, bytes(broken), False, False), (60300, b"not speech" * 10, True, False),
              (59494, speech_file(tone(0.3, 30), 30, packed=False), True, False)]  # an intro background sound
    dnr, dsk = directory(files)
    game = tmp_path / "game"
    game.mkdir()
    (game / "sky.dnr").write_bytes(dnr)
    (game / "sky.dsk").write_bytes(dsk)
    out = tmp_path / "out"
    sky.main(["--out", str(out), "--game", str(game), "--no-install", "--val-percent", "40"])
    train, val = load_utterances(str(out / "train")), load_utterances(str(out / "val"))
    utterances = {u.key: u for u in train + val}
    assert sorted(utterances) == sorted(f"sky_{n}" for n in seconds) and train and val
    assert {u.speaker for u in utterances.values()} == {"", "foster"} and {u.sample_rate for u in train} == {16000}
    assert utterances["sky_59500"].speaker == "foster" and utterances["sky_59561"].speaker == ""  # CDV_28: unnamed
    for number, length in seconds.items():
        samples = int(length * sky.SPEECH_RATE)
        assert len(utterances[f"sky_{number}"].wav) == -(-samples * 16000 // sky.SPEECH_RATE)
    skipped = dict(line.split("\t") for line in (out / "skipped.tsv").read_text().splitlines()[1:])
    assert list(skipped) == ["50002"] and "CRC" in skipped["50002"]  # files 60300 and 59494 are not speech
    clips = (out / "clips.tsv").read_text().splitlines()
    assert any(line.startswith("sky_55272\t55272\t\tline\tsection 7, line 42\t") for line in clips)
    assert any(line.startswith("sky_59500\t59500\tfoster\tintro\tintro\t") for line in clips)
    assert not (out / "wav").exists()
