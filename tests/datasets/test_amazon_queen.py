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
    cut_short = resource_file({"020001P1.SB": b"abcdef"})[:-2]
    with pytest.raises(ValueError, match="entry 020001P1.SB lies outside the file"):
        queen.read_table(cut_short)


def test_voice_file_names_say_who_speaks():
    keys, cutaways = {2: "AND1.DOG", 51: "SPARKY1.DOG", 52: "SPARKY2.DOG"}, {"C18E", "COMIC", "GM"}
    assert queen.classify("020001P2", keys, cutaways) == queen.Clip("dialogue", "and", "AND1")
    assert queen.classify("5200B4P1", keys, cutaways) == queen.Clip("dialogue", "sparky", "SPARKY2")  # hex line
    assert queen.classify("51XXXXP1", keys, cutaways).speaker == "sparky"
    assert queen.classify("020006J1", keys, cutaways) == queen.Clip("dialogue", "joe", "AND1")
    assert queen.classify("51SSSSJ2", keys, cutaways) == queen.Clip("dialogue", "joe", "SPARKY1")
    assert queen.classify("52XXXXJ1", keys, cutaways) == queen.Clip("dialogue", "joe", "SPARKY2")
    assert queen.classify("JOE00441", keys, cutaways) == queen.Clip("joe", "joe", "")
    assert queen.classify("C18E_141", keys, cutaways) == queen.Clip("cutaway", "", "C18E")
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


def test_spectrum_measures_the_band():
    spectrum = queen.Spectrum()
    t = np.arange(queen.SAMPLE_RATE) / queen.SAMPLE_RATE
    spectrum.add(np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 6000 * t))
    assert spectrum.share_above(4000) == pytest.approx(0.01 / 1.01, rel=0.02)
    assert spectrum.edge(0.9) == pytest.approx(1000, abs=spectrum.hz[1])
    assert spectrum.edge(0.999) == pytest.approx(6000, abs=spectrum.hz[1])


@needs_mp3
def test_corpus_end_to_end(tmp_path):
    lengths = {"020001P1.SB": 1.0, "020001P2.SB": 0.5, "020006J1.SB": 0.8, "51XXXXP1.SB": 0.6, "JOE00441.SB": 0.7,
               "C18E_141.SB": 0.9}
    payloads = {name: mp3_clip(seconds, 300 + 50 * i, i) for i, (name, seconds) in enumerate(lengths.items())}
    payloads |= {"116BSSSS.SB": mp3_clip(0.5, 900), "MIK_0019.SB": mp3_clip(0.5, 700), "JOE00451.SB": bytes(300),
                 "AND1.DOG": dialogue_file(2), "SPARKY1.DOG": dialogue_file(51), "C18E.CUT": b"cut"}
    resource = tmp_path / "queen.1c"
    resource.write_bytes(resource_file(payloads))
    out = tmp_path / "out"
    queen.main(["--out", str(out), "--resource", str(resource), "--no-install", "--val-percent", "40"])
    train, val = load_utterances(str(out / "train")), load_utterances(str(out / "val"))
    utterances = {u.key: u for u in train + val}
    speech = list(lengths)
    assert sorted(utterances) == sorted(f"queen_{n[:-3]}" for n in speech) and train and val
    assert {u.speaker for u in utterances.values()} == {"and", "joe", "sparky", ""}
    assert utterances["queen_020001P1"].speaker == "and" and utterances["queen_C18E_141"].speaker == ""
    assert {u.sample_rate for u in utterances.values()} == {16000}
    for name in speech:  # MP3 adds encoder delay and padding: within two frames of 1152 samples at 11.025 kHz
        seconds = len(utterances[f"queen_{name[:-3]}"].wav) / 16000
        assert seconds == pytest.approx(lengths[name], abs=2 * 1152 / CLIP_RATE)
    assert {u.key for u in val} == {f"queen_{n[:-3]}" for n in speech if queen.split_of(n, 40) == "val"}
    skipped = dict(line.split("\t") for line in (out / "skipped.tsv").read_text().splitlines()[1:])
    assert skipped.pop("JOE00451.SB").startswith("undecodable: ")  # Joe's remark, but not audio
    assert skipped == {"116BSSSS.SB": "sound effect", "MIK_0019.SB": "no voice file naming rule"}
    speakers = {row.split("\t")[0]: row.split("\t")[1] for row in (out / "speakers.tsv").read_text().splitlines()[1:]}
    assert speakers == {"joe": "2", "and": "2", "sparky": "1", "(unknown: cutaways)": "1"}
    bandwidth = dict(line.split("\t") for line in (out / "bandwidth.tsv").read_text().splitlines())
    assert float(bandwidth["share of energy above 5.5 kHz"]) < 1e-3  # 11.025 kHz clips: nothing above 5.5 kHz
    assert not (out / "wav").exists()
