import json

from cpc.cli import main


def test_demo_writes_model_and_history(tmp_path):
    main(["demo", "--out", str(tmp_path), "--steps", "3", "--samples", "3200", "--batch", "2"])
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3]
    assert (tmp_path / "model.pt").stat().st_size > 0
