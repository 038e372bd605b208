from pathlib import Path

from cpc.cli import main


def test_shards_command_from_folder(tmp_path, capsys):
    import numpy as np
    import pytest
    import soundfile as sf

    from cpc.data.shards import resolve_shards

    for speaker in ("alice", "bob"):
        (tmp_path / "in" / speaker).mkdir(parents=True)
        sf.write(tmp_path / "in" / speaker / "a.wav", np.zeros(8000, np.float32), 8000)
    main(["shards", str(tmp_path / "in"), str(tmp_path / "out")])
    assert len(resolve_shards(tmp_path / "out")) == 1
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["shards", str(tmp_path / "missing"), str(tmp_path / "out2")])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (f"cpc shards: {tmp_path / 'missing'} does not exist: give a folder of audio "
                                       "files or a TSV manifest (header row with path and speaker columns)\n")


def test_probe_command_on_the_bundled_corpus(tmp_path, capsys):
    import json

    sample = "datasets/synthetic_speech/sample"
    main(["probe", "phones", "--train", f"{sample}/test", "--test", f"{sample}/test", "--features", "mfcc",
          "--epochs", "3", "--lr", "1e-2", "--batch-size", "64", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "phones.json").read_text())["results"]["mfcc"]
    assert result["accuracy"] > 0.2  # 40 classes: chance is 0.025 (train and test overlap here: a smoke test)
    assert (tmp_path / "confusion_phones_mfcc.png").exists()
    assert capsys.readouterr().out.rstrip().endswith(f"report: {tmp_path / 'report.md'}")  # the last line links it
    report = (tmp_path / "report.md").read_text()
    assert (f"| `mfcc` | phones | {100 * result['accuracy']:.1f} | {100 * result['dev_accuracy']:.1f} | "
            f"{result['best_epoch']} |") in report
    assert "- `mfcc`, phones: test: scored all 22 utterances; train: scored all 22 utterances" in report
    assert "![phones: mfcc](confusion_phones_mfcc.png)" in report


def test_extract_command_npy_and_shards_keep_keys_order_and_frames(tmp_path):
    import numpy as np

    from cpc.data.labelled import load_utterances

    sample = "datasets/synthetic_speech/sample/test"
    main(["pretrain", "recipes/demo/cpc.yaml", "--set", "train.steps=1", "--set", f"train.out={tmp_path / 'run'}",
          "--set", "data.window=3200", "--set", "val_shards=", "--set", "train.progress=false"])
    main(["extract", str(tmp_path / "run"), sample, str(tmp_path / "npy"), "--layer", "both", "--dtype", "float16"])
    main(["extract", str(tmp_path / "run"), sample, str(tmp_path / "streamed"), "--chunk-seconds", "0.7"])
    main(["extract", str(tmp_path / "run"), sample, str(tmp_path / "shards"), "--format", "shards"])
    from cpc.models.int8 import int8_available

    if int8_available():
        main(["extract", str(tmp_path / "run"), sample, str(tmp_path / "int8"), "--int8", "--precision", "bf16"])
    utterances = load_utterances(sample)
    for u in utterances:
        both = np.load(tmp_path / "npy" / f"{u.key}.npy")
        assert both.shape == (len(u.wav) // 160, 64 + 64) and both.dtype == np.float16
        streamed = np.load(tmp_path / "streamed" / f"{u.key}.npy")
        assert np.allclose(streamed, both[:, 64:].astype(np.float32), atol=2e-3)  # float16 rounding
        if int8_available():
            int8 = np.load(tmp_path / "int8" / f"{u.key}.npy")
            exact = both[:, 64:].astype(np.float32)
            assert int8.shape == exact.shape and np.linalg.norm(int8 - exact) < 0.05 * np.linalg.norm(exact)
    import webdataset as wds

    from cpc.data.shards import resolve_shards

    keys = [s["__key__"] for s in wds.WebDataset(resolve_shards(tmp_path / "shards"), shardshuffle=False)]
    assert keys == [u.key for u in utterances]


def test_extract_command_refuses_int8_for_channel_norm(tmp_path, capsys):
    import pytest

    main(["pretrain", "recipes/demo/cpc.yaml", "--set", "train.steps=1", "--set", f"train.out={tmp_path / 'run'}",
          "--set", "data.window=3200", "--set", "val_shards=", "--set", "train.progress=false",
          "--set", "cpc.model.encoder.norm=channel"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["extract", str(tmp_path / "run"), "datasets/synthetic_speech/sample/test", str(tmp_path / "x"), "--int8"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == ("cpc extract: int8 encoding needs an encoder with BatchNorm or no norm (folded "
                                       "into the convs); this one has 'channel' norm, which depends on each input "
                                       "(--int8): use fp32 or bf16\n")
    assert not (tmp_path / "x").exists()  # failed before writing anything


# ------------------------------------------------------------------------------------------------ cpc abx
SAMPLE = "datasets/synthetic_speech/sample"


def _abx_json(capsys, argv):
    import json

    capsys.readouterr()
    main(argv)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _one_line_error(capsys, argv) -> str:
    import pytest

    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(argv + (["--quiet"] if argv[0] == "abx" and argv[1] != "items" else []))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.endswith("\n") and err.count("\n") == 1, err
    return err.rstrip("\n")


def _abx_set(tmp_path):
    """Four test utterances (two speakers), their log-mel frames as <key>.npy, a speakers file naming only them."""
    import numpy as np

    from cpc.data.labelled import load_utterances
    from cpc.eval.featurize import featurizer

    utterances = sorted(load_utterances(f"{SAMPLE}/test"), key=lambda u: (u.speaker, u.key))[:4]
    logmel = featurizer("logmel")
    (tmp_path / "npy").mkdir()
    features = {}
    for u in utterances:
        features[u.key] = logmel(u.wav).numpy()
        np.save(tmp_path / "npy" / f"{u.key}.npy", features[u.key])
    (tmp_path / "speakers.txt").write_text("".join(f"{u.key} {u.speaker}\n" for u in utterances))
    return utterances, features


def test_abx_items_and_abx_commands_agree_with_the_library(tmp_path, capsys):
    from cpc.data.labels import read_alignments
    from cpc.eval.abx.items import ITEM_HEADER, read_items, write_items
    from cpc.eval.abx.score import abx_errors

    utterances, features = _abx_set(tmp_path)
    item = tmp_path / "phone.item"
    main(["abx", "items", f"{SAMPLE}/converted_aligned_phones.txt", str(tmp_path / "speakers.txt"), str(item),
          "--phones", f"{SAMPLE}/phones.txt"])
    assert "of 4 utterances" in capsys.readouterr().out
    lines = item.read_text().splitlines()
    assert lines[0] == ITEM_HEADER and all(len(line.split()) == 7 for line in lines[1:])
    alignments = read_alignments(f"{SAMPLE}/converted_aligned_phones.txt")
    speakers = {u.key: u.speaker for u in utterances}
    write_items({k: v for k, v in alignments.items() if k in speakers}, speakers, tmp_path / "direct.item",
                phones=Path(f"{SAMPLE}/phones.txt").read_text().split())
    assert item.read_text() == (tmp_path / "direct.item").read_text()
    assert set(read_items(item).speakers) == set(speakers.values())

    fast = ["--max-size-group", "3", "--max-x-across", "1"]  # small draws: every condition, quickly
    direct = abx_errors(features, item, max_size_group=3, max_x_across=1, progress=False)
    assert list(direct) == ["within-within", "across-within", "within-any", "across-any"]
    assert _abx_json(capsys, ["abx", str(tmp_path / "npy"), str(item), "--json", "--quiet", *fast]) == direct
    # one condition, another seed, extracted on the fly from the shards: the same frames, the same numbers
    one = abx_errors(features, item, speaker_mode="within", context_mode="any", seed=7, max_size_group=4,
                     progress=False)
    assert _abx_json(capsys, ["abx", "--model", "logmel", "--audio", f"{SAMPLE}/test", str(item), "--json", "--quiet",
                              "--device", "cpu", "--speaker-mode", "within", "--context-mode", "any", "--seed", "7",
                              "--max-size-group", "4"]) == one
    import soundfile as sf  # an audio folder: files known by their names, however deep

    for u in utterances:
        (tmp_path / "wavs" / u.speaker).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "wavs" / u.speaker / f"{u.key}.wav", u.wav.numpy(), 16000, subtype="FLOAT")
    assert _abx_json(capsys, ["abx", "--model", "logmel", "--audio", str(tmp_path / "wavs"), str(item), "--json",
                              "--quiet", "--speaker-mode", "within", "--context-mode", "any", "--seed", "7",
                              "--max-size-group", "4"]) == one


def test_abx_items_triphones_and_speaker_prefixes(tmp_path, capsys):
    (tmp_path / "align.txt").write_text("s1-a 0 0 1 1 2 2 2 0 3 0\ns2-b 0 2 2 1 0\n")
    main(["abx", "items", str(tmp_path / "align.txt"), "prefix:-", str(tmp_path / "t.item"), "--unit", "triphone"])
    assert (tmp_path / "t.item").read_text().splitlines()[1:] == [
        "s1-a 0.0000 0.0700 1 0 2 s1", "s1-a 0.0200 0.0800 2 1 0 s1", "s1-a 0.0700 0.1000 3 0 0 s1",
        "s2-b 0.0000 0.0400 2 0 1 s2", "s2-b 0.0100 0.0500 1 2 0 s2"]


def test_abx_command_errors_are_one_line(tmp_path, capsys):
    import numpy as np

    from cpc.eval.abx.items import read_items

    utterances, features = _abx_set(tmp_path)
    item = tmp_path / "phone.item"
    main(["abx", "items", f"{SAMPLE}/converted_aligned_phones.txt", str(tmp_path / "speakers.txt"), str(item)])
    npy = tmp_path / "npy"
    gone = read_items(item).files[-1]  # the last file the item file names
    (npy / f"{gone}.npy").unlink()
    assert _one_line_error(capsys, ["abx", str(npy), str(item)]) == (
        f"cpc abx: 1 of the 4 files of {item} have no features in {npy}, first: {gone} (features are looked up by "
        "the item file's #file column: extract those files, or use the item file of this set)")
    np.save(npy / f"{gone}.npy", features[gone][:, :3])
    assert _one_line_error(capsys, ["abx", str(npy), str(item)]) == (
        f"cpc abx: features of {gone!r} (dim 3) differ from the earlier files' (dim 80)")
    np.save(npy / f"{gone}.npy", features[gone])
    other = tmp_path / "other.item"  # items of another set: none of its files has features here
    other.write_text("#file onset offset #phone prev-phone next-phone speaker\nu9 0.1 0.3 aa b c s\n")
    assert _one_line_error(capsys, ["abx", str(npy), str(other)]).startswith(
        f"cpc abx: 1 of the 1 files of {other} have no features in {npy}, first: u9 (")
    assert _one_line_error(capsys, ["abx", str(npy), str(item), "--feature-size", "100"]) == (
        f"cpc abx: no item of {item} has frames in its features (feature_size 100.0 s?)")
    assert _one_line_error(capsys, ["abx", str(tmp_path / "nowhere"), str(item)]) == (
        f"cpc abx: features {tmp_path / 'nowhere'} do not exist (a folder of <file>.npy, feature shards or a units "
        ".txt)")
    assert _one_line_error(capsys, ["abx", str(npy), str(tmp_path / "none.item")]) == (
        f"cpc abx: item file {tmp_path / 'none.item'}: No such file or directory")
    assert _one_line_error(capsys, ["abx", "--model", "mfcc", str(item)]) == (
        "cpc abx: --model mfcc needs --audio: the shards or audio folder of the item file's files")
    assert _one_line_error(capsys, ["abx", "items", str(tmp_path / "speakers.txt"), "prefix:-", str(tmp_path / "x")]
                           ).startswith(f"cpc abx items: {tmp_path / 'speakers.txt'} line 1: labels must be integers")


# ---------------------------------------------------------------------------------------------- cpc units
def _tiny_checkpoint(path):
    """A random-init small CPC (64 channels) saved as a model-only checkpoint that cpc.load reads."""
    import torch

    from cpc.checkpoint import model_record
    from cpc.models.cpc import cpc_small

    model = cpc_small()
    torch.save({"model": {f"model.{k}": v for k, v in model.state_dict().items()},
                "model_config": model_record(model, "model.")}, path)
    return path


def test_units_fit_apply_round_trip_and_abx_on_units(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    import cpc
    from cpc.eval.abx.score import abx_errors
    from cpc.eval.sources import load_feature_shards
    from cpc.eval.units import assign, load_units, read_unit_text

    utterances, _ = _abx_set(tmp_path)  # four sentences, also as an audio folder (fit and apply read either)
    (tmp_path / "wavs").mkdir()
    for u in utterances:
        sf.write(tmp_path / "wavs" / f"{u.key}.wav", u.wav.numpy(), 16000, subtype="FLOAT")
    checkpoint = _tiny_checkpoint(tmp_path / "tiny.pt")
    units_file = tmp_path / "units.pt"
    main(["units", "fit", str(checkpoint), str(tmp_path / "wavs"), "--k", "12", "--epochs", "3", "--batch-size",
          "500", "--backend", "torch", "--device", "cpu", "--out", str(units_file)])
    units = load_units(units_file)
    assert units.k == 12 and units.layer == "c" and units.model == str(checkpoint.resolve())
    assert units.frame_seconds == 0.01 and units.frames == sum(len(u.wav) // 160 for u in utterances)

    main(["units", "apply", str(units_file), str(tmp_path / "wavs"), str(tmp_path / "units.txt")])
    main(["units", "apply", str(units_file), str(tmp_path / "wavs"), str(tmp_path / "shards")])
    text, shards = read_unit_text(tmp_path / "units.txt"), load_feature_shards(tmp_path / "shards")
    model = cpc.load(checkpoint)
    assert sorted(text) == sorted(u.key for u in utterances) and shards.frame_rate == 100
    for u in utterances:
        expected = assign(model.features(u.wav), units.centroids).numpy()
        assert np.array_equal(text[u.key], expected) and np.array_equal(shards[u.key], expected)

    item = tmp_path / "phone.item"
    main(["abx", "items", f"{SAMPLE}/converted_aligned_phones.txt", str(tmp_path / "speakers.txt"), str(item)])
    one_hot = {key: np.eye(12, dtype=np.float32)[ids] for key, ids in text.items()}
    direct = abx_errors(one_hot, item, max_size_group=4, max_x_across=1, progress=False)
    for source in ("units.txt", "shards"):
        assert _abx_json(capsys, ["abx", str(tmp_path / source), str(item), "--json", "--quiet", "--max-size-group",
                                  "4", "--max-x-across", "1"]) == direct
    assert _one_line_error(capsys, ["units", "apply", str(checkpoint), f"{SAMPLE}/test", str(tmp_path / "x.txt")]
                           ) == f"cpc units: {checkpoint} is not a units file of cpc units fit (format cpc-units/1)"
