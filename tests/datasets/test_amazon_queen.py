import io
import struct

import numpy as np
import pytest
import soundfile as sf

from cpc.data.labelled import load_utterances

from .conftest import load_script

queen = load_script("datasets/amazon_queen/make_shards.py")

CLIP_RATE = 11025
needs_mp3 = pytest.mark.skipif("MP3" not in sf.available_formats(), reason="this libsndfile cannot write MP3")


def mp3_clip(seconds: float, hz: float, seed: int = 0) -> bytes:
    """A short tone in noise, MP3 at 11.025 kHz as the game stores its speech."""
    t = np.arange(int(seconds * CLIP_RATE)) / CLIP_RATE
    audio = 0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    buffer = io.BytesIO()
    sf.write(buffer, audio.astype(np.float32), CLIP_RATE, format="MP3", subtype="MPEG_LAYER_III")
    return buffer.getvalue()


def dialogue_file(talk_key: int) -> bytes:
    """A `.DOG` entry: a 20-byte header, then level count, unique key, talk key (int16, big-endian) and the rest."""
    return bytes(20) + struct.pack(">5h", 1, 100 + talk_key, talk_key, 0, 0) + bytes(40)


def object_table(objects: list[tuple[int, str, int]]) -> dict[str, bytes]:
    """QUEEN.JAS and QUEEN2.JAS entries for objects 1.. given as (name index, name, image): two descriptions
    come first in the text, so name index n is line 2 + n - 1; a negative index is a hidden object."""
    descriptions = ["A description.", "Another one."]
    jas = bytes(20) + struct.pack(">4H", 1, len(objects), len(objects), len(descriptions))
    for name_index, _, image in objects:
        jas += struct.pack(">8h", name_index, 0, 0, 0, 0, 1, 0, image)
    names = [name for _, name, _ in sorted(objects, key=lambda o: abs(o[0]))]
    return {"QUEEN.JAS": jas, "QUEEN2.JAS": ("\r\n".join(descriptions + names) + "\r\n").encode("latin-1")}


OBJECTS = [(1, "Trader Bob", -4), (2, "Princess Azura", -3), (3, "door", -1), (-4, "Joe King", -4)]


def record(number: int, anim_list: int = 0, execute: int = 0, from_object: int = 0, people: tuple = ()) -> bytes:
    """One cutaway record: 17 int16 (object number 1st, animation list 5th, execute 6th, from-object 13th), then
    the person count and the persons."""
    values = [0] * 17
    values[0], values[4], values[5], values[12] = number, anim_list, execute, from_object
    return struct.pack(f">18h{len(people)}h", *values, len(people), *people)


def frames(count: int) -> bytes:
    """Animation frames after a record: a header and 9 int16 each, then the end header -2."""
    return b"".join(struct.pack(">10h", 1, *range(9)) for _ in range(count)) + struct.pack(">h", -2)


CUTAWAY = [record(0), record(2, people=(2, 4)), record(3, anim_list=1, execute=1) + frames(2), record(-2),
           record(-1), record(1, anim_list=5), record(4), record(2, from_object=2), record(3, execute=1) + frames(1)]


def cutaway_file(records: list[bytes]) -> bytes:
    """A `.CUT` entry: 20 bytes, the header (panel, count, flags, 3 offsets), the records, 2 bytes, game state."""
    game_state = 12 + sum(map(len, records)) + 2
    header = struct.pack(">HhhHHH", 0, -len(records), 0, game_state, game_state + 4, game_state + 8)
    return bytes(20) + header + b"".join(records) + bytes(2) + bytes(12)


def resource_file(entries: dict[str, bytes], compression: int = 1) -> bytes:
    """A rebuilt queen.1c: QTBL header, the entry table, then the entries' bytes in order."""
    table_size = queen.HEADER.size + queen.ENTRY.size * len(entries)
    header = queen.HEADER.pack(b"QTBL", b"CEM10\0", b"\0\0", compression, len(entries))
    rows, offset = [], table_size
    for name, payload in entries.items():
        rows.append(queen.ENTRY.pack(name.encode().ljust(12, b"\0"), 1, offset, len(payload)))
        offset += len(payload)
    return header + b"".join(rows) + b"".join(entries.values())


def test_table_reader_finds_every_entry():
    payloads = {"020001P1.SB": b"abc", "AND1.DOG": dialogue_file(2), "C18E.CUT": b"xy"}
    data = resource_file(payloads)
    version, codec, entries = queen.read_table(data)
    assert (version, codec) == ("CEM10", "MP3") and list(entries) == list(payloads)
    assert [queen.entry_bytes(data, e) for e in entries.values()] == list(payloads.values())
    assert queen.talk_keys(data, entries) == {2: "AND1.DOG"}


def test_table_reader_refuses_other_files_with_one_line():
    with pytest.raises(ValueError, match=r"game\.bin is not a rebuilt Flight of the Amazon Queen resource file"):
        queen.read_table(b"RIFF....", "game.bin")
    with pytest.raises(ValueError, match="compression code 0"):
        queen.read_table(resource_file({}, compression=0))
    with pytest.raises(ValueError, match="the table of 1 entries runs past the end of the file"):
        queen.read_table(resource_file({"020001P1.SB": b""})[:30])
    cut_short = resource_file({"020001P1.SB": b"abcdef"})[:-2]
    with pytest.raises(ValueError, match="entry 020001P1.SB lies outside the file"):
        queen.read_table(cut_short)


def test_voice_file_names_say_who_speaks():
    keys = {2: "AND1.DOG", 51: "SPARKY1.DOG", 52: "SPARKY2.DOG"}
    cutaways = {"C18E": {14: "joe"}, "COMIC": {}, "GM": {}}
    assert queen.classify("020001P2", keys, cutaways) == queen.Clip("dialogue", "and", "AND1")
    assert queen.classify("5200B4P1", keys, cutaways) == queen.Clip("dialogue", "sparky", "SPARKY2")  # hex line
    assert queen.classify("51XXXXP1", keys, cutaways).speaker == "sparky"
    assert queen.classify("020006J1", keys, cutaways) == queen.Clip("dialogue", "joe", "AND1")
    assert queen.classify("51SSSSJ2", keys, cutaways) == queen.Clip("dialogue", "joe", "SPARKY1")
    assert queen.classify("52XXXXJ1", keys, cutaways) == queen.Clip("dialogue", "joe", "SPARKY2")
    assert queen.classify("JOE00441", keys, cutaways) == queen.Clip("joe", "joe", "")
    assert queen.classify("C18E_141", keys, cutaways) == queen.Clip("cutaway", "joe", "C18E")
    assert queen.classify("COMIC011", keys, cutaways).scene == "COMIC"
    assert queen.classify("GM___011", keys, cutaways).scene == "GM"
    assert queen.classify("116BSSSS", keys, cutaways).kind == "sound effect"
    assert queen.classify("10SSSSSS", keys, cutaways).kind == "sound effect"
    assert queen.classify("990001P1", keys, cutaways).kind == "unknown"  # no dialogue file has talk key 99
    assert queen.classify("C99Z_011", keys, cutaways).kind == "unknown"  # no such cutaway
    assert queen.classify("GM011___", keys, cutaways).kind == "unknown"


def test_val_split_keeps_the_parts_of_a_sentence_together():
    sentences = [f"{key:02d}{line:04X}P" for key in range(2, 40) for line in range(1, 30)]
    chosen = [[queen.split_of(f"{s}{part}.SB", 10) for part in "123"] for s in sentences]
    assert all(len(set(parts)) == 1 for parts in chosen)
    assert 0.07 < np.mean([parts[0] == "val" for parts in chosen]) < 0.13


def test_cutaway_records_name_their_speakers():
    data = resource_file(object_table(OBJECTS))
    objects = queen.game_objects(data, queen.read_table(data)[2])
    assert objects[1:] == [queen.GameObject("Trader Bob", True), queen.GameObject("Princess Azura", True),
                           queen.GameObject("door", False), queen.GameObject("Joe King", True)]
    # records: Joe, Azura, an animated door, text, a room fade (Joe), Bob with an animation list (not speaking),
    # Joe King (Joe's object), Azura copied from herself (no speech), the door animated again
    assert queen.cutaway_speakers(cutaway_file(CUTAWAY), objects) == {1: "joe", 2: "princess_azura", 5: "joe",
                                                                      7: "joe"}
    misread = list(CUTAWAY)
    misread[2] = record(3, anim_list=1, execute=0) + frames(2)  # frames the walk cannot know about
    assert queen.cutaway_speakers(cutaway_file(misread), objects) is None
    assert queen.cutaway_speakers(cutaway_file(CUTAWAY)[:-20], objects) is None  # cut short
    cutaways = {"C18E": {2: "princess_azura"}, "C25B": None}
    assert queen.classify("C18E_021", {}, cutaways) == queen.Clip("cutaway", "princess_azura", "C18E")
    assert queen.classify("C18E_031", {}, cutaways).speaker == "" and queen.classify("C25B_011", {}, cutaways) == \
        queen.Clip("cutaway", "", "C25B")
    with pytest.raises(ValueError, match="has no QUEEN.JAS or QUEEN2.JAS"):
        queen.game_objects(b"", {})


def test_spectrum_measures_the_band():
    spectrum = queen.Spectrum()
    t = np.arange(queen.SAMPLE_RATE) / queen.SAMPLE_RATE
    spectrum.add(np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 6000 * t))
    assert spectrum.share_above(4000) == pytest.approx(0.01 / 1.01, rel=0.02)
    assert spectrum.edge(0.9) == pytest.approx(1000, abs=spectrum.hz[1])
    assert spectrum.edge(0.999) == pytest.approx(6000, abs=spectrum.hz[1])
    # per Hz: 1 % of the power over 80 bins (5.5-8 kHz) against 124 bins (0.1-4 kHz)
    assert spectrum.level(5500, 8000) == pytest.approx(10 * np.log10(0.01 * 124 / 80), abs=0.3)


@needs_mp3
def test_corpus_end_to_end(tmp_path):
    lengths = {"020001P1.SB": 1.0, "020001P2.SB": 0.5, "020006J1.SB": 0.8, "51XXXXP1.SB": 0.6, "JOE00441.SB": 0.7,
               "C18E_021.SB": 0.9, "C18E_041.SB": 0.4}
    payloads = {name: mp3_clip(seconds, 300 + 50 * i, i) for i, (name, seconds) in enumerate(lengths.items())}
    payloads |= {"116BSSSS.SB": mp3_clip(0.5, 900), "MIK_0019.SB": mp3_clip(0.5, 700), "JOE00451.SB": bytes(300),
                 "AND1.DOG": dialogue_file(2), "SPARKY1.DOG": dialogue_file(51), "C18E.CUT": cutaway_file(CUTAWAY),
                 **object_table(OBJECTS)}
    resource = tmp_path / "queen.1c"
    resource.write_bytes(resource_file(payloads))
    out = tmp_path / "out"
    queen.main(["--out", str(out), "--resource", str(resource), "--no-install", "--val-percent", "40"])
    train, val = load_utterances(str(out / "train")), load_utterances(str(out / "val"))
    utterances = {u.key: u for u in train + val}
    speech = list(lengths)
    assert sorted(utterances) == sorted(f"queen_{n[:-3]}" for n in speech) and train and val
    assert {u.speaker for u in utterances.values()} == {"and", "joe", "sparky", "princess_azura", ""}
    assert utterances["queen_020001P1"].speaker == "and" and utterances["queen_C18E_021"].speaker == "princess_azura"
    assert utterances["queen_C18E_041"].speaker == ""  # a text record: nobody's voice the files name
    assert {u.sample_rate for u in utterances.values()} == {16000}
    for name in speech:  # MP3 adds encoder delay and padding: within two frames of 1152 samples at 11.025 kHz
        seconds = len(utterances[f"queen_{name[:-3]}"].wav) / 16000
        assert seconds == pytest.approx(lengths[name], abs=2 * 1152 / CLIP_RATE)
    assert {u.key for u in val} == {f"queen_{n[:-3]}" for n in speech if queen.split_of(n, 40) == "val"}
    skipped = dict(line.split("\t") for line in (out / "skipped.tsv").read_text().splitlines()[1:])
    assert skipped.pop("JOE00451.SB").startswith("undecodable: ")  # Joe's remark, but not audio
    assert skipped == {"116BSSSS.SB": "sound effect", "MIK_0019.SB": "no voice file naming rule"}
    speakers = {row.split("\t")[0]: row.split("\t")[1] for row in (out / "speakers.tsv").read_text().splitlines()[1:]}
    assert speakers == {"joe": "2", "and": "2", "sparky": "1", "princess_azura": "1", "(unknown)": "1"}
    bandwidth = dict(line.split("\t") for line in (out / "bandwidth.tsv").read_text().splitlines())
    assert float(bandwidth["share of energy above 5.5 kHz"]) < 1e-3  # 11.025 kHz clips: nothing above 5.5 kHz
    assert not (out / "wav").exists()
