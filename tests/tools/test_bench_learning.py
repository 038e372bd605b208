"""tools/bench_learning.py end to end at toy size: a CPU-minutes run and a random-init run scored on tiny labelled
shards, the baseline cache reused, the Markdown table, and the refusals a user meets."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from cpc.data.ingest import AudioItem
from cpc.data.labelled import load_utterances
from cpc.data.shards import write_splits

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "datasets" / "synthetic_speech" / "sample"
spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "tools" / "bench_learning.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)

TOY = ["--set", f"data.shards={SAMPLE / 'train'}", "--set", "val_shards=", "--set", "data.batch_size=2",
       "--set", "data.window=2560", "--set", "cpc.model.encoder.channels=16", "--set", "cpc.model.ar.dim=16",
       "--set", "train.progress=false", "--set", "train.log_every=1", "--set", "train.checkpoint_every=100000"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 labelled utterances of the sample's test split, written as a `dev` and a `test` split of their own."""
    folder = tmp_path_factory.mktemp("corpus")
    items, alignments = [], {}
    for u in list(load_utterances(SAMPLE / "test"))[:12]:
        path = folder / "wav" / f"{u.key}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, u.wav.numpy(), u.sample_rate)
        items.append(AudioItem(str(path), u.speaker, u.key))
        alignments[u.key] = u.labels.numpy()
    write_splits(items, folder, {"dev": set(alignments), "test": set(alignments)}, alignments, sample_rate=16000)
    return folder


def bench_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/bench_learning.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_a_test_split_is_refused_in_one_line(corpus, tmp_path):
    run = bench_run("run", "recipes/demo/cpc.yaml", "--steps", "1", "--eval", str(corpus / "test"),
                    "--results", str(tmp_path / "r.jsonl"))
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == (f"bench_learning: --eval {corpus / 'test'}: refused, the benchmark never evaluates on a "
                          "test split (the folder name ends in 'test'); give the dev split, e.g. "
                          "data/prompts/english/dev\n")
    assert not (tmp_path / "r.jsonl").exists()


def test_pretraining_on_the_eval_split_is_refused(corpus, tmp_path):
    run = bench_run("run", "recipes/demo/cpc.yaml", "--steps", "1", "--eval", str(corpus / "dev"),
                    "--results", str(tmp_path / "r.jsonl"), "--set", f"data.shards={corpus / 'dev'}")
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1] == (f"bench_learning: the run trains or validates on {corpus / 'dev'}, the "
                                           "eval split itself: pretrain on other shards (--set data.shards=..., "
                                           "--set val_shards=...)")


def test_a_budgeted_run_a_random_init_run_the_cache_and_the_table(corpus, tmp_path):
    results = tmp_path / "results" / "r.jsonl"
    core = min(os.sched_getaffinity(0))
    common = ["--eval", str(corpus / "dev"), "--results", str(results), "--cpu", str(core)]
    trained = bench_run("run", "recipes/demo/cpc.yaml", "--minutes", "0.03", "--name", "toy | 2 s", *common, *TOY,
                        "--set", "train.steps=100000")
    assert trained.returncode == 0, trained.stderr[-3000:]
    line = json.loads(trained.stdout)  # stdout holds the JSON line alone
    assert json.loads(results.read_text()) == line
    assert line["name"] == "toy | 2 s" and line["recipe"] == "recipes/demo/cpc.yaml" and line["seed"] == 0
    assert line["budget"] == {"minutes": 0.03} and line["precision"] == "bf16" and line["threads"] == 1
    assert line["cpus"] == [core] and line["overrides"] == TOY[1::2] + ["train.steps=100000"]
    # Stopped by the CPU budget, cleanly, long before train.steps; the step's audio is batch x window samples.
    assert 1 <= line["steps"] < 100000
    assert 1.8 <= line["train_cpu_s"] < 1.8 + 10
    assert line["audio_seconds"] == round(line["steps"] * 2 * 2560 / 16000, 1)
    assert set(line["train"]) == {"infonce", "accuracy"} and 0 <= line["train"]["accuracy"] <= 1
    assert set(line["layers"]) == {"c", "z"} and set(line["baselines"]) == {"logmel", "mfcc"}
    for scores in [*line["layers"].values(), *line["baselines"].values()]:
        assert 0 < scores["phone"] <= 100 and 0 <= scores["abx"] <= 100 and 1 <= scores["probe_epoch"] <= 20
    assert line["eval"]["probe_train"] + line["eval"]["probe_test"] == 12 and line["eval"]["abx_items"] > 100
    assert line["eval"]["probe_train"] == sum(bench.in_probe_train(u.key) for u in load_utterances(corpus / "dev"))
    assert line["run_dir"] is None and line["date"] and line["commit"]
    assert "training" in trained.stderr and "evaluation" in trained.stderr

    # The second run reads log-mel and MFCC from the cache: a value planted there comes back unchanged.
    cache = results.parent / "bench_learning_baselines.json"
    stored = json.loads(cache.read_text())
    assert len(stored) == 1
    entry = next(iter(stored.values()))
    assert entry["scores"] == line["baselines"]
    entry["scores"]["logmel"]["phone"] = 99.99
    cache.write_text(json.dumps(stored))
    initial = bench_run("run", "recipes/demo/cpc.yaml", "--random-init", "--layers", "c",
                        *common, *TOY)
    assert initial.returncode == 0, initial.stderr[-3000:]
    second = json.loads(initial.stdout)
    assert f"from the cache {cache}" in initial.stderr
    assert second["baselines"]["logmel"]["phone"] == 99.99 and second["baselines"]["mfcc"] == line["baselines"]["mfcc"]
    assert second["steps"] == 0 and second["train"] == {} and set(second["layers"]) == {"c"}

    shown = bench_run("table", str(results))
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout.splitlines()
    assert table[0] == ("| run | recipe | steps | audio min | train CPU min | InfoNCE | acc % | c phone % | c ABX % "
                        "| z phone % | z ABX % |")
    assert len(table) == 2 + 4  # header, rule, the two runs, log-mel, MFCC
    c = line["layers"]["c"]
    assert table[2].startswith(f"| toy \\| 2 s | cpc | {line['steps']} |")  # a name's | is escaped
    assert table[2].endswith(f"| {c['phone']:.2f} | {c['abx']:.2f} | {line['layers']['z']['phone']:.2f} | "
                             f"{line['layers']['z']['abx']:.2f} |")
    assert table[3].startswith(f"| random init: {' '.join(TOY[1::2])} | cpc | 0 |")  # no name: the overrides
    assert table[3].endswith("| - | - |")  # it has no z column
    assert table[4].startswith("| log-mel (80) |") and "| 99.99 |" in table[4]
    assert table[5].startswith("| MFCC (39) |")


def test_modes_are_fixed_step_budgets_and_long_is_four_times_short():
    args = bench.parser().parse_args(["run", "recipe.yaml", "--mode", "short"])
    assert bench.budget_of(args) == {"mode": "short", "steps": bench.MODE_STEPS["short"]}
    assert bench.MODE_STEPS["long"] == 4 * bench.MODE_STEPS["short"]


def test_final_train_logs_average_the_last_tenth_of_the_logged_steps(tmp_path):
    log = tmp_path / "log.csv"
    rows = [f"{step},train,infonce,{value}" for step, value in ((10, 5.0), (80, 3.0), (90, 2.0), (100, 1.0))]
    log.write_text("step,split,name,value\n" + "\n".join(rows + ["100,val,infonce,9", "100,train,accuracy,0.5"]))
    assert bench.final_train_logs(log) == {"infonce": 1.5, "accuracy": 0.5}


def test_the_random_init_model_is_the_one_training_starts_from():
    import torch

    from cpc.recipe import build_method, load_config

    config = load_config(ROOT / "recipes" / "demo" / "cpc_shipped.yaml", ["train.seed=3"])
    torch.manual_seed(config.train.seed)  # what `pretrain` does before building the method
    trained_from = build_method(config).model.state_dict()
    initial = bench.initial_model(config).state_dict()
    assert list(initial) == list(trained_from)
    assert all(torch.equal(initial[k], trained_from[k]) for k in initial)
    other_seed = bench.initial_model(load_config(ROOT / "recipes" / "demo" / "cpc_shipped.yaml", ["train.seed=4"]))
    first = next(iter(initial))
    assert not torch.equal(initial[first], other_seed.state_dict()[first])


def test_a_broken_baseline_cache_is_named_with_the_way_out(tmp_path):
    cache = tmp_path / "bench_learning_baselines.json"
    cache.write_text('{"cut')
    with pytest.raises(bench.BenchError) as raised:
        bench.read_cache(cache)
    assert str(raised.value) == (f"baseline cache {cache} does not read (Unterminated string starting at); delete it "
                                 "to score log-mel and MFCC again")


def test_a_trained_checkpoint_is_scored_without_training_and_a_baseline_can_be_appended(corpus, tmp_path):
    results = tmp_path / "r.jsonl"
    shipped = "recipes/demo/cpc_shipped.pt"
    run = bench_run("run", "recipes/demo/cpc_shipped.yaml", "--checkpoint", shipped, "--layers", "c", "c+mfcc",
                    "--eval", str(corpus / "dev"), "--results", str(results), "--name", "shipped")
    assert run.returncode == 0, run.stderr[-3000:]
    line = json.loads(run.stdout)
    assert line["budget"] == {"checkpoint": shipped} and line["steps"] is None and line["run_dir"] == shipped
    assert line["train_cpu_s"] is None and line["train_wall_s"] is None
    assert set(line["layers"]) == {"c", "c+mfcc"}
    evalset = bench.load_eval_set(corpus / "dev")
    import cpc

    model = cpc.load(shipped)
    assert line["layers"]["c"] == bench.score(bench.model_featurizer(model, "c"), evalset, "c")
    joined = bench.model_featurizer(model, "c+mfcc")(evalset.utterances[0].wav)
    assert joined.shape[1] == 256 + 39
    assert bench_run("table", str(results)).stdout.splitlines()[2].startswith("| shipped | cpc_shipped | None | - | - |")
