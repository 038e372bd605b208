"""cpc extract --format kaldi: kaldiio reads back exactly the matrices extract computed, keys in input order."""

import sys

import numpy as np
import pytest

from cpc.cli import main
from cpc.data.labelled import load_utterances

SHIPPED, SAMPLE = "recipes/demo/cpc_shipped.pt", "datasets/synthetic_speech/sample/test"


def test_kaldi_archive_holds_what_npy_extraction_writes(tmp_path, capsys):
    kaldiio = pytest.importorskip("kaldiio")
    main(["extract", SHIPPED, SAMPLE, str(tmp_path / "npy")])
    main(["extract", SHIPPED, SAMPLE, str(tmp_path / "kaldi"), "--format", "kaldi"])
    keys = [u.key for u in load_utterances(SAMPLE)]
    assert f"wrote {len(keys)} matrices (frames x dim, float32)" in capsys.readouterr().out
    table = kaldiio.load_scp(str(tmp_path / "kaldi" / "feats.scp"))
    assert list(table) == keys
    for key in keys:
        assert np.array_equal(table[key], np.load(tmp_path / "npy" / f"{key}.npy"))
    archive = dict(kaldiio.load_ark(str(tmp_path / "kaldi" / "feats.ark")))
    assert list(archive) == keys and np.array_equal(archive[keys[0]], table[keys[0]])


def test_kaldi_output_refuses_float16_before_any_work(tmp_path, capsys):
    pytest.importorskip("kaldiio")
    with pytest.raises(SystemExit) as exited:
        main(["extract", SHIPPED, SAMPLE, str(tmp_path / "k"), "--format", "kaldi", "--dtype", "float16"])
    assert exited.value.code == 2 and capsys.readouterr().err == (
        "cpc extract: --dtype float16 with --format kaldi: Kaldi matrices hold float32; leave --dtype at float32\n")
    assert not (tmp_path / "k").exists()


def test_kaldi_output_without_kaldiio_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaldiio", None)  # `import kaldiio` now raises ImportError
    with pytest.raises(SystemExit) as exited:
        main(["extract", SHIPPED, SAMPLE, str(tmp_path / "k"), "--format", "kaldi"])
    assert exited.value.code == 2 and capsys.readouterr().err == (
        "cpc extract: --format kaldi needs kaldiio: pip install 'cpc[kaldi]' (or pip install kaldiio)\n")
