import itertools
import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from cpc.data.audio import AudioDataConfig, audio_stream
from cpc.data.ingest import AudioItem
from cpc.data.shards import audio_samples, resolve_shards, write_shards


def read_back(folder):
    stream = audio_stream(AudioDataConfig(shards=str(folder), batch_size=1), train=False, windows=False, sample_rate=16000, hop=160)
    return {b["key"][0]: b for b in stream}


def test_round_trip_audio_labels_and_index(shards):
    folder, index, items, alignments = shards
    assert [s["samples"] for s in index["shards"]] == [2, 2, 2]
    assert json.loads((folder / "index.json").read_text())["samples"] == 6
    total = sum(sf.info(item.path).frames for item in items) / 16000
    assert index["seconds"] == pytest.approx(total)
    back = read_back(folder)
    assert set(back) == {item.key for item in items}
    for item in items:
        original, _ = sf.read(item.path, dtype="float32")
        assert torch.equal(back[item.key]["wav"][0], torch.from_numpy(original))  # PCM16 -> FLAC is lossless
        assert torch.equal(back[item.key]["labels"][0], torch.from_numpy(alignments[item.key].astype(np.int64)))
        assert back[item.key]["speaker_name"] == [item.speaker]


def test_resampled_and_downmixed_on_the_way_in(tmp_path):
    rng = np.random.default_rng(1)
    stereo = (0.3 * rng.standard_normal((22050, 2))).astype(np.float32)
    path = tmp_path / "in.wav"
    sf.write(path, stereo, 22050, subtype="FLOAT")
    write_shards(audio_samples([AudioItem(str(path), "s", "in")], 16000), str(tmp_path / "out" / "s-%03d.tar"), progress=False)
    wav = read_back(tmp_path / "out")["in"]["wav"][0]
    expected = torchaudio.functional.resample(torch.from_numpy(stereo.mean(axis=1)), 22050, 16000)
    assert wav.shape == expected.shape == (16000,)
    assert torch.allclose(wav, expected.clamp(-1, 1), atol=1 / 32768 + 1e-6)


def test_long_recordings_cut_with_labels_aligned(tmp_path):
    labels = np.arange(750, dtype=np.int16) % 40  # 7.5 s
    path = tmp_path / "long.wav"
    sf.write(path, np.repeat(labels.astype(np.float32) / 100, 160), 16000, subtype="PCM_16")
    index = write_shards(
        audio_samples([AudioItem(str(path), "s", "long")], 16000, max_seconds=3.0, alignments={"long": labels}),
        str(tmp_path / "out" / "s-%03d.tar"), progress=False,
    )
    assert index["samples"] == 3
    back = read_back(tmp_path / "out")
    assert sorted(back) == ["long_p000", "long_p001", "long_p002"]
    joined = torch.cat([back[k]["labels"][0] for k in sorted(back)])
    assert torch.equal(joined, torch.from_numpy(labels.astype(np.int64)))


def test_bad_inputs_are_reported_and_the_rest_written(tmp_path, corpus):
    items, alignments = corpus
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    alignments = dict(alignments)
    alignments[items[1].key] = alignments[items[1].key][:-5]  # 5 frames short: beyond the 1-frame tolerance
    del alignments[items[2].key]
    errors = {}
    index = write_shards(
        audio_samples(items + [AudioItem(str(broken), "x", "broken")], 16000, alignments=alignments, errors=errors),
        str(tmp_path / "out" / "s-%03d.tar"), progress=False,
    )
    assert index["samples"] == 5  # the unreadable file and the mismatched labels are skipped
    assert set(errors) == {"label/frame count mismatch", "no alignment (written without labels)", "unreadable audio"}
    assert "broken.wav" in errors["unreadable audio"][0]
    assert items[1].key in errors["label/frame count mismatch"][0]


def test_resolve_shards_errors(tmp_path, shards):
    folder = shards[0]
    assert len(resolve_shards(folder)) == len(resolve_shards(folder / "index.json")) == 3
    assert resolve_shards(str(folder / "shard-{000000..000001}.tar"))[1].endswith("shard-000001.tar")
    with pytest.raises(FileNotFoundError, match="2 shard\\(s\\) not found, first: .*nope-0.tar"):
        resolve_shards(str(tmp_path / "nope-{0..1}.tar"))
    with pytest.raises(FileNotFoundError, match="has no index.json"):
        resolve_shards(tmp_path)
    with pytest.raises(ValueError, match="no shards"):
        resolve_shards([])


def test_writes_through_any_url_webdataset_opens(tmp_path, corpus):
    items, _ = corpus
    target = tmp_path / "remote"
    target.mkdir()
    index = write_shards(audio_samples(items[:3], 16000), f"pipe:cat > {target}/s-%03d.tar", max_count=2,
                         index_path=f"pipe:cat > {target}/index.json", progress=False)
    assert [s["url"] for s in index["shards"]] == [f"pipe:cat > {target}/s-000.tar", f"pipe:cat > {target}/s-001.tar"]
    assert json.loads((target / "index.json").read_text())["samples"] == 3
    assert len(read_back_files(sorted(target.glob("s-*.tar")))) == 3


def read_back_files(paths):
    stream = audio_stream(AudioDataConfig(shards=[str(p) for p in paths], batch_size=1), train=False, windows=False, sample_rate=16000, hop=160)
    return [b["key"][0] for b in stream]


def test_splits_are_written_in_a_seeded_order_that_mixes_speakers(tmp_path, capsys):
    """Items arrive speaker by speaker (sorted folders); shards hold them in a fixed random order instead."""
    from cpc.data.shards import write_splits

    speakers = [f"spk{s}" for s in range(4) for _ in range(6)]
    items = []
    for number, speaker in enumerate(speakers):
        path = tmp_path / "wav" / f"{number}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
        items.append(AudioItem(str(path), speaker, f"{speaker}_{number:02d}"))
    orders = []
    for run in ("a", "b"):
        write_splits(items, tmp_path / run, sample_rate=16000)
        stream = audio_stream(AudioDataConfig(shards=str(tmp_path / run), batch_size=1), train=False, windows=False,
                              sample_rate=16000, hop=160)
        orders.append([b["speaker_name"][0] for b in stream])
    assert orders[0] == orders[1] and sorted(orders[0]) == sorted(speakers)  # deterministic, nothing lost
    changes = sum(a != b for a, b in zip(orders[0], orders[0][1:]))
    assert changes >= 12, orders[0]  # speaker by speaker would change 3 times


def test_non_finite_recordings_are_skipped_and_flawed_ones_noted(tmp_path):
    from cpc.data.shards import recording_flaws

    rng = np.random.default_rng(0)
    speech = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    clipped = np.clip(speech * 40, -1, 1)
    cases = {"nan": np.where(np.arange(16000) == 7, np.nan, speech).astype(np.float32), "good": speech,
             "silent": np.zeros(16000, np.float32), "clipped": clipped, "offset": speech + 0.05}
    items = []
    for name, wav in cases.items():
        sf.write(tmp_path / f"{name}.wav", wav, 16000, subtype="FLOAT")
        items.append(AudioItem(str(tmp_path / f"{name}.wav"), "s", name))
    errors, notes = {}, {}
    index = write_shards(audio_samples(items, 16000, errors=errors, notes=notes), str(tmp_path / "out" / "s-%03d.tar"),
                         progress=False)
    assert index["samples"] == 4
    assert errors == {"non-finite samples (NaN or Inf)": [f"cannot read audio {tmp_path / 'nan.wav'}: it holds NaN or "
                                                          "infinite samples (the first is sample 7)"]}
    share = np.mean(np.abs(clipped) >= 32767 / 32768)
    assert notes == {"are digital silence (every sample 0)": [str(tmp_path / "silent.wav")],
                     "are clipped (over 0.1% of samples at full scale)": [f"{tmp_path / 'clipped.wav'} ({share:.1%})"],
                     "have a DC offset (mean over 10% of the RMS)": [
                         f"{tmp_path / 'offset.wav'} (mean {np.mean(cases['offset'], dtype=np.float64):+.3g}, RMS "
                         f"{np.sqrt(np.mean(np.square(cases['offset'], dtype=np.float64))):.3g})"]}
    assert recording_flaws(speech) == {}


def test_a_failed_write_leaves_no_shard_behind(tmp_path, corpus):
    items, _ = corpus

    def failing():
        yield from itertools.islice(audio_samples(items, 16000), 4)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_shards(failing(), str(tmp_path / "out" / "s-%03d.tar"), max_count=1, progress=False)
    assert list((tmp_path / "out").iterdir()) == []
