"""Trust, as a user meets it (issue 15): every mistake a user can make is one line on stderr, `cpc <command>:
<what> (<where>): <how to fix>`, exit status 2, no traceback, and what existed before is unchanged (checked by
checksum); faults lose nothing (a truncated checkpoint is skipped on resume, Ctrl-C saves the current step); a
corpus that can never fill a batch fails within seconds.

Every case is a command in its own process on files made here. Runs, resumes and signals are `python -m cpc.cli`
itself. The many quick refusals go through a fork server (`Commands`): one Python process that imported cpc.cli
once forks a child per command, which runs `cpc.cli.main(argv)` (what `python -m cpc.cli` runs) with its own
stdout, stderr and exit status, four at a time. That saves the ~2 s of imports per command, so the module stays
near two minutes on two shared cores."""

import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cpc import checkpoint

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample"
RECIPE = "recipes/demo/cpc.yaml"
TINY = ["--set", "cpc_preset=small", "--set", "data.window=3200", "--set", "data.batch_size=4", "--set", "val_shards=",
        "--set", "train.progress=false"]
TRAIN = TINY + ["--set", "train.steps=4", "--set", "train.checkpoint_every=2"]  # the run every resume case starts from

SERVER = r"""
import json, os, sys, traceback
import cpc.cli, cpc.recipe, cpc.eval.features, cpc.eval.probes  # what every command imports, once

def run(argv, out, err):
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.stdout, sys.stderr = open(1, "w", buffering=1, closefd=False), open(2, "w", buffering=1, closefd=False)
    code = 0
    try:
        cpc.cli.main(argv)
    except SystemExit as stop:  # as the interpreter exits: an int is the status, anything else is printed
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, (int, type(None))):
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

for line in sys.stdin:  # a batch of [argv, stdout path, stderr path]; answers their exit statuses
    cases = json.loads(line)
    codes, running = [None] * len(cases), {}
    for number, case in enumerate(cases):
        if len(running) == 4:
            pid, status = os.wait()
            codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
        pid = os.fork()
        if pid == 0:
            run(*case)
        running[pid] = number
    while running:
        pid, status = os.wait()
        codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    print(json.dumps(codes), flush=True)
"""


class Commands:
    """`cpc` commands run by the fork server (see the module docstring)."""

    def __init__(self, scratch: Path):
        self.scratch, self.count = scratch, 0
        self.server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=ROOT, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)

    def run_all(self, cases: dict[str, list]) -> dict[str, subprocess.CompletedProcess]:
        """Each case's command in its own process; name -> (returncode, stdout, stderr)."""
        files = {}
        for name in cases:
            self.count += 1
            files[name] = (self.scratch / f"{self.count}.out", self.scratch / f"{self.count}.err")
        batch = [[list(map(str, args)), str(files[name][0]), str(files[name][1])] for name, args in cases.items()]
        self.server.stdin.write(json.dumps(batch) + "\n")
        self.server.stdin.flush()
        codes = json.loads(self.server.stdout.readline())
        return {name: subprocess.CompletedProcess(["cpc", *map(str, args)], code, files[name][0].read_text(),
                                                  files[name][1].read_text())
                for (name, args), code in zip(cases.items(), codes)}

    def run(self, *args) -> subprocess.CompletedProcess:
        return self.run_all({"one": list(args)})["one"]

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    commands = Commands(tmp_path_factory.mktemp("commands"))
    yield commands
    commands.close()


def cpc(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m cpc.cli ARGS...`, as a user types it, from the repository root."""
    return subprocess.run([sys.executable, "-m", "cpc.cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def one_line(result: subprocess.CompletedProcess, command: str, message: str) -> None:
    """Exit status 2 and stderr exactly `cpc <command>: <message>`: one line, no traceback."""
    assert (result.returncode, result.stderr) == (2, f"cpc {command}: {message}\n"), result.stdout


def checksums(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders, by path."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def recording(path: Path, seconds: float, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.random.default_rng(seed).standard_normal(round(seconds * 16000)).astype(np.float32) * 0.1
    sf.write(path, samples, 16000)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished 4-step run: step-2 and step-4 checkpoints, log.csv, curves.png."""
    out = tmp_path_factory.mktemp("run") / "run"
    trained = cpc("pretrain", RECIPE, *TRAIN, "--set", f"train.out={out}")
    assert trained.returncode == 0, trained.stderr
    return out


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, cli) -> dict[str, Path]:
    """Shards written by `cpc shards` from flat folders (no speaker labels): "flat", three 0.5 s recordings beside
    a 0-sample file and a file that is not audio; "short", six recordings of 0.05 s, all shorter than a window."""
    root = tmp_path_factory.mktemp("corpora")
    for i in range(3):
        recording(root / "flat" / f"utt{i}.wav", 0.5, seed=i)
    recording(root / "flat" / "silent.wav", 0.0)
    (root / "flat" / "noise.wav").write_bytes(b"RIFF, but not really")
    for i in range(6):
        recording(root / "short" / f"tiny{i}.wav", 0.05, seed=i)
    written = cli.run_all({name: ["shards", root / name, root / f"{name}_shards"] for name in ("flat", "short")})
    for result in written.values():
        assert result.returncode == 0, result.stderr
    return {"root": root, **{name: root / f"{name}_shards" for name in written}, "flat_report": written["flat"]}


def test_config_mistakes_are_one_line_before_anything_runs(tmp_path, cli):
    broken, empty, listed = tmp_path / "broken.yaml", tmp_path / "empty.yaml", tmp_path / "list.yaml"
    broken.write_text("method: cpc\ndata: {batch_size: 4\ntrain: {steps: 2}\n")
    empty.write_text("")
    listed.write_text("- method: cpc\n")
    recipes = {
        broken: "broken YAML: expected ',' or '}', but got ':' while parsing a flow mapping opened at line 2, "
                f"column 7 ({broken}, line 3, column 6): fix the syntax there",
        empty: f"the config file is empty ({empty}): write its settings as a mapping, e.g. `method: cpc`",
        listed: f"the config file's top level is a list, not a mapping of keys ({listed}): write it as "
                "`key: value` lines, e.g. `method: cpc`",
    }
    settings = {
        "data.batch_size=0": "data.batch_size is 0 (--set data.batch_size=0): it must be >= 1",
        "data.batch_size=-4": "data.batch_size is -4 (--set data.batch_size=-4): it must be >= 1",
        "data.window=3000": "data.window 3000 must be a multiple of the model's hop 160 (--set data.window=3000): "
                            "use 2880 or 3040 samples (the hop is the product of cpc.model.encoder.strides)",
        "cpc.infonce.policy=nearest": "unknown cpc.infonce.policy 'nearest' (--set cpc.infonce.policy=nearest): "
                                      "choose one of batch, same_sequence, same_speaker",
        "cpc.model.predictor.steps=30": "data.window 3200 holds 20 frames of 160 samples, too few for K = 30 "
                                        "prediction steps (cpc.model.predictor.steps) (--set data.window=3200, "
                                        "--set cpc.model.predictor.steps=30): use a window of at least 4960 samples "
                                        "(31 frames), or a smaller K",
        "train.checkpoint_every=0": "train.checkpoint_every is 0 (--set train.checkpoint_every=0): it must be >= 1",
        "train.steps=0": "train.steps is 0 (--set train.steps=0): it must be >= 1",
        "train.steps=-5": "train.steps is -5 (--set train.steps=-5): it must be >= 1",
        "optim.lr=0": "optim.lr is 0.0 (--set optim.lr=0): it must be > 0",
        "optim.accumulate=0": "optim.accumulate is 0 (--set optim.accumulate=0): it must be >= 1",
        "train.precision=fp8": "unknown train.precision 'fp8' (--set train.precision=fp8): choose one of auto, fp32, "
                               "bf16, fp16",
    }
    out = ["--set", f"train.out={tmp_path / 'never'}"]
    results = cli.run_all({**{recipe: ["pretrain", recipe, *out] for recipe in recipes},
                           **{given: ["pretrain", RECIPE, *TINY, *out, "--set", given] for given in settings}})
    for case, message in {**recipes, **settings}.items():
        one_line(results[case], "pretrain", message)
    assert not (tmp_path / "never").exists()


def test_same_speaker_negatives_without_speaker_labels_stop_at_the_first_batch(tmp_path, cli, corpora):
    result = cli.run("pretrain", RECIPE, *TINY, "--set", f"data.shards={corpora['flat']}", "--set", "train.steps=3",
                     "--set", "cpc.infonce.policy=same_speaker", "--set", f"train.out={tmp_path / 'run'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.fullmatch(r"cpc pretrain: cpc.infonce.policy 'same_speaker' needs speaker labels, but none of the "
                        r"batch's 4 sequences has one \(utt\d@\d+, utt\d@\d+, utt\d@\d+ \.\.\.\): write the shards "
                        r"with speakers \(`cpc shards` takes them from folder names, see --speaker-level, or a "
                        r"manifest's speaker column\), or set cpc.infonce.policy=batch\n", result.stderr), result.stderr
    assert not list((tmp_path / "run").glob("step-*.pt"))


def test_shards_mistakes_fail_before_writing_anything(tmp_path, cli):
    for name in ("a b", "a_b", "c"):
        recording(tmp_path / "corpus" / "spk" / f"{name}.wav", 0.2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_speaker.tsv").write_text("path\tspk\ncorpus/spk/c.wav\tx\n")
    (tmp_path / "gone.tsv").write_text("path\tspeaker\ncorpus/spk/c.wav\tx\nlost.wav\tx\n")
    (tmp_path / "good.tsv").write_text("path\tspeaker\ncorpus/spk/c.wav\tx\n")
    (tmp_path / "test.txt").write_text("spk_c\nspk_d\nspk_e\n")
    before = checksums(tmp_path)
    results = cli.run_all({
        "empty": ["shards", tmp_path / "empty", tmp_path / "out"],
        "column": ["shards", tmp_path / "no_speaker.tsv", tmp_path / "out"],
        "no manifest": ["shards", tmp_path / "nope.tsv", tmp_path / "out"],
        "lost file": ["shards", tmp_path / "gone.tsv", tmp_path / "out"],
        "alignments": ["shards", tmp_path / "good.tsv", tmp_path / "out", "--alignments", tmp_path / "nope.txt"],
        "collision": ["shards", tmp_path / "corpus", tmp_path / "out"],
        "split list": ["shards", tmp_path / "good.tsv", tmp_path / "out", "--split", f"test={tmp_path / 'none.txt'}"],
    })
    one_line(results["empty"], "shards", f"no audio files (.wav, .flac, .ogg, .opus, .mp3, .aiff, .aif, .au) under "
                                          f"{tmp_path / 'empty'}: point at the folder that holds the recordings "
                                          "(searched recursively)")
    one_line(results["column"], "shards", f"manifest {tmp_path / 'no_speaker.tsv'} lacks column(s) ['speaker'] "
                                           "(header ['path', 'spk']): the first row must name the columns, "
                                           "tab-separated, path and speaker among them")
    one_line(results["no manifest"], "shards", f"{tmp_path / 'nope.tsv'} does not exist: give a folder of audio "
                                                "files or a TSV manifest (header row with path and speaker columns)")
    one_line(results["lost file"], "shards", f"1 of the 2 recordings manifest {tmp_path / 'gone.tsv'} lists do not "
                                              f"exist (first {tmp_path / 'lost.wav'} (line 3)): fix those paths "
                                              "(relative ones are taken from the manifest's folder)")
    one_line(results["alignments"], "shards", f"alignments file {tmp_path / 'nope.txt'} does not exist: check the "
                                               "--alignments path (one line per utterance: key, then one integer "
                                               "label per 10 ms frame)")
    one_line(results["collision"], "shards", f"2 recordings share the shard key 'spk_a_b' once made shard-safe "
                                              f"({tmp_path / 'corpus/spk/a b.wav'}, {tmp_path / 'corpus/spk/a_b.wav'}"
                                              "): rename all but one (keys keep letters, digits, _ and -), or list "
                                              "them in a manifest with a unique key column")
    one_line(results["split list"], "shards", f"split list {tmp_path / 'none.txt'} (for split 'test') does not "
                                               "exist: check the --split path")
    (tmp_path / "corpus" / "spk" / "a b.wav").unlink()  # the collision resolved: the split list's mistake shows
    split = cli.run("shards", tmp_path / "corpus", tmp_path / "out", "--split", f"test={tmp_path / 'test.txt'}")
    one_line(split, "shards", "2 of the 3 utterances split 'test' lists are not in the corpus (spk_d, spk_e): fix "
                              "the list or the source (a folder's keys are file paths under it without suffix, / "
                              "and other signs as _)")
    del before[str(tmp_path / "corpus" / "spk" / "a b.wav")]
    assert checksums(tmp_path) == before  # nothing written, nothing changed


def test_shards_skip_empty_and_unreadable_files_once_each_with_a_progress_total(corpora):
    report, flat = corpora["flat_report"], corpora["root"] / "flat"
    index = json.loads((corpora["flat"] / "index.json").read_text())
    assert index["samples"] == 3
    assert report.stdout.count(str(flat / "silent.wav")) == report.stdout.count(str(flat / "noise.wav")) == 1
    assert f"  skipped 1, empty audio (under one 10 ms frame): {flat / 'silent.wav'} (0 samples)\n" in report.stdout
    assert f"  skipped 1, unreadable audio: cannot read audio {flat / 'noise.wav'}: " in report.stdout
    assert re.search(r"sharding recordings: 100%\S* 5/5 \[\d\d:\d\d<00:00", report.stderr)  # total and ETA


def test_extract_skips_unreadable_files_and_never_mixes_outputs(tmp_path, cli, run):
    for name in ("a", "b"):
        recording(tmp_path / "audio" / f"{name}.wav", 0.5)
    (tmp_path / "audio" / "junk.wav").write_bytes(b"not audio")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    np.save(earlier / "stale.npy", np.zeros(3))
    (earlier / "notes.txt").write_text("mine")
    corrupt, foreign = tmp_path / "corrupt.pt", tmp_path / "foreign.pt"
    corrupt.write_bytes((run / "step-00000004.pt").read_bytes()[:5000])
    torch.save({"weights": torch.zeros(2)}, foreign)
    before = checksums(tmp_path, run)
    audio = tmp_path / "audio"
    results = cli.run_all({
        "skips": ["extract", run, audio, tmp_path / "out"],
        "non-empty": ["extract", run, audio, earlier],
        "negative chunk": ["extract", run, audio, tmp_path / "o1", "--chunk-seconds", "-1"],
        "tiny chunk": ["extract", run, audio, tmp_path / "o2", "--chunk-seconds", "0.001"],
        "batch": ["extract", run, audio, tmp_path / "o3", "--batch", "0"],
        "missing": ["extract", tmp_path / "missing.pt", audio, tmp_path / "o4"],
        "corrupt": ["extract", corrupt, audio, tmp_path / "o5"],
        "foreign": ["extract", foreign, audio, tmp_path / "o6"],
    })
    skipped = results["skips"]
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout == (f"wrote 2 arrays (frames x dim, float32) to {tmp_path / 'out'}\n"
                              f"skipped: 1 unreadable audio (e.g. {audio / 'junk.wav'}: Format not recognised.)\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.npy", "b.npy"]
    assert re.search(r"extracting: 100%\S* 3/3 ", skipped.stderr)  # the skipped file counts toward the total
    one_line(results["non-empty"], "extract", f"output folder {earlier} already holds 2 file(s) (e.g. notes.txt): "
                                              "name an empty or new folder, or pass --overwrite to replace an "
                                              "earlier extraction there")
    least = "use 0 (whole files) or at least 0.03 s (480 samples)"
    one_line(results["negative chunk"], "extract", f"a negative chunk length (--chunk-seconds): {least}")
    one_line(results["tiny chunk"], "extract", "chunks of 0.001 s (16 samples) cannot hold one frame's context of "
                                               f"465 samples (--chunk-seconds): {least}")
    one_line(results["batch"], "extract", "a batch of 0 utterances (--batch): use 1 or more")
    one_line(results["missing"], "extract", f"checkpoint {tmp_path / 'missing.pt'} does not exist")
    one_line(results["foreign"], "extract", f"{foreign} is not a cpc checkpoint (no model weights)")
    assert re.fullmatch(rf"cpc extract: {re.escape(str(corrupt))} is not a readable checkpoint \([^\n]+\)\n",
                        results["corrupt"].stderr) and results["corrupt"].returncode == 2
    assert checksums(tmp_path, run) == {**before, **checksums(tmp_path / "out")}  # only the new folder is new
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 7))
    overwritten = cli.run("extract", run, audio, earlier, "--overwrite")
    assert overwritten.returncode == 0, overwritten.stderr
    assert sorted(p.name for p in earlier.iterdir()) == ["a.npy", "b.npy", "notes.txt"]  # stale.npy went
    assert (earlier / "notes.txt").read_text() == "mine"


def test_probe_reports_what_it_scored_of_the_index_and_why_the_rest_was_left_out(tmp_path, cli):
    from cpc.data.labelled import load_utterances

    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(SAMPLE / "test" / "index.json", broken)
    tar = (SAMPLE / "test" / "shard-000000.tar").read_bytes()
    (broken / "shard-000000.tar").write_bytes(tar[: len(tar) * 6 // 10])  # the tar breaks off
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "index.json").write_text('{"format": "cpc-shards/1", "shards": [], "samples": 0}')
    before = checksums(tmp_path)
    probe = ["probe", "phones", "--train", SAMPLE / "test", "--features", "mfcc", "--epochs", "1"]
    results = cli.run_all({"broken": [*probe, "--test", broken, "--out", tmp_path / "out"],
                           "empty": [*probe, "--test", tmp_path / "empty", "--out", tmp_path / "out2"],
                           "checkpoint": ["probe", "phones", "--train", SAMPLE / "test", "--test", SAMPLE / "test",
                                          "--features", tmp_path / "gone.pt", "--out", tmp_path / "out3"]})
    scored = len(load_utterances(broken))
    total = json.loads((SAMPLE / "test" / "index.json").read_text())["samples"]
    assert results["broken"].returncode == 0, results["broken"].stderr
    line = (f"  test: scored {scored} of {total} utterances; left out {total - scored}: {total - scored} in the "
            f"index but never read (unreadable shard data (ReadError)) (e.g. {broken / 'shard-000000.tar'})\n")
    assert line in results["broken"].stdout and f"  train: scored all {total} utterances\n" in results["broken"].stdout
    coverage = json.loads((tmp_path / "out" / "phones.json").read_text())["results"]["mfcc"]["coverage"]
    assert coverage["test"] == {"total": total, "scored": scored, "left_out": {
        "in the index but never read (unreadable shard data (ReadError))": {
            "count": total - scored, "examples": [str(broken / "shard-000000.tar")]}}}
    one_line(results["empty"], "probe", f"the shard index lists no shards, an empty shard set "
                                        f"({tmp_path / 'empty' / 'index.json'}): write the shards again with "
                                        "`cpc shards`, from a source that has readable recordings")
    one_line(results["checkpoint"], "probe", f"checkpoint {tmp_path / 'gone.pt'} does not exist (--features "
                                             f"{tmp_path / 'gone.pt'})")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()
    assert {k: v for k, v in checksums(tmp_path).items() if "/out/" not in k} == before


def test_every_option_of_every_command_has_a_help_line_and_shows_its_default():
    import argparse

    from cpc.cli import parser

    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, (name, action.dest)
    shown = cpc("extract", "--help")
    assert shown.returncode == 0 and "--overwrite" in shown.stdout
    assert re.search(r"--batch BATCH\s+utterances per padded batch \(default: 8\)", shown.stdout)


def test_a_folder_holding_a_run_is_refused_and_a_changed_resume_too(cli, run):
    before = checksums(run)
    # One after the other: side by side, one would find the other's run.lock ("in use by a live run") now and then.
    results = {"rerun": cli.run("pretrain", RECIPE, *TRAIN, "--set", f"train.out={run}"),
               "lr": cli.run("pretrain", RECIPE, *TRAIN, "--set", f"train.out={run}", "--resume",
                             "--set", "optim.lr=0.5")}
    one_line(results["rerun"], "pretrain", f"run folder {run} already holds a run (2 checkpoint(s)): continue it "
                                           "with --resume, or start over there with --overwrite (deletes its "
                                           "checkpoints and logs), or choose another train.out")
    one_line(results["lr"], "pretrain", f"resuming {run / 'step-00000004.pt'} with settings that would break exact "
                                        "resume: optim.lr 0.001 -> 0.5: drop those --set overrides, or start a new "
                                        "run in another train.out")
    assert checksums(run) == before


def test_overwrite_starts_over_and_resume_skips_a_truncated_newest_checkpoint(tmp_path, run):
    fresh, broken = tmp_path / "fresh", tmp_path / "broken"
    shutil.copytree(run, fresh)
    shutil.copytree(run, broken)
    (fresh / "notes.txt").write_text("not the run's")
    newest = broken / "step-00000004.pt"
    newest.write_bytes(newest.read_bytes()[:100_000])  # a write cut short by a crash
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = broken / f".step-00000006.pt.tmp-{socket.gethostname()}-{gone.stdout.strip()}"  # its writer died
    elsewhere = broken / ".step-00000006.pt.tmp-another-host-1"  # perhaps still being written, on another machine
    dead.write_bytes(b"partial")
    elsewhere.write_bytes(b"partial")
    kept = checksums(broken)[str(broken / "step-00000002.pt")]
    with ThreadPoolExecutor(2) as pool:  # two real runs side by side
        overwrite = pool.submit(cpc, "pretrain", RECIPE, *TINY, "--set", "train.steps=2", "--set",
                                f"train.out={fresh}", "--overwrite")
        resume = pool.submit(cpc, "pretrain", RECIPE, *TRAIN, "--set", "train.steps=6", "--set",
                             f"train.out={broken}", "--resume")
        results = {"overwrite": overwrite.result(), "resume": resume.result()}
    assert results["overwrite"].returncode == 0, results["overwrite"].stderr
    assert sorted(p.name for p in fresh.iterdir()) == ["curves.png", "log.csv", "notes.txt", "step-00000002.pt"]
    assert (fresh / "notes.txt").read_text() == "not the run's"
    assert max(int(line.split(",")[0]) for line in (fresh / "log.csv").read_text().splitlines()[1:]) == 2
    resumed = results["resume"]
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {broken / 'step-00000002.pt'} (step 2)\n" in resumed.stdout
    assert "resumed with train.steps 4 -> 6\n" in resumed.stdout
    assert f"skipped a checkpoint that does not read: {newest} is not a readable checkpoint" in resumed.stderr
    assert checkpoint.read(broken)["step"] == 6 and checkpoint.read(newest)["step"] == 4  # rewritten whole
    assert checksums(broken)[str(broken / "step-00000002.pt")] == kept
    assert f"removed {dead.name}, left by an interrupted checkpoint write\n" in resumed.stdout
    assert not dead.exists() and elsewhere.read_bytes() == b"partial"


def test_ctrl_c_saves_the_current_step_exits_130_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    settings = [*TINY, "--set", "train.log_every=1", "--set", f"train.out={out}"]
    running = subprocess.Popen([sys.executable, "-m", "cpc.cli", "pretrain", RECIPE, *settings,
                                "--set", "train.steps=1000"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    log = out / "log.csv"
    while not (log.exists() and len(log.read_text().splitlines()) > 1) and time.time() < deadline:
        time.sleep(0.05)  # the first step is logged: the run is mid-way
    os.kill(running.pid, signal.SIGINT)
    stdout, stderr = running.communicate(timeout=120)
    assert running.returncode == 130, stderr
    stopped = re.fullmatch(r"cpc pretrain: interrupted at step (\d+); checkpoint (\S+); continue with --resume\n",
                           stderr)
    assert stopped, stderr
    step = int(stopped.group(1))
    logged = [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:]]
    assert step >= 1 and max(logged) == step  # the checkpoint holds the last step run: none lost
    assert stopped.group(2) == str(out / f"step-{step:08d}.pt") and checkpoint.read(stopped.group(2))["step"] == step
    resumed = cpc("pretrain", RECIPE, *settings, "--set", f"train.steps={step + 1}", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {out / f'step-{step:08d}.pt'} (step {step})\n" in resumed.stdout
    assert checkpoint.read(out)["step"] == step + 1


def test_a_corpus_too_short_for_one_window_fails_within_seconds(tmp_path, corpora):
    started = time.time()
    result = cpc("pretrain", RECIPE, *TINY, "--set", f"data.shards={corpora['short']}",
                 "--set", f"train.out={tmp_path / 'run'}", timeout=120)
    assert time.time() - started < 60
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    shard = corpora["short"] / "shard-000000.tar"
    assert re.fullmatch(rf"cpc pretrain: \d+ samples read from {re.escape(str(shard))} without one batch of 4 "
                        r"windows of 3200 samples; skipped: \d+ shorter than one window \(e.g. tiny\d.*\)\n",
                        result.stderr), result.stderr


EXACT = ["--set", "optim.warmup_steps=2", "--set", "optim.schedule=constant", "--set", "train.log_every=1"]  # the
# learning rate after warm-up does not depend on train.steps, so a run stopped early equals a shorter one


def holder(out: Path) -> dict:
    return json.loads((out / "run.lock").read_text())


def test_sigterm_saves_the_current_step_exits_75_and_resume_equals_an_uninterrupted_run(tmp_path, cli):
    out, straight = tmp_path / "run", tmp_path / "straight"
    settings = [*TINY, *EXACT, "--set", f"train.out={out}"]
    running = subprocess.Popen([sys.executable, "-m", "cpc.cli", "pretrain", RECIPE, *settings,
                                "--set", "train.steps=1000"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        log = out / "log.csv"
        while not (log.exists() and len(log.read_text().splitlines()) > 1) and time.time() < deadline:
            time.sleep(0.05)  # the first step is logged: the run is mid-way
        lock = holder(out)
        assert (lock["host"], lock["pid"]) == (socket.gethostname(), running.pid)
        second = cli.run_all({"fresh": ["pretrain", RECIPE, *settings], "resume": ["pretrain", RECIPE, *settings,
                                                                                   "--resume"]})
    finally:
        os.kill(running.pid, signal.SIGTERM)
        stdout, stderr = running.communicate(timeout=120)
    for result in second.values():  # one writer per folder, with or without --resume
        one_line(result, "pretrain", f"run folder {out} is in use by a live run (host {lock['host']}, pid "
                                     f"{running.pid}, started {lock['started']}): wait for it to end, stop it (kill "
                                     f"-TERM {running.pid} saves a checkpoint), or choose another train.out")
    assert running.returncode == 75, stderr
    stopped = re.fullmatch(r"cpc pretrain: stopped by SIGTERM at step (\d+); checkpoint (\S+); continue with --resume "
                           r"\(exit status 75: requeue\)\n", stderr)
    assert stopped, stderr
    step = int(stopped.group(1))
    logged = [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:]]
    assert step >= 1 and max(logged) == step  # the checkpoint holds the last step run: none lost
    assert stopped.group(2) == str(out / f"step-{step:08d}.pt") and checkpoint.read(stopped.group(2))["step"] == step
    assert not (out / "run.lock").exists()
    total = [*TINY, *EXACT, "--set", f"train.steps={step + 2}"]
    results = cli.run_all({"resumed": ["pretrain", RECIPE, *total, "--set", f"train.out={out}", "--resume"],
                           "straight": ["pretrain", RECIPE, *total, "--set", f"train.out={straight}"]})
    for result in results.values():
        assert result.returncode == 0, result.stderr
    assert f"resuming from {out / f'step-{step:08d}.pt'} (step {step})\n" in results["resumed"].stdout
    a, b = checkpoint.read(straight), checkpoint.read(out)
    assert a["step"] == b["step"] == step + 2
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name


def test_a_dead_writers_lock_is_taken_over_another_hosts_is_named_and_a_finished_run_has_nothing_to_do(tmp_path,
                                                                                                         cli, run):
    stale, remote = tmp_path / "stale", tmp_path / "remote"
    shutil.copytree(run, stale)
    shutil.copytree(run, remote)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = {"host": socket.gethostname(), "pid": int(gone.stdout), "started": "2026-12-01 10:00:00 UTC"}
    elsewhere = {"host": "node-17", "pid": 4242, "started": "2026-12-01 11:00:00 UTC"}
    (stale / "run.lock").write_text(json.dumps(dead))
    (remote / "run.lock").write_text(json.dumps(elsewhere))
    before = checksums(remote)
    results = cli.run_all({"stale": ["pretrain", RECIPE, *TRAIN, "--set", f"train.out={stale}", "--resume"],
                           "remote": ["pretrain", RECIPE, *TRAIN, "--set", f"train.out={remote}", "--resume"],
                           "remote fresh": ["pretrain", RECIPE, *TRAIN, "--set", f"train.out={remote}"],
                           "finished": ["pretrain", RECIPE, *TRAIN, "--set", f"train.out={run}", "--resume"]})
    finished = ("nothing left to do: {} is at step 4 and train.steps is 4 (resume with a larger train.steps to train "
                "on)\n")
    assert (results["stale"].returncode, results["stale"].stdout) == (0, (
        f"took over {stale / 'run.lock'} from a run that is gone (host {dead['host']}, pid {dead['pid']}, started "
        f"2026-12-01 10:00:00 UTC)\nresumed with train.out '{run}' -> '{stale}'\n"  # a copy of the run
        + finished.format(stale / "step-00000004.pt"))), results["stale"].stderr
    assert not (stale / "run.lock").exists()
    for case in ("remote", "remote fresh"):
        one_line(results[case], "pretrain", f"run folder {remote} is in use by a run on another host (host node-17, "
                                            "pid 4242, started 2026-12-01 11:00:00 UTC), which cannot be checked from "
                                            f"here: if that run is dead, delete {remote / 'run.lock'} and start again")
    assert checksums(remote) == before
    assert (results["finished"].returncode, results["finished"].stdout) == (
        0, finished.format(run / "step-00000004.pt")), results["finished"].stderr


def test_null_turns_off_an_optional_setting_given_with_set(tmp_path, cli):
    out = tmp_path / "run"
    tiny = [*TINY[:TINY.index("val_shards=") - 1], *TINY[TINY.index("val_shards=") + 1:]]
    results = cli.run_all({
        "off": ["pretrain", RECIPE, *tiny, "--set", "val_shards=null", "--set", "train.validate_every=1",
                "--set", "train.steps=1", "--set", f"train.out={out}"],
        "required": ["pretrain", RECIPE, *tiny, "--set", "train.steps=null", "--set", f"train.out={tmp_path / 'x'}"],
    })
    assert results["off"].returncode == 0, results["off"].stderr
    assert checkpoint.read(out)["config"]["val_shards"] == "" and ",val," not in (out / "log.csv").read_text()
    one_line(results["required"], "pretrain", "train.steps: expected int, got null (null turns off only optional "
                                              "settings: text, lists and the ones that take null)")


def float_recording(path: Path, samples: np.ndarray) -> Path:
    """A float WAV as other tools write them: it can hold NaN and Inf, and values past full scale."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples.astype(np.float32), 16000, subtype="FLOAT")
    return path


def test_broken_recordings_are_skipped_named_and_counted_and_flawed_ones_noted(tmp_path, cli, run):
    """NaN and Inf never reach a shard or a feature array; silence, clipping and a DC offset are written but named;
    a failed `cpc shards` leaves no shard without its index."""
    corpus = tmp_path / "corpus"
    for i in range(3):
        recording(corpus / f"good{i}.wav", 1.0, seed=i)
    noise = np.random.default_rng(9).standard_normal(16000) * 0.1
    float_recording(corpus / "nan.wav", np.where(np.arange(16000) >= 400, np.nan, noise))  # 97.5 % NaN
    float_recording(corpus / "inf.wav", np.where(np.arange(16000) == 8000, np.inf, noise))
    float_recording(corpus / "silent.wav", np.zeros(16000))
    float_recording(corpus / "clipped.wav", np.clip(noise * 30, -1, 1))
    float_recording(corpus / "offset.wav", noise + 0.2)
    before = checksums(corpus)
    results = cli.run_all({"shards": ["shards", corpus, tmp_path / "shards"],
                           "extract": ["extract", run, corpus, tmp_path / "features"]})
    sharded, extracted = results["shards"], results["extract"]
    assert sharded.returncode == 0, sharded.stderr
    nan, inf = (f"cannot read audio {corpus / name}.wav: it holds NaN or infinite samples (the first is sample {at})"
                for name, at in (("nan", 400), ("inf", 8000)))
    lines = sharded.stdout.splitlines()
    assert lines[0] == f"shards: 6 samples, 0.00 h in 1 shard(s) under {tmp_path / 'shards'}"
    assert lines[1] in (f"  skipped 2, non-finite samples (NaN or Inf): {a}; {b}" for a, b in ((nan, inf), (inf, nan)))
    clipped = np.mean(np.abs(np.clip(noise * 30, -1, 1).astype(np.float32)) >= 32767 / 32768)
    offset = (noise + 0.2).astype(np.float32)
    assert sorted(lines[2:]) == [
        f"  kept, but 1 of 8 recordings are clipped (over 0.1% of samples at full scale): {corpus / 'clipped.wav'} "
        f"({clipped:.1%})",
        f"  kept, but 1 of 8 recordings are digital silence (every sample 0): {corpus / 'silent.wav'}",
        f"  kept, but 1 of 8 recordings have a DC offset (mean over 10% of the RMS): {corpus / 'offset.wav'} (mean "
        f"{offset.mean(dtype=np.float64):+.3g}, RMS {np.sqrt(np.mean(np.square(offset, dtype=np.float64))):.3g})"]
    index = json.loads((tmp_path / "shards" / "index.json").read_text())
    assert index["samples"] == 6 and [s["url"] for s in index["shards"]] == ["shard-000000.tar"]
    assert extracted.returncode == 0, extracted.stderr
    assert extracted.stdout == (f"wrote 6 arrays (frames x dim, float32) to {tmp_path / 'features'}\n"
                                f"skipped: 2 non-finite samples (NaN or Inf) (e.g. {inf.removeprefix('cannot read audio ')}"
                                f", {nan.removeprefix('cannot read audio ')})\n")
    assert sorted(p.stem for p in (tmp_path / "features").iterdir()) == ["clipped", "good0", "good1", "good2",
                                                                         "offset", "silent"]
    assert all(np.isfinite(np.load(p)).all() for p in (tmp_path / "features").iterdir())
    assert checksums(corpus) == before

    # Interrupted mid-way (a shard per 0.1 s piece: 4,800 shards, seconds of work even on a quiet core, so the
    # signal lands long before the end): no shard is left without the index that lists it.
    for i in range(16):
        recording(tmp_path / "many" / f"r{i}.wav", 30.0, seed=i)
    # A Ctrl-C that lands while soundfile encodes FLAC is raised inside a cffi callback, which swallows it: the
    # sample loop takes it between samples instead (cpc.signals), so it is never lost.
    sharding = subprocess.Popen([sys.executable, "-m", "cpc.cli", "shards", tmp_path / "many", tmp_path / "cut",
                                 "--max-seconds", "0.1", "--shard-mb", "0.001"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "cut" / "shard-000002.tar").exists() and time.time() < deadline:
        time.sleep(0.02)
    os.kill(sharding.pid, signal.SIGINT)
    _, stderr = sharding.communicate(timeout=60)
    assert (sharding.returncode, stderr.splitlines()[-1]) == (130, "cpc shards: interrupted (Ctrl-C)")
    assert sorted((tmp_path / "cut").iterdir()) == []


def test_one_audio_file_is_accepted_where_a_folder_is_and_long_ones_stream_in_bounded_memory(tmp_path, cli, run):
    folder = tmp_path / "audio"
    recording(folder / "take.wav", 1.0)
    recording(folder / "long take.wav", 2.5, seed=1)
    items = tmp_path / "take.item"
    phones = "abababababababab"
    items.write_text("#file onset offset #phone prev-phone next-phone speaker\n" + "".join(
        f"take {0.05 * i + 0.1:.2f} {0.05 * i + 0.15:.2f} {p} x x s\n" for i, p in enumerate(phones)))
    units = tmp_path / "units.pt"
    results = cli.run_all({
        "folder": ["extract", run, folder, tmp_path / "from_folder"],
        "file": ["extract", run, folder / "take.wav", tmp_path / "from_file"],
        "long": ["extract", run, folder / "long take.wav", tmp_path / "streamed", "--chunk-seconds", "1"],
        "long whole": ["extract", run, folder / "long take.wav", tmp_path / "whole", "--chunk-seconds", "0"],
        "abx": ["abx", "--model", run, "--audio", folder / "take.wav", items, "--speaker-mode", "within",
                "--context-mode", "within", "--json", "--quiet"],
        "units fit": ["units", "fit", run, folder / "take.wav", "--k", "4", "--out", units],
    })
    for name in ("folder", "file", "long", "long whole", "abx", "units fit"):
        assert results[name].returncode == 0, (name, results[name].stderr)
    assert results["file"].stdout == f"wrote 1 arrays (frames x dim, float32) to {tmp_path / 'from_file'}\n"
    one = np.load(tmp_path / "from_file" / "take.npy")
    assert one.shape == (100, 64) and np.allclose(one, np.load(tmp_path / "from_folder" / "take.npy"), atol=1e-5)
    streamed, whole = (np.load(tmp_path / name / "long_take.npy") for name in ("streamed", "whole"))
    assert streamed.shape == whole.shape == (250, 64) and np.allclose(streamed, whole, atol=1e-4)
    scores = json.loads(results["abx"].stdout.splitlines()[-1])
    assert set(scores) == {"within-within"} and 0 <= scores["within-within"] <= 100
    applied = cli.run("units", "apply", units, folder / "take.wav", tmp_path / "units.txt")
    assert applied.stdout == f"wrote 1 unit sequences (k=4) to {tmp_path / 'units.txt'}\n", applied.stderr
    assert (tmp_path / "units.txt").read_text().split()[0] == "take"
    recording(tmp_path / "deep" / "alice" / "a.wav", 0.2)
    deep = cli.run("shards", tmp_path / "deep", tmp_path / "never", "--speaker-level", "2")
    one_line(deep, "shards", f"{tmp_path / 'deep/alice/a.wav'} is 1 folder level(s) below {tmp_path / 'deep'}, so "
                             "--speaker-level 2 names no folder for its speaker: move it into a speaker folder, or "
                             "use a --speaker-level its path has")
    assert not (tmp_path / "never").exists()


def test_non_finite_samples_never_reach_training_and_a_silent_corpus_is_reported(tmp_path, cli):
    """Float WAV samples in shards (other tools write them) with NaN are skipped and counted; a corpus that is
    mostly digital silence says so before training at chance."""
    import webdataset as wds

    corpus = tmp_path / "corpus"
    recording(corpus / "speech.wav", 2.0)
    for i in range(6):
        float_recording(corpus / f"silent{i}.wav", np.zeros(32000))
    sharded = cli.run("shards", corpus, tmp_path / "shards")
    assert sharded.returncode == 0, sharded.stderr
    assert "  kept, but 6 of 7 recordings are digital silence (every sample 0): " in sharded.stdout
    poisoned = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    poisoned[5] = np.nan
    buffer = io.BytesIO()
    sf.write(buffer, poisoned, 16000, format="WAV", subtype="FLOAT")
    with wds.TarWriter(str(tmp_path / "shards" / "shard-000001.tar")) as writer:
        writer.write({"__key__": "poisoned", "wav": buffer.getvalue(), "json": b'{"speaker": ""}'})
    shards = tmp_path / "shards" / "shard-{000000..000001}.tar"
    trained = cpc("pretrain", RECIPE, *TINY, "--set", f"data.shards={shards}", "--set", "train.steps=4",
                  "--set", f"train.out={tmp_path / 'run'}")
    assert trained.returncode == 0, trained.stderr
    assert re.search(r"SilentCorpus: (\d+) of the first 64 training windows \(\d+%\) are digital silence \(every "
                     r"sample 0\), e\.g\. silent\d@\d+", trained.stderr), trained.stderr
    assert re.search(r"^skipped samples: \d+ non-finite samples \(NaN or Inf\) \(e\.g\. poisoned\)$", trained.stdout,
                     re.M), trained.stdout
    extracted = cli.run("extract", tmp_path / "run", shards, tmp_path / "features")
    assert extracted.stdout.endswith("skipped: 1 non-finite samples (NaN or Inf) (e.g. poisoned)\n"), extracted.stderr
    assert len(list((tmp_path / "features").glob("*.npy"))) == 7
