"""The package layout: the import arrows of docs/architecture.md hold and no module reaches itself, function-level
imports included (tools/check_imports.py)."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("check_imports", Path(__file__).resolve().parents[1] / "tools" / "check_imports.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def test_the_package_follows_its_arrows_without_cycles():
    edges = check.graph()
    assert "cpc.eval.featurize" in edges and "cpc.checkpoint" in edges["cpc.eval.featurize"]
    assert check.violations(edges) == []
    assert check.cycles(edges) == []


def test_the_architecture_page_names_the_arrows_the_checker_enforces():
    page = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line.split("|")[3] for line in page.splitlines()
            if line.startswith("| `cpc/")}
    for layer, allowed in check.ALLOWED.items():
        name = f"cpc/{layer}.py" if f"cpc/{layer}.py" in rows else f"cpc/{layer}/"
        if name not in rows:
            continue  # config, errors, devices, progress, version: importable by anyone
        listed = {word.strip(" ,") for word in rows[name].split()} - {"-"}
        assert listed == allowed, (layer, listed, allowed)
    assert "python tools/check_imports.py" in page


def test_the_checker_finds_cycles_and_wrong_arrows():
    edges = {"cpc.models.a": {"cpc.train.trainer"}, "cpc.train.trainer": {"cpc.data.b"}, "cpc.data.b": {"cpc.models.a"}}
    assert check.cycles(edges) == [["cpc.data.b", "cpc.models.a", "cpc.train.trainer", "cpc.data.b"]]
    assert check.violations(edges) == ["cpc.data.b imports cpc.models.a: layer 'data' may not import 'models'",
                                       "cpc.models.a imports cpc.train.trainer: layer 'models' may not import 'train'"]
