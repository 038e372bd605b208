"""Probes on frozen features: linear (or one-hidden-layer) frame classification, e.g. phones or the motion
direction in each video frame; sequence classification on mean-pooled features (speakers, a clip's digit); kNN and
linear probes of image backbones. The epoch is chosen on a dev set, the test set is scored once. A `features`
argument is any callable inputs -> (frames, dim) (see cpc.eval.featurize)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cpc.data.stages import SkipCounter
from cpc.errors import UserError


class ProbeError(UserError, ValueError):
    """Probe data that cannot be scored as asked: no labels, no utterances, test classes unseen in training."""


@dataclass
class ProbeConfig:
    hidden: int = 0  # 0: linear probe; > 0: one hidden layer of that width
    context: int = 0  # frames of context each side, stacked into one input vector
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 512
    weight_decay: float = 0.0
    seed: int = 0


@dataclass
class ProbeResult:
    accuracy: float  # on the test set, with the probe of the best dev epoch
    dev_accuracy: float
    best_epoch: int
    per_class: dict[int, float] = field(default_factory=dict)  # test accuracy per class present in the test set
    confusion: np.ndarray | None = None  # (classes, classes) counts: rows true, columns predicted
    problems: list[str] = field(default_factory=list)  # utterances left out, and why
    scored: dict[str, int] = field(default_factory=dict)  # {"train": items the probe learnt from, "test": scored}
    left_out: dict[str, SkipCounter] = field(default_factory=dict)  # per split: items the probe left out, by reason


def with_context(features: torch.Tensor, context: int) -> torch.Tensor:
    """(frames, dim) -> (frames, (2 context + 1) dim): each frame with its neighbours (earliest first), edges
    repeated."""
    if context == 0:
        return features
    padded = F.pad(features.T[None], (context, context), mode="replicate")  # (1, dim, frames + 2 context)
    windows = padded.unfold(2, 2 * context + 1, 1)[0]  # (dim, frames, 2 context + 1)
    return windows.permute(1, 2, 0).reshape(len(features), -1)


def frame_dataset(features: list[torch.Tensor], labels: list[torch.Tensor], context: int = 0,
                  problems: list[str] | None = None, keys: list[str] | None = None, skips: SkipCounter | None = None):
    """Utterances' (frames, dim) features and (frames,) labels -> stacked (N, dim'), (N,), dropping label -1.
    Feature and label counts must agree to within one frame (the longer is trimmed); an utterance off by more
    raises, or, when a `problems` list is given, is reported there (and counted in `skips`) and left out while
    the rest still count."""
    xs, ys = [], []
    for number, (x, y) in enumerate(zip(features, labels)):
        if abs(len(x) - len(y)) > 1:
            key = keys[number] if keys else f"utterance {number}"
            message = f"{key}: {len(x)} feature frames but {len(y)} labels (tolerance 1)"
            if problems is None:
                raise ValueError(message)
            problems.append(message)
            if skips is not None:
                skips.skip("feature and label frame counts differ by more than 1", key)
            continue
        n = min(len(x), len(y))
        x, y = with_context(x.float(), context)[:n], y[:n].long()
        keep = y >= 0
        xs.append(x[keep])
        ys.append(y[keep])
    if not xs:
        shown = f" ({'; '.join(problems[-3:])})" if problems else ""
        raise ProbeError(f"no utterance with usable frame labels in this split{shown}: check that the alignments "
                         "match the audio (one label per 10 ms frame)")
    return torch.cat(xs), torch.cat(ys)


def train_probe(train, dev, test, classes: int, config: ProbeConfig = ProbeConfig()) -> ProbeResult:
    """Each of train/dev/test is (features (N, dim), labels (N,)). Features are standardised with training
    statistics; the probe of the epoch with the best dev accuracy is scored once on test."""
    torch.manual_seed(config.seed)
    mean, std = train[0].mean(0), train[0].std(0) + 1e-5
    norm = lambda x: (x - mean) / std
    dim = train[0].shape[1]
    probe = (nn.Linear(dim, classes) if config.hidden == 0 else
             nn.Sequential(nn.Linear(dim, config.hidden), nn.ReLU(), nn.Linear(config.hidden, classes)))
    optimiser = torch.optim.Adam(probe.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x, y = norm(train[0]), train[1]
    best = (-1.0, 0, None)
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(len(x))
        for start in range(0, len(x), config.batch_size):
            rows = order[start : start + config.batch_size]
            loss = F.cross_entropy(probe(x[rows]), y[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        dev_accuracy = accuracy(probe, norm(dev[0]), dev[1])
        if dev_accuracy > best[0]:
            best = (dev_accuracy, epoch, {k: v.clone() for k, v in probe.state_dict().items()})
    probe.load_state_dict(best[2])
    with torch.no_grad():
        predicted = probe(norm(test[0])).argmax(1)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (test[1].numpy(), predicted.numpy()), 1)
    per_class = {c: float(confusion[c, c] / confusion[c].sum()) for c in range(classes) if confusion[c].sum()}
    return ProbeResult(float((predicted == test[1]).float().mean()), best[0], best[1], per_class, confusion)


@torch.no_grad()
def accuracy(probe: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((probe(x).argmax(1) == y).float().mean()) if len(y) else 0.0


def pooled(features: list[torch.Tensor]) -> torch.Tensor:
    """Utterance vectors for speaker probes: the mean of each utterance's frames, (utterances, dim)."""
    return torch.stack([f.float().mean(0) for f in features])


def split_dev(utterances: list, fraction: float = 0.1) -> tuple[list, list]:
    """(train, dev): every 1/fraction-th utterance in key order goes to dev, so dev is fixed and spans speakers."""
    ordered = sorted(utterances, key=lambda u: u.key)
    step = max(2, round(1 / fraction))
    return [u for i, u in enumerate(ordered) if i % step], [u for i, u in enumerate(ordered) if i % step == 0]


def frame_probe(train: list, test: list, features, classes: int, config: ProbeConfig = ProbeConfig()) -> ProbeResult:
    """Frame classification (phones of utterances, motion direction of clips): epoch chosen on a dev part of
    `train`, scored once on `test`. Items without frame labels are left out and reported."""
    problems = [f"{u.key}: no frame labels (no alignment)" for u in train + test if u.labels is None]
    if len(problems) == len(train + test):
        raise ProbeError("no utterance has frame labels (the probe's shards): write the shards with --alignments")
    left_out = {"train": SkipCounter(), "test": SkipCounter()}
    for split, items in (("train", train), ("test", test)):
        for u in items:
            if u.labels is None:
                left_out[split].skip("no frame labels (no alignment)", u.key)
    fit, dev = split_dev([u for u in train if u.labels is not None])
    sets = []
    for part, split in ((fit, "train"), (dev, "train"), ([u for u in test if u.labels is not None], "test")):
        sets.append(frame_dataset([features(u.inputs) for u in part], [u.labels for u in part], config.context,
                                  problems, [u.key for u in part], left_out[split]))
    result = train_probe(*sets, classes=classes, config=config)
    result.problems, result.left_out = problems, left_out
    result.scored = {split: len(items) - sum(left_out[split].counts.values())
                     for split, items in (("train", train), ("test", test))}
    return result



def class_probe(train: list, test: list, features, label, config: ProbeConfig = ProbeConfig()) -> ProbeResult:
    """Sequence classification from mean-pooled features; `label(item)` names each item's class (a speaker, a
    clip's digit); every test class must appear in train."""
    classes = sorted({label(u) for u in train})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({label(u) for u in test} - set(index), key=str)
    if unknown:
        raise ProbeError(f"test classes absent from training: {unknown[:5]} (--test): probe on a test set whose "
                         "classes all appear in --train")
    fit, dev = split_dev(train)
    sets = [(pooled([features(u.inputs) for u in part]), torch.tensor([index[label(u)] for u in part]))
            for part in (fit, dev, test)]
    result = train_probe(*sets, classes=len(classes), config=config)
    result.scored = {"train": len(train), "test": len(test)}
    result.left_out = {"train": SkipCounter(), "test": SkipCounter()}
    return result


def require_items(items, where: str) -> None:
    """ProbeError unless a split read at least one item; the message carries what was skipped and why."""
    if not items:
        skipped = items.skips.report() if hasattr(items, "skips") else "no samples skipped"
        raise ProbeError(f"no utterances or clips read ({where}; {skipped}): give shards that hold readable, "
                         "labelled recordings, written by `cpc shards`")


SHARD_LEVEL = "unreadable shard data"  # reasons starting so count read errors, not samples


def coverage(items, scored: int, left_out: SkipCounter | None = None) -> dict:
    """What a split held and what of it was scored: {"total", "scored", "left_out": {reason: {"count",
    "examples"}}}. `items` is a cpc.data.labelled.Labelled (its read skips and the index's sample count); the
    total is the index's count when known, and samples it lists that were never read (a truncated or corrupt
    tar) are counted as such."""
    reasons: dict[str, dict] = {}
    for counter in (items.skips, left_out or SkipCounter()):
        for reason, count in counter.counts.items():
            if not reason.startswith(SHARD_LEVEL):
                reasons[reason] = {"count": count, "examples": list(counter.examples[reason])}
    read_skips = sum(c for r, c in items.skips.counts.items() if not r.startswith(SHARD_LEVEL))
    total = items.expected if items.expected is not None else len(items) + read_skips
    lost = total - len(items) - read_skips
    if lost > 0:
        errors = [r for r in items.skips.counts if r.startswith(SHARD_LEVEL)]
        shards = [e for r in errors for e in items.skips.examples[r] if "<" not in e]  # the shard URLs
        reasons[f"in the index but never read ({', '.join(errors) or 'shards hold fewer samples'})"] = {
            "count": lost, "examples": list(dict.fromkeys(shards))[:3]}
    return {"total": total, "scored": scored, "left_out": reasons}


def describe(coverage: dict, split: str, noun: str = "utterances") -> str:
    """One line: `test: scored 75 of 88 utterances; left out 13: 12 <reason> (e.g. ...); 1 <reason> (...)`."""
    total, scored = coverage["total"], coverage["scored"]
    if scored == total:
        return f"{split}: scored all {total} {noun}"
    reasons = "; ".join(f"{r['count']} {reason} (e.g. {', '.join(map(str, r['examples'][:3]))})"
                        for reason, r in sorted(coverage["left_out"].items(), key=lambda kv: -kv[1]["count"]))
    return f"{split}: scored {scored} of {total} {noun}; left out {total - scored}: {reasons}"


def knn_accuracy(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], k: int = 200,
                 temperature: float = 0.1, chunk: int = 1024) -> float:
    """Weighted k-nearest-neighbour classification on cosine similarity (Wu et al. 2018, as the SSL literature
    reports it): each of the k nearest training features votes for its class with weight exp(similarity / T)."""
    bank, bank_labels = F.normalize(train[0].float(), dim=1), train[1].long()
    classes = int(bank_labels.max()) + 1
    k = min(k, len(bank))
    correct = 0
    for start in range(0, len(test[0]), chunk):  # bounded memory for large test sets
        queries = F.normalize(test[0][start : start + chunk].float(), dim=1)
        similarity, index = (queries @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(queries), classes).scatter_add_(1, bank_labels[index], (similarity / temperature).exp())
        correct += int((votes.argmax(1) == test[1][start : start + chunk]).sum())
    return correct / len(test[0])


@torch.no_grad()
def image_features(backbone: nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    backbone.eval()
    return torch.cat([backbone(images[i : i + batch]) for i in range(0, len(images), batch)])


def image_probes(backbone: nn.Module, train, test, config: ProbeConfig = ProbeConfig()) -> dict[str, float]:
    """kNN (k 200, T 0.1) and a linear probe (epoch chosen on a tenth of train) on frozen backbone features;
    train and test are (images, labels). Returns test accuracies {"knn", "linear"}."""
    train_x, test_x = image_features(backbone, train[0]), image_features(backbone, test[0])
    dev = torch.arange(len(train_x)) % 10 == 0
    linear = train_probe((train_x[~dev], train[1][~dev]), (train_x[dev], train[1][dev]), (test_x, test[1]),
                         classes=int(train[1].max()) + 1, config=config)
    return {"knn": knn_accuracy((train_x, train[1]), (test_x, test[1])), "linear": linear.accuracy}


