"""The learning benchmark: train a recipe for a fixed budget, score its features on a labelled dev split beside
log-mel and MFCC, append one JSON line to a results file; `table` prints results files as one Markdown table.

    python tools/bench_learning.py run recipes/demo/cpc_shipped.yaml --mode short \\
        --set data.shards=data/prompts/pretrain/train --set val_shards=data/prompts/pretrain/val
    python tools/bench_learning.py run RECIPE --set cpc.infonce.policy=same_sequence --steps 2000 --name same-seq
    python tools/bench_learning.py run RECIPE --random-init          # the architecture at init, no training
    python tools/bench_learning.py table runs/bench_learning.jsonl

Budget: `--steps N`, `--mode short` (MODE_STEPS: about 15 CPU-minutes of the shipped recipe in bf16 on one core)
or `long` (4x), or `--minutes M`: training stops cleanly (checkpoint, log row) once it has used M minutes of CPU
time, or at `train.steps`, whichever comes first; the learning-rate schedule is the recipe's either way.
The process pins itself to one thread (`--threads`), optionally to one core (`--cpu K`), and trains in bf16
(`--precision`); `--steps`, `--seed`, `--precision` and `--out` win over the same keys given with `--set`.

Evaluation protocol (PROTOCOL; every figure comes from the --eval split alone, default the English dev split of
datasets/recorded_prompts; a folder whose name ends in `test` is refused, so no test split is ever read):
- Utterances with frame labels are split by a hash of their key: PROBE_TRAIN_PERCENT % probe-train, the rest
  probe-test (fixed for ever, independent of which other utterances exist).
- Phone %: a linear probe on each frame with +-1 frame of context (what `cpc probe phones --context 1` trains:
  cpc.eval.probes.frame_probe, Adam 1e-3, batch 512, 20 epochs), the epoch chosen on every tenth probe-train
  utterance (in key order), frame accuracy on probe-test.
- ABX %: error within speaker and within context (`cpc abx`, cosine, the reference's seed and group sizes) over
  every labelled utterance of the split; items are the phone runs of the frame labels (silence, label 0, never a
  centre), what `cpc abx items ALIGNMENTS SPEAKERS OUT --unit phone` writes.
- Model features: each `--layers` name as `model.features(wav, layer)` computes it (fp32, whole utterances);
  log-mel (80) and MFCC (39) through cpc.eval.featurize. Their scores are computed once per eval split (its path,
  the checksum of its index.json) and protocol, kept in bench_learning_baselines.json beside the results file,
  and copied into every line.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

MODE_STEPS = {"short": 3000, "long": 12000}  # short: ~0.27-0.3 CPU-s per step of cpc_shipped.yaml, bf16, 1 core
PROBE_TRAIN_PERCENT = 60
PROBE = {"context": 1, "epochs": 20, "lr": 1e-3, "batch_size": 512, "seed": 0}
ABX = {"speaker_mode": "within", "context_mode": "within", "distance": "cosine", "max_size_group": 10,
       "seed": 3459}
PROTOCOL = {"version": 1, "probe_train_percent": PROBE_TRAIN_PERCENT, "probe": PROBE, "abx": ABX,
            "abx_items": "phone runs of the frame labels, silence 0"}
BASELINE_NAMES = {"logmel": "log-mel (80)", "mfcc": "MFCC (39)"}
CACHE_NAME = "bench_learning_baselines.json"
DEFAULT_RESULTS = "runs/bench_learning.jsonl"


class BenchError(Exception):
    """A mistake the user can fix; printed as one line."""


def say(message: str) -> None:
    print(f"bench_learning: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ evaluation
@dataclass
class EvalSet:
    """The labelled utterances of an eval split, their probe-train / probe-test parts and ABX items."""

    folder: Path
    index_sha256: str
    utterances: list
    probe_train: list
    probe_test: list
    items: object  # cpc.eval.abx.items.ItemTable
    classes: int
    sample_rate: int


def refuse_test_split(folder: str) -> None:
    """The benchmark never reads a test split: a folder whose name ends in `test` is refused."""
    names = {Path(folder).name, Path(folder).resolve().name}
    if any(name.endswith("test") for name in names):
        raise BenchError(f"--eval {folder}: refused, the benchmark never evaluates on a test split (the folder name "
                         "ends in 'test'); give the dev split, e.g. data/prompts/english/dev")


def in_probe_train(key: str) -> bool:
    """Whether an utterance trains the probe, from a hash of its key alone."""
    digest = int(hashlib.sha1(f"bench-learning-probe:{key}".encode()).hexdigest(), 16)
    return digest % 100 < PROBE_TRAIN_PERCENT


def load_eval_set(folder: str | Path) -> EvalSet:
    """Read an eval split (labelled shards with index.json) and build its probe parts and ABX items."""
    from cpc.data.labelled import load_utterances
    from cpc.data.labels import FRAME_SECONDS
    from cpc.eval.abx.items import read_items, write_items

    folder = Path(folder)
    index = folder / "index.json"
    if not index.is_file():
        raise BenchError(f"--eval {folder}: no index.json there; give a folder of labelled shards written by "
                         "`cpc shards --alignments` (e.g. data/prompts/english/dev)")
    utterances = [u for u in load_utterances(folder) if u.labels is not None]
    if not utterances:
        raise BenchError(f"--eval {folder}: no utterance has frame labels; write the shards with --alignments")
    train = [u for u in utterances if in_probe_train(u.key)]
    test = [u for u in utterances if not in_probe_train(u.key)]
    if not train or not test:
        raise BenchError(f"--eval {folder}: {len(utterances)} labelled utterance(s) are too few to split into "
                         "probe-train and probe-test")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "phone.item"
        write_items({u.key: u.labels.numpy() for u in utterances}, {u.key: u.speaker for u in utterances}, path,
                    "phone", frame_step=FRAME_SECONDS)
        items = read_items(path)
    items.source = f"phone runs of {folder}"
    classes = int(max(u.labels.max() for u in utterances)) + 1
    return EvalSet(folder, hashlib.sha256(index.read_bytes()).hexdigest(), utterances, train, test, items, classes,
                   utterances[0].sample_rate)


def score(featurizer, evalset: EvalSet, what: str) -> dict:
    """Phone % and ABX % of one featurizer on the eval split (the protocol in the module docstring)."""
    from cpc.progress import progress_bar

    from cpc.eval.abx.score import abx_errors
    from cpc.eval.probes import ProbeConfig, frame_probe

    bar = progress_bar(evalset.utterances, desc=f"features {what}", unit="utt", file=sys.stderr, dynamic_ncols=True)
    features = {u.key: featurizer(u.wav) for u in bar}
    computed = lambda part: [replace(u, wav=features[u.key]) for u in part]  # the probe reads them as is
    probe = frame_probe(computed(evalset.probe_train), computed(evalset.probe_test), lambda f: f, evalset.classes,
                        ProbeConfig(**PROBE))
    abx = abx_errors(features, evalset.items, featurizer.frame_seconds or 0.01, device="cpu", progress=True, **ABX)
    result = {"phone": round(100 * probe.accuracy, 2), "abx": round(abx[f"{ABX['speaker_mode']}-"
                                                                       f"{ABX['context_mode']}"], 2),
              "probe_epoch": probe.best_epoch}
    say(f"{what}: phone {result['phone']:.2f} %, ABX {result['abx']:.2f} %")
    return result


def cache_key(evalset: EvalSet) -> str:
    protocol = hashlib.sha256(json.dumps(PROTOCOL, sort_keys=True).encode()).hexdigest()[:16]
    return f"{evalset.folder.resolve()} index {evalset.index_sha256[:16]} protocol {protocol}"


def read_cache(cache: Path) -> dict:
    if not cache.is_file():
        return {}
    try:
        return json.loads(cache.read_text())
    except json.JSONDecodeError as error:
        raise BenchError(f"baseline cache {cache} does not read ({error.msg}); delete it to score log-mel and MFCC "
                         "again") from None


def baseline_scores(evalset: EvalSet, cache: Path) -> dict:
    """log-mel and MFCC scores of the eval split: from the cache when it holds this split and protocol, else
    computed and added to it."""
    from cpc.eval.featurize import featurizer

    key = cache_key(evalset)
    stored = read_cache(cache)
    if key in stored:
        say(f"log-mel and MFCC of {evalset.folder}: from the cache {cache}")
        return stored[key]["scores"]
    scores = {name: score(featurizer(name, sample_rate=evalset.sample_rate), evalset, label)
              for name, label in BASELINE_NAMES.items()}
    stored = read_cache(cache)  # another run may have added a split since
    stored[key] = {"eval": str(evalset.folder), "index_sha256": evalset.index_sha256, "protocol": PROTOCOL,
                   "scores": scores, "date": now()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(cache.name + f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(stored, indent=1))
    partial.replace(cache)
    return scores


def model_featurizer(model, layer: str):
    """The model's `layer`; `LAYER+BASELINE` (e.g. c+mfcc) concatenates a baseline frame by frame (does the model
    add what the baseline lacks?)."""
    from cpc.eval.featurize import Featurizer, concatenated, featurizer

    own, *extras = layer.split("+")
    features = Featurizer(lambda wav: model.features(wav, own).cpu(), model.config.sample_rate, model.hop)
    if not extras:
        return features
    return concatenated(layer, [features] + [featurizer(extra, sample_rate=model.config.sample_rate)
                                             for extra in extras])


def check_layers(model, layers: list[str]) -> None:
    """Every layer name must be one `model.features` accepts: checked on a second of silence before training."""
    import torch

    for layer in layers:
        try:
            with torch.no_grad():
                model_featurizer(model, layer)(torch.zeros(model.config.sample_rate))
        except ValueError as error:
            raise BenchError(f"--layers {layer}: {error}") from None


# ------------------------------------------------------------------------------------------------ training
class CpuBudget:
    """Ends training once this process has used `seconds` of CPU time since entering, through the trainer's own
    Ctrl-C stop (a checkpoint, a log row, then `Interrupted`): a watcher thread sends SIGINT, again every second
    while SIGINT is still this budget's own handler (one sent before the trainer's loop takes SIGINT over is
    ignored), and never again once the trainer's handler has had one (its second Ctrl-C means "stop at once")."""

    def __init__(self, seconds: float):
        self.seconds, self.fired, self.done = seconds, False, threading.Event()

    def __enter__(self) -> "CpuBudget":
        self.start = time.process_time()
        self.previous = signal.signal(signal.SIGINT, self.outside_the_loop)
        self.watcher = threading.Thread(target=self.watch, daemon=True)
        self.watcher.start()
        return self

    def outside_the_loop(self, signum, frame) -> None:
        if not self.fired:  # the user's own Ctrl-C
            raise KeyboardInterrupt

    def watch(self) -> None:
        trainer_has_it = False
        while not trainer_has_it and not self.done.wait(1.0 if self.fired else 0.2):
            if time.process_time() - self.start >= self.seconds:
                self.fired = True
                trainer_has_it = signal.getsignal(signal.SIGINT) != self.outside_the_loop
                os.kill(os.getpid(), signal.SIGINT)

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.watcher.join()
        signal.signal(signal.SIGINT, self.previous)


def train(config, minutes: float | None) -> None:
    """`cpc pretrain` of the config, stopped early by a CPU-minutes budget when one is given."""
    from cpc.errors import Interrupted
    from cpc.recipe import pretrain

    budget = CpuBudget(60 * minutes) if minutes else contextlib.nullcontext()
    try:
        with budget:
            pretrain(config)
    except Interrupted:
        if not getattr(budget, "fired", False):
            raise
        say(f"CPU budget of {minutes:g} min reached: training stopped")


def final_train_logs(log: Path, names=("infonce", "accuracy"), until: int | None = None) -> dict:
    """Mean of each training log value over the last tenth of the logged steps (at least the last row), of the
    steps up to `until` when given."""
    with open(log, newline="") as stream:
        rows = [r for r in csv.DictReader(stream) if r["split"] == "train" and r["name"] in names
                and (until is None or int(r["step"]) <= until)]
    if not rows:
        return {}
    last = max(int(r["step"]) for r in rows)
    recent = [r for r in rows if int(r["step"]) >= 0.9 * last]
    values = {name: [float(r["value"]) for r in recent if r["name"] == name] for name in names}
    return {name: round(sum(v) / len(v), 4) for name, v in values.items() if v}


# ------------------------------------------------------------------------------------------------ the run
def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """HEAD of the checkout, `+dirty` when tracked files changed."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def budget_of(args) -> dict:
    if args.random_init:
        return {"random_init": True}
    if args.checkpoint:
        return {"checkpoint": str(args.checkpoint)}
    if args.mode:
        return {"mode": args.mode, "steps": MODE_STEPS[args.mode]}
    return {"steps": args.steps} if args.steps else {"minutes": args.minutes}


def pretraining_paths(config) -> list[str]:
    """The local shard specs a run trains or validates on."""
    specs = [config.data.shards, config.val_shards]
    specs += [entry.rpartition("=")[0] or entry for entry in getattr(config.data, "mix", []) or []]
    return [s for s in specs if s]


def refuse_eval_data_in_training(config, eval_dir: Path) -> None:
    inside = eval_dir.resolve()
    for spec in pretraining_paths(config):
        path = Path(str(spec)).resolve()
        if path == inside or inside in path.parents:
            raise BenchError(f"the run trains or validates on {spec}, the eval split itself: pretrain on other "
                             "shards (--set data.shards=..., --set val_shards=...)")


class Stopwatch:
    """Wall and CPU seconds of a block: `with Stopwatch() as took: ...`, then `took.wall`, `took.cpu`."""

    def __enter__(self) -> "Stopwatch":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def pin(cpu: int | None, threads: int) -> None:
    """One core (when asked) and `threads` torch threads, set before torch starts its thread pools."""
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError as error:
            raise BenchError(f"--cpu {cpu}: {error.strerror or error}") from None
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)


def bench_config(args, out: Path):
    """The recipe with the user's --set, then the benchmark's own settings (run folder, seed, precision, steps)."""
    from cpc.recipe import data_kind, load_config

    settings = [f"train.out={out}", f"train.seed={args.seed}", f"train.precision={args.precision}"]
    steps = budget_of(args).get("steps")
    config = load_config(args.recipe, args.set + settings + ([f"train.steps={steps}"] if steps else []))
    if config.method != "cpc" or data_kind(config) != "audio":
        raise BenchError(f"{args.recipe}: the benchmark scores audio CPC models (method cpc, modality audio)")
    refuse_eval_data_in_training(config, Path(args.eval))
    return config


def initial_model(config):
    """The recipe's model at initialisation: the weights `cpc pretrain` starts from with the same train.seed."""
    from cpc import checkpoint
    from cpc.config import to_dict

    return checkpoint.build_model({"class": "CPCModel", "config": to_dict(config.cpc.model)},
                                  seed=config.train.seed).eval()


def run(args) -> dict:
    """Train (unless --random-init), evaluate, append the JSON line; returns it."""
    refuse_test_split(args.eval)
    pin(args.cpu, args.threads)
    from cpc import checkpoint

    results = Path(args.results)
    own_folder = args.out is None
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_learning-"))
    try:
        config = bench_config(args, out)
        model = initial_model(config)
        check_layers(model, args.layers)
        with Stopwatch() as for_baselines:
            evalset = load_eval_set(args.eval)
            baselines = baseline_scores(evalset, results.parent / CACHE_NAME)
        steps, logs = 0, {}
        with Stopwatch() as for_training:
            if args.checkpoint:  # a run trained elsewhere: its checkpoint, and its log up to that step
                trained = checkpoint.latest(args.checkpoint) if Path(args.checkpoint).is_dir() else Path(
                    args.checkpoint)
                model = checkpoint.load(trained)
                numbered = checkpoint.PATTERN.search(trained.name)  # step-N.pt; an exported file has no step
                steps = int(numbered.group(1)) if numbered else None
                log = trained.parent / "log.csv"
                logs = final_train_logs(log, until=steps) if log.exists() else {}
            elif not args.random_init:
                train(config, args.minutes)
                model = checkpoint.load(out)
                steps = int(checkpoint.PATTERN.search(checkpoint.latest(out).name).group(1))
                logs = final_train_logs(out / "log.csv")
        with Stopwatch() as for_eval:
            layers = {layer: score(model_featurizer(model, layer), evalset, f"{layer} of the model")
                      for layer in args.layers}
    finally:
        if own_folder and not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    line = {
        "name": args.name, "recipe": str(args.recipe), "overrides": args.set, "seed": args.seed,
        "budget": budget_of(args), "precision": args.precision, "steps": steps,
        "audio_seconds": None if steps is None else round(
            steps * config.optim.accumulate * config.data.batch_size * config.data.window / config.cpc.model.sample_rate,
            1),
        # a scored checkpoint was trained elsewhere: its training time is not this process's
        "train_wall_s": None if args.checkpoint else round(for_training.wall, 1),
        "train_cpu_s": None if args.checkpoint else round(for_training.cpu, 1),
        "eval_wall_s": round(for_eval.wall, 1), "eval_cpu_s": round(for_eval.cpu, 1),
        "train": logs, "layers": layers, "baselines": baselines,
        "eval": {"dir": str(evalset.folder.resolve()), "index_sha256": evalset.index_sha256,
                 "protocol": PROTOCOL["version"],
                 "probe_train": len(evalset.probe_train), "probe_test": len(evalset.probe_test),
                 "abx_items": len(evalset.items)},
        "threads": args.threads, "cpus": sorted(os.sched_getaffinity(0)), "date": now(), "commit": git_commit(),
        "run_dir": args.checkpoint or (str(out) if (args.keep or not own_folder) and not args.random_init else None),
    }
    say(f"training {for_training.wall:.1f} s wall / {for_training.cpu:.1f} s CPU; evaluation {for_eval.wall:.1f} s "
        f"wall / {for_eval.cpu:.1f} s CPU; reading the eval split, log-mel and MFCC {for_baselines.wall:.1f} s wall "
        f"/ {for_baselines.cpu:.1f} s CPU")
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a") as stream:
        stream.write(json.dumps(line) + "\n")
    return line


# ------------------------------------------------------------------------------------------------ the table
def read_results(paths: list[str]) -> list[dict]:
    lines = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise BenchError(f"results file {path}: {error.strerror or error}") from None
        for number, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError as error:
                    raise BenchError(f"{path} line {number}: not a JSON line ({error.msg})") from None
    return lines


def row_label(line: dict) -> str:
    """The run's name, else its overrides (`recipe as is` without any), marked `random init:` when untrained."""
    if line.get("name"):
        return line["name"]
    label = " ".join(line.get("overrides") or []) or "recipe as is"
    return f"random init: {label}" if line.get("budget", {}).get("random_init") else label


def cell(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(paths: list[str]) -> str:
    """One Markdown row per results line, then one per baseline per eval split; per layer, phone % and ABX %."""
    lines = read_results(paths)
    if not lines:
        raise BenchError(f"no result lines in {', '.join(paths)}")
    layers = list(dict.fromkeys(layer for line in lines for layer in line["layers"]))
    header = ["run", "recipe", "steps", "audio min", "train CPU min", "InfoNCE", "acc %"]
    header += [f"{layer} {what}" for layer in layers for what in ("phone %", "ABX %")]
    rows = []
    for line in lines:
        logs = line.get("train") or {}
        accuracy = logs.get("accuracy")
        audio = line["audio_seconds"]
        row = [row_label(line), Path(line["recipe"]).stem, str(line["steps"]), cell(audio and audio / 60, 1),
               cell(line["train_cpu_s"] and line["train_cpu_s"] / 60, 1), cell(logs.get("infonce"), 3),
               cell(None if accuracy is None else 100 * accuracy, 1)]
        row += [cell(line["layers"].get(layer, {}).get(what)) for layer in layers for what in ("phone", "abx")]
        rows.append(row)
    splits = {(line["eval"]["index_sha256"], line["eval"]["protocol"]): (line["eval"]["dir"], line["baselines"])
              for line in lines}
    for folder, baselines in splits.values():
        for name, scores in baselines.items():
            label = BASELINE_NAMES.get(name, name) + (f" ({folder})" if len(splits) > 1 else "")
            rows.append([label, "-", "-", "-", "-", "-", "-"]
                        + [cell(scores.get(what)) for _ in layers for what in ("phone", "abx")])
    escape = lambda text: text.replace("|", "\\|")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ command line
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_learning", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True)
    r = commands.add_parser("run", help="train a recipe for a budget, evaluate, append a JSON line",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("recipe", help="a pretraining recipe (YAML), e.g. recipes/demo/cpc_shipped.yaml")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe override, as cpc pretrain")
    budget = r.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="train this many steps")
    budget.add_argument("--minutes", type=float, help="train until this many CPU-minutes (or train.steps)")
    budget.add_argument("--mode", choices=sorted(MODE_STEPS), help=f"steps {MODE_STEPS}")
    budget.add_argument("--random-init", action="store_true", help="no training: the recipe's architecture at init")
    budget.add_argument("--checkpoint", help="no training: score this checkpoint (or a run folder's newest) of a run "
                        "of RECIPE with the same --set, e.g. one step of a long run")
    r.add_argument("--name", help="the row label in the table; without one, the overrides")
    r.add_argument("--seed", type=int, default=0, help="train.seed (initial weights, data order)")
    r.add_argument("--results", default=DEFAULT_RESULTS, help="the JSON-lines file the result is appended to")
    r.add_argument("--eval", default="data/prompts/english/dev",
                   help="labelled shards to score on (never a test split)")
    r.add_argument("--layers", nargs="+", default=["c", "z"],
                   help="model.features layers to score; LAYER+mfcc (or +logmel) adds that baseline's frames")
    r.add_argument("--out", help="the run folder, kept afterwards (without it: a temporary folder, deleted unless "
                   "--keep)")
    r.add_argument("--keep", action="store_true", help="keep the temporary run folder (checkpoints, log.csv)")
    r.add_argument("--precision", default="bf16", choices=["fp32", "bf16"], help="train.precision")
    r.add_argument("--threads", type=int, default=1, help="torch threads")
    r.add_argument("--cpu", type=int, help="pin the process to this CPU core")
    t = commands.add_parser("table", help="print results files as one Markdown table")
    t.add_argument("results", nargs="+", help="JSON-lines files written by `run`")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from cpc.errors import Interrupted, UserError

    try:
        if args.command == "table":
            print(table(args.results))
            return
        for what, value in (("--steps", args.steps), ("--minutes", args.minutes), ("--threads", args.threads)):
            if value is not None and not value > 0:
                raise BenchError(f"{what} {value}: it must be > 0")
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON line alone
            line = run(args)
        print(json.dumps(line), flush=True)
    except (BenchError, UserError, FileNotFoundError) as error:
        say(str(error))
        raise SystemExit(2) from None
    except (Interrupted, KeyboardInterrupt):
        say("interrupted (Ctrl-C): no result written")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
