"""What `cpc COMMAND --help` shows: every default once, none for required options, positional names that say what
they are; and a mistyped feature name answered with the built-in names."""

import re

import pytest

from cpc.cli import main

SAMPLE = "datasets/synthetic_speech/sample/test"


def help_text(capsys, monkeypatch, *command) -> str:
    monkeypatch.setenv("COLUMNS", "200")  # one line per option
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_defaults_are_shown_once_and_never_for_required_options(capsys, monkeypatch):
    fit = help_text(capsys, monkeypatch, "units", "fit")
    assert re.search(r"--k K\s+number of units \(default: 50\)\n", fit)
    assert re.search(r"--max-frames MAX_FRAMES\s+.*\(default: 1000000\)\n", fit)
    assert "(default: auto)" in help_text(capsys, monkeypatch, "units", "apply")
    probe = help_text(capsys, monkeypatch, "probe")
    assert re.search(r"--train TRAIN\s+labelled training shards\n", probe)
    assert re.search(r"--target TARGET\s+clips: a clip target to probe; repeat for several \(default: all\)\n", probe)
    assert "(default: None)" not in probe and "(default: [])" not in probe and "(default: False)" not in probe
    assert re.search(r"--epochs EPOCHS\s+.*\(default: 20\)\n", probe)


def test_abx_names_its_positional_arguments(capsys, monkeypatch):
    assert re.search(r"\n  \[FEATURES\] ITEMS\s+FEATURES \(a folder", help_text(capsys, monkeypatch, "abx"))


def test_a_feature_name_that_is_no_file_lists_the_built_in_names(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["probe", "phones", "--train", SAMPLE, "--test", SAMPLE, "--features", "mfc", "--out", "/nonexistent"])
    assert exited.value.code == 2 and capsys.readouterr().err == (
        "cpc probe: mfc: no such checkpoint or run folder, nor a built-in feature; built-in: mfcc, logmel, "
        "random:PRESET (paper, base, small, video), int8:CHECKPOINT, A+B (--features mfc)\n")
