"""A `cpc probe` run and the folder it fills: the probes of one kind (phones, speakers, or video clips' targets and
frame labels) trained on the same split for each feature spec, and in the output folder `<kind>.json` (settings and
every result with its coverage), one `confusion_<task>_<features>.png` per result and `report.md`
(cpc.eval.report). Nothing is written before the first probe has a result, so a refused run leaves no folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from cpc.eval.probes import (ProbeConfig, ProbeError, ProbeResult, class_probe, coverage, describe, frame_probe,
                             require_items)
from cpc.eval.report import ReportRow, write_probe_report

KINDS = ("phones", "speakers", "clips")


def probe_tasks(kind: str, train: list, test: list, classes: int, config: ProbeConfig,
                targets: Sequence[str] = ()) -> dict[str, Callable]:
    """The probes of a kind, task name -> probe(featurizer) -> ProbeResult; clips: each target (default all) from
    pooled features, and the clips' frame labels when they have some."""
    if kind not in KINDS:
        raise ProbeError(f"probe kind {kind!r}: choose one of {', '.join(KINDS)}")
    if kind == "phones":
        return {"phones": lambda f: frame_probe(train, test, f, classes, config)}
    if kind == "speakers":
        return {"speakers": lambda f: class_probe(train, test, f, lambda u: u.speaker, config)}
    tasks = {name: (lambda f, name=name: class_probe(train, test, f, lambda c: c.targets[name], config))
             for name in (targets or sorted(train[0].targets))}
    if train[0].labels is not None:
        tasks["frame labels"] = lambda f: frame_probe(train, test, f, classes, config)
    return tasks


def _featurizer(spec: str, layer: str, train: list, device: str):
    from cpc.checkpoint import CheckpointError
    from cpc.errors import UserError
    from cpc.eval.featurize import featurizer

    rate = getattr(train[0], "sample_rate", None)
    try:  # int8 scales come from the first training utterances (int8_model reads a minute at most), never test
        return featurizer(spec, layer, [u.inputs for u in train], sample_rate=rate, device=device)
    except (ValueError, RuntimeError, CheckpointError) as error:
        raise UserError(f"{error} (--features {spec})") from None


def run_probes(kind: str, train_spec: str, test_spec: str, specs: Sequence[str], layer: str, config: ProbeConfig,
               out: str | os.PathLike, classes: int = 40, targets: Sequence[str] = (), phones: str | None = None,
               device: str = "auto", say: Callable[[str], None] = print) -> tuple[Path, Path]:
    """Every probe of `kind` on each feature spec, trained on the shards `train_spec`, scored on `test_spec`; `say`
    gets each result's lines as it comes. Returns the paths of the JSON results and of report.md."""
    from cpc.data.labelled import load_clips, load_utterances
    from cpc.data.labels import label_names_beside, read_label_names
    from cpc.eval.featurize import feature_name
    from cpc.eval.plots import plot_confusion

    load = load_clips if kind == "clips" else load_utterances
    train, test = load(train_spec), load(test_spec)
    require_items(train, f"--train {train_spec}")
    require_items(test, f"--test {test_spec}")
    noun = "clips" if kind == "clips" else "utterances"
    out = Path(out)
    tasks = probe_tasks(kind, train, test, classes, config, targets)
    names = read_label_names(phones) if phones else label_names_beside(train_spec)
    results, report = {}, []
    for spec in specs:
        features = _featurizer(spec, layer, train, device)
        for task, probe in tasks.items():
            result: ProbeResult = probe(features)
            out.mkdir(parents=True, exist_ok=True)  # once there is something to write: a refused probe leaves none
            image = f"confusion_{task.replace(' ', '_')}_{feature_name(spec)}.png"
            plot_confusion(result.confusion, out / image, f"{task}: {spec}",
                           names if task in ("phones", "frame labels") else None)
            covered = {split: coverage(items, result.scored[split], result.left_out[split])
                       for split, items in (("test", test), ("train", train))}
            results.setdefault(spec, {})[task] = {
                "accuracy": result.accuracy, "dev_accuracy": result.dev_accuracy, "best_epoch": result.best_epoch,
                "per_class": result.per_class, "left_out": result.problems, "coverage": covered}
            lines = [describe(covers, split, noun) for split, covers in covered.items()]
            say(f"{spec:<40} {task:<12} test accuracy {result.accuracy:.3f}  (dev {result.dev_accuracy:.3f}, "
                f"epoch {result.best_epoch})")
            say("\n".join(f"  {line}" for line in lines))
            report.append(ReportRow(spec, task, result.accuracy, result.dev_accuracy, result.best_epoch, lines, image))
    if kind != "clips":  # one task: keep the flat {spec: result} layout
        results = {spec: tasks_done[kind] for spec, tasks_done in results.items()}
    written = out / f"{kind}.json"
    written.write_text(json.dumps({"config": vars(config), "results": results}, indent=1))
    settings = {"train": train_spec, "test": test_spec, "layer": layer, **vars(config)}
    return written, write_probe_report(out, f"cpc probe {kind}", settings, report)
