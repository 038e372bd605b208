"""cpc.eval.probe_runs: one run fills its folder (JSON results, one confusion image per result, report.md) with the
numbers it says as it goes, and a run refused before its first result leaves no folder."""

import json
from pathlib import Path

import pytest

from cpc.errors import UserError
from cpc.eval.probe_runs import probe_tasks, run_probes
from cpc.eval.probes import ProbeConfig, ProbeError

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "synthetic_speech" / "sample"


def test_a_run_writes_what_it_says(tmp_path):
    said = []
    config = ProbeConfig(epochs=1, lr=1e-2, batch_size=64)
    results, report = run_probes("speakers", str(SAMPLE / "test"), str(SAMPLE / "test"), ["mfcc", "logmel"], "c",
                                 config, tmp_path / "out", say=said.append)
    assert (results, report) == (tmp_path / "out" / "speakers.json", tmp_path / "out" / "report.md")
    written = json.loads(results.read_text())
    assert written["config"] == vars(config) and list(written["results"]) == ["mfcc", "logmel"]  # flat: one task
    for number, spec in enumerate(("mfcc", "logmel")):
        result = written["results"][spec]
        assert said[2 * number] == (f"{spec:<40} {'speakers':<12} test accuracy {result['accuracy']:.3f}  "
                                    f"(dev {result['dev_accuracy']:.3f}, epoch {result['best_epoch']})")
        assert said[2 * number + 1].startswith("  test: scored all 22 utterances")
        assert (tmp_path / "out" / f"confusion_speakers_{spec}.png").exists()
        assert f"| `{spec}` | speakers | {100 * result['accuracy']:.1f} |" in report.read_text()


def test_a_refused_run_leaves_no_folder(tmp_path):
    with pytest.raises(UserError, match=r"\(--features random:nope\)$"):
        run_probes("phones", str(SAMPLE / "test"), str(SAMPLE / "test"), ["random:nope"], "c", ProbeConfig(),
                   tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ProbeError, match="probe kind 'words': choose one of phones, speakers, clips"):
        probe_tasks("words", [], [], 40, ProbeConfig())
