"""Corpora of other toolkits through `cpc shards`: each gives the shards an audio folder of the same recordings
gives (keys, speakers, audio), with its extra metadata kept."""

import io
import sys
import json

import numpy as np
import pytest
import soundfile as sf
import webdataset as wds

from cpc.cli import main
from cpc.data.shards import resolve_shards

RATE = 16000


def shard_contents(folder):
    """{key: (speaker, audio samples, metadata)} of a shard set."""
    out = {}
    for sample in wds.WebDataset(resolve_shards(folder), shardshuffle=False):
        meta = json.loads(sample["json"])
        out[sample["__key__"]] = (meta["speaker"], sf.read(io.BytesIO(sample["flac"]))[0], meta)
    return out


@pytest.fixture
def recordings(tmp_path):
    """An audio folder speaker/utterance.wav (one file at 8 kHz) and its shards: the reference."""
    rng = np.random.default_rng(0)
    audio = {}
    for speaker, utterance, rate in (("alice", "a1", RATE), ("alice", "a2", RATE), ("bob", "b1", 8000)):
        (tmp_path / "folder" / speaker).mkdir(parents=True, exist_ok=True)
        wav = (rng.standard_normal(rate // 2 + 37 * (len(audio) + 1)) * 0.1).astype(np.float32)
        sf.write(tmp_path / "folder" / speaker / f"{utterance}.wav", wav, rate, subtype="FLOAT")
        audio[f"{speaker}_{utterance}"] = (speaker, tmp_path / "folder" / speaker / f"{utterance}.wav", wav, rate)
    main(["shards", str(tmp_path / "folder"), str(tmp_path / "from_folder")])
    return audio, shard_contents(tmp_path / "from_folder")


def assert_same_shards(expected, got):
    assert list(got) == list(expected)  # the same keys in the same (seeded) order
    for key, (speaker, audio, _) in expected.items():
        assert got[key][0] == speaker and np.array_equal(got[key][1], audio)


def test_kaldi_data_directory_with_a_pipe_gives_the_folder_shards(tmp_path, recordings):
    pytest.importorskip("kaldiio")
    audio, expected = recordings
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    lines = [f"{key} cat {path} |" if key == "alice_a2" else f"{key} {path}" for key, (_, path, _, _) in audio.items()]
    (kaldi / "wav.scp").write_text("\n".join(lines) + "\n")
    (kaldi / "utt2spk").write_text("".join(f"{key}\t{speaker}\n" for key, (speaker, *_) in audio.items()))  # tabs too
    (kaldi / "text").write_text("alice_a1 HELLO WORLD\n")
    main(["shards", str(kaldi), str(tmp_path / "from_kaldi")])
    got = shard_contents(tmp_path / "from_kaldi")
    assert_same_shards(expected, got)
    assert got["alice_a1"][2]["text"] == "HELLO WORLD" and "text" not in got["bob_b1"][2]


def test_kaldi_segments_cut_recordings_as_extract_segments_does(tmp_path, recordings):
    pytest.importorskip("kaldiio")
    audio, expected = recordings
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    # alice's two utterances as one recording, cut back apart by segments
    a1, a2 = audio["alice_a1"][2], audio["alice_a2"][2]
    sf.write(tmp_path / "alice.wav", np.concatenate([a1, a2]), RATE, subtype="FLOAT")
    (kaldi / "wav.scp").write_text(f"rec_alice {tmp_path / 'alice.wav'}\nrec_bob {audio['bob_b1'][1]}\n")
    (kaldi / "segments").write_text(f"alice_a1 rec_alice 0 {len(a1) / RATE}\nalice_a2 rec_alice {len(a1) / RATE} -1\n"
                                    "bob_b1 rec_bob 0 -1\n")
    (kaldi / "utt2spk").write_text("alice_a1 alice\nalice_a2 alice\nbob_b1 bob\n")
    main(["shards", str(kaldi), str(tmp_path / "from_kaldi")])
    got = shard_contents(tmp_path / "from_kaldi")
    assert_same_shards(expected, got)
    assert got["alice_a2"][2]["recording"] == "rec_alice" and got["alice_a2"][2]["start_seconds"] == len(a1) / RATE


def test_kaldi_mistakes_are_one_line(tmp_path, capsys):
    pytest.importorskip("kaldiio")
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    (kaldi / "wav.scp").write_text("rec1 /nowhere.wav\n")
    (kaldi / "segments").write_text("u1 rec2 0 1\n")
    with pytest.raises(SystemExit) as exited:
        main(["shards", str(kaldi), str(tmp_path / "out")])
    assert exited.value.code == 2 and capsys.readouterr().err == (
        f"cpc shards: {kaldi / 'segments'}: utterance 'u1' is cut from recording 'rec2', which wav.scp does not "
        "list: add it to wav.scp or drop the line\n")
    (kaldi / "segments").unlink()
    (kaldi / "wav.scp").write_text(f"rec1 /nowhere.wav\nrec2 false |\nrec3 {tmp_path / 'ok.wav'}\n")
    sf.write(tmp_path / "ok.wav", np.zeros(RATE // 10, np.float32), RATE)
    main(["shards", str(kaldi), str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert "shards: 1 samples" in printed and "skipped 2, unreadable audio" in printed


def lhotse_manifests(tmp_path, audio):
    lhotse = pytest.importorskip("lhotse")
    recordings = lhotse.RecordingSet.from_recordings(
        lhotse.Recording.from_file(path, recording_id=key) for key, (_, path, _, _) in audio.items())
    supervisions = lhotse.SupervisionSet.from_segments(
        lhotse.SupervisionSegment(key, key, 0.0, recordings[key].duration, speaker=speaker, text=f"words of {key}")
        for key, (speaker, *_) in audio.items())
    return lhotse, recordings, supervisions


def test_lhotse_recordings_with_supervisions_give_the_folder_shards(tmp_path, recordings):
    audio, expected = recordings
    lhotse, recording_set, supervision_set = lhotse_manifests(tmp_path, audio)
    recording_set.to_file(tmp_path / "corpus_recordings_all.jsonl.gz")
    supervision_set.to_file(tmp_path / "corpus_supervisions_all.jsonl.gz")
    main(["shards", str(tmp_path / "corpus_recordings_all.jsonl.gz"), str(tmp_path / "from_lhotse")])
    got = shard_contents(tmp_path / "from_lhotse")
    assert_same_shards(expected, got)
    assert got["bob_b1"][2]["text"] == "words of bob_b1"


def test_lhotse_cutset_gives_the_folder_shards(tmp_path, recordings):
    audio, expected = recordings
    lhotse, recording_set, supervision_set = lhotse_manifests(tmp_path, audio)
    cuts = lhotse.CutSet.from_manifests(recording_set, supervision_set)  # cut ids are made up: name them as above
    cuts = lhotse.CutSet.from_cuts(cut.with_id(cut.recording_id) for cut in cuts)
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    main(["shards", str(tmp_path / "cuts.jsonl.gz"), str(tmp_path / "from_cuts")])
    assert_same_shards(expected, shard_contents(tmp_path / "from_cuts"))


@pytest.mark.child_process
def test_hugging_face_dataset_saved_to_disk_gives_the_folder_shards(tmp_path, recordings):
    datasets = pytest.importorskip("datasets")
    audio, expected = recordings
    columns = {"clip": [str(path) for _, path, _, _ in audio.values()], "id": list(audio),
               "speaker_id": [speaker for speaker, *_ in audio.values()], "sentence": [f"words of {k}" for k in audio]}
    table = datasets.Dataset.from_dict(columns).cast_column("clip", datasets.Audio())
    datasets.DatasetDict({"train": table}).save_to_disk(str(tmp_path / "hf"))
    for path in audio.values():  # the saved dataset holds the audio bytes: the files are not needed any more
        path[1].unlink()
    main(["shards", str(tmp_path / "hf" / "train"), str(tmp_path / "from_hf"), "--audio-column", "clip"])
    got = shard_contents(tmp_path / "from_hf")
    assert_same_shards(expected, got)
    assert got["bob_b1"][2]["sentence"] == "words of bob_b1"


@pytest.mark.child_process
def test_hugging_face_mistakes_are_one_line(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    sf.write(tmp_path / "a.wav", np.zeros(RATE // 10, np.float32), RATE)
    table = datasets.Dataset.from_dict({"audio": [str(tmp_path / "a.wav")]}).cast_column("audio", datasets.Audio())
    datasets.DatasetDict({"train": table, "test": table}).save_to_disk(str(tmp_path / "hf"))
    capsys.readouterr()  # datasets' own progress bars
    for argv, message in (([str(tmp_path / "hf")], f"{tmp_path / 'hf'} holds the splits test, train of a DatasetDict: "
                           f"give one split's folder (e.g. {tmp_path / 'hf' / 'test'}) per `cpc shards` call"),
                          ([str(tmp_path / "hf" / "train"), "--audio-column", "wav"],
                           f"{tmp_path / 'hf' / 'train'}: column 'wav' is not an Audio column (columns ['audio']): "
                           "name the audio column with --audio-column (e.g. audio)")):
        with pytest.raises(SystemExit) as exited:
            main(["shards", argv[0], str(tmp_path / "out"), *argv[1:]])
        assert exited.value.code == 2 and capsys.readouterr().err == f"cpc shards: {message}\n"
    main(["shards", str(tmp_path / "hf" / "train"), str(tmp_path / "out")])
    assert list(shard_contents(tmp_path / "out")) == ["row000000"]


def test_kaldi_wav_scp_entries_pointing_into_an_archive(tmp_path):
    kaldiio = pytest.importorskip("kaldiio")
    from cpc.data.corpora import read_corpus

    rng = np.random.default_rng(0)
    audio = {key: (rng.standard_normal(samples) * 3000).astype(np.int16)
             for key, samples in (("u1", RATE), ("u2", 800))}
    kaldiio.save_ark(str(tmp_path / "wav.ark"), {k: (RATE, a) for k, a in audio.items()}, scp=str(tmp_path / "wav.scp"))
    items = read_corpus(tmp_path)
    assert [item.path.rsplit(":", 1)[0] for item in items] == [str(tmp_path / "wav.ark")] * 2  # path.ark:offset
    for item in items:
        samples, rate = item.read()
        assert rate == RATE and np.array_equal(samples * 32768, audio[item.key])


@pytest.mark.parametrize("module, extra, files, what", [
    ("kaldiio", "kaldi", ["wav.scp"], "reading a Kaldi data directory"),
    ("lhotse", "lhotse", ["cuts.jsonl.gz"], "reading a Lhotse manifest"),
    ("datasets", "hf", ["state.json", "dataset_info.json"], "reading a Hugging Face dataset")])  # never imported
def test_a_missing_library_is_named_with_its_extra(tmp_path, capsys, monkeypatch, module, extra, files, what):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    for name in files:
        (tmp_path / "corpus" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "corpus" / name).write_text("x 1\n")
    source = tmp_path / "corpus" / files[0] if files[0].endswith(".gz") else tmp_path / "corpus"
    with pytest.raises(SystemExit) as exited:
        main(["shards", str(source), str(tmp_path / "out")])
    assert exited.value.code == 2 and capsys.readouterr().err == (
        f"cpc shards: {what} needs {module}: pip install 'cpc[{extra}]' (or pip install {module})\n")


def test_lhotse_phone_alignments_become_frame_labels_and_phones_txt(tmp_path, recordings):
    audio, _ = recordings
    lhotse, recording_set, supervision_set = lhotse_manifests(tmp_path, audio)
    item = lhotse.supervision.AlignmentItem
    # alice_a1: "k" over [0.1, 0.25) s and "ae" over [0.25, 0.4) s, the rest unaligned (silence, label 0)
    aligned = supervision_set["alice_a1"].with_alignment("phone", [item("k", 0.1, 0.15), item("ae", 0.25, 0.15)])
    supervisions = lhotse.SupervisionSet.from_segments([aligned] + [s for s in supervision_set if s.id != "alice_a1"])
    recording_set.to_file(tmp_path / "recordings.jsonl.gz")
    supervisions.to_file(tmp_path / "supervisions.jsonl.gz")
    main(["shards", str(tmp_path / "recordings.jsonl.gz"), str(tmp_path / "out")])
    assert (tmp_path / "out" / "phones.txt").read_text() == "sil\nae\nk\n"
    labels = {}
    for sample in wds.WebDataset(resolve_shards(tmp_path / "out"), shardshuffle=False):
        if "labels.npy" in sample:
            labels[sample["__key__"]] = np.load(io.BytesIO(sample["labels.npy"]))
    expected = np.zeros(len(audio["alice_a1"][2]) // 160, np.int16)
    expected[10:25], expected[25:40] = 2, 1
    assert list(labels) == ["alice_a1"] and np.array_equal(labels["alice_a1"], expected)


def test_hugging_face_datasets_in_a_child_process(in_child_process):
    """datasets imports pyarrow, whose threads would outlive the test in this process (see in_child_process)."""
    pytest.importorskip("datasets")
    in_child_process(__file__, "hugging_face")
