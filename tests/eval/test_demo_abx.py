"""recipes/demo/demo.py's ABX column on a tiny case: the same number `cpc abx --model ... --speaker-mode within
--context-mode any` prints, for a model and a baseline."""

import importlib.util
import json
from pathlib import Path

import pytest

from cpc.cli import main
from cpc.data.labelled import load_utterances
from cpc.eval.featurize import featurizer

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample"


def tiny_checkpoint(path, **changes):
    import dataclasses

    import torch

    from cpc.checkpoint import model_record
    from cpc.models.cpc import CPCModel, cpc_small

    model = cpc_small()
    if changes:
        model = CPCModel(dataclasses.replace(model.config, **changes))
    torch.save({"model": {f"model.{k}": v for k, v in model.state_dict().items()},
                "model_config": model_record(model, "model.")}, path)
    return path


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("demo", ROOT / "recipes" / "demo" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_abx_column_is_what_cpc_abx_prints(demo, tmp_path, capsys):
    utterances = sorted(load_utterances(SAMPLE / "test"), key=lambda u: (u.speaker, u.key))[:4]  # two voices
    (tmp_path / "speakers.txt").write_text("".join(f"{u.key} {u.speaker}\n" for u in utterances))
    items = demo.abx_items(tmp_path / "speakers.txt", tmp_path / "tiny.item")
    for spec in ("mfcc", str(tiny_checkpoint(tmp_path / "tiny.pt"))):
        ours = demo.abx_within(featurizer(spec, "c"), utterances, items, max_size_group=4)
        capsys.readouterr()
        main(["abx", "--model", spec, "--audio", str(SAMPLE / "test"), str(items), "--speaker-mode", "within",
              "--context-mode", "any", "--max-size-group", "4", "--json", "--quiet", "--device", "cpu"])
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed == {"within-any": ours} and 0 <= ours < 50, spec


def test_the_demos_english_rows_are_what_cpc_probe_phones_prints(tmp_path):
    """The real-English rows use the protocol of the published figures: `cpc probe phones --context 1`, probe
    trained on one split and scored on the other (here the sample's splits stand in for the prompts')."""
    spec = importlib.util.spec_from_file_location("demo", ROOT / "recipes" / "demo" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    [(name, accuracy)] = demo.english_phones(SAMPLE / "train", SAMPLE / "test", [("MFCC (39)", "mfcc", "c")])
    assert main(["probe", "phones", "--train", str(SAMPLE / "train"), "--test", str(SAMPLE / "test"),
                 "--context", "1", "--features", "mfcc", "--out", str(tmp_path / "probe")]) in (0, None)
    reported = json.loads((tmp_path / "probe" / "phones.json").read_text())
    assert name == "MFCC (39)" and 40 < accuracy < 100
    assert accuracy == pytest.approx(100 * reported["results"]["mfcc"]["accuracy"], abs=1e-9)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_demo_names_a_c_bidir_row_for_a_bidirectional_shipped_checkpoint(demo, tmp_path, monkeypatch,
                                                                            bidirectional):
    shipped = tiny_checkpoint(tmp_path / "shipped.pt", bidirectional=bidirectional)
    monkeypatch.setattr(demo, "SHIPPED", shipped)
    expected = [("CPC 128-ch, shipped checkpoint", str(shipped), "c")]
    if bidirectional:
        expected.append(("CPC 128-ch, shipped, c_bidir", str(shipped), "c_bidir"))
    assert demo.shipped_rows() == expected
