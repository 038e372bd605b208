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


def with_context(features: torch.Tensor, context: int) -> torch.Tensor:
    """(frames, dim) -> (frames, (2 context + 1) dim): each frame with its neighbours (earliest first), edges
    repeated."""
    if context == 0:
        return features
    padded = F.pad(features.T[None], (context, context), mode="replicate")  # (1, dim, frames + 2 context)
    windows = padded.unfold(2, 2 * context + 1, 1)[0]  # (dim, frames, 2 context + 1)
    return windows.permute(1, 2, 0).reshape(len(features), -1)


def frame_dataset(features: list[torch.Tensor], labels: list[torch.Tensor], context: int = 0,
                  problems: list[str] | None = None, keys: list[str] | None = None):
    """Utterances' (frames, dim) features and (frames,) labels -> stacked (N, dim'), (N,), dropping label -1.
    Feature and label counts must agree to within one frame (the longer is trimmed); an utterance off by more
    raises, or, when a `problems` list is given, is reported there and left out while the rest still count."""
    xs, ys = [], []
    for number, (x, y) in enumerate(zip(features, labels)):
        if abs(len(x) - len(y)) > 1:
            message = f"{keys[number] if keys else f'utterance {number}'}: {len(x)} feature frames but {len(y)} labels (tolerance 1)"
            if problems is None:
                raise ValueError(message)
            problems.append(message)
            continue
        n = min(len(x), len(y))
        x, y = with_context(x.float(), context)[:n], y[:n].long()
        keep = y >= 0
        xs.append(x[keep])
        ys.append(y[keep])
    if not xs:
        raise ValueError("no utterance with usable frame labels in this split" + (f": {problems[-3:]}" if problems else ""))
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
        raise ValueError("no utterance has frame labels: write the shards with --alignments")
    fit, dev = split_dev([u for u in train if u.labels is not None])
    sets = []
    for part in (fit, dev, [u for u in test if u.labels is not None]):
        sets.append(frame_dataset([features(u.inputs) for u in part], [u.labels for u in part], config.context,
                                  problems, [u.key for u in part]))
    result = train_probe(*sets, classes=classes, config=config)
    result.problems = problems
    return result



def class_probe(train: list, test: list, features, label, config: ProbeConfig = ProbeConfig()) -> ProbeResult:
    """Sequence classification from mean-pooled features; `label(item)` names each item's class (a speaker, a
    clip's digit); every test class must appear in train."""
    classes = sorted({label(u) for u in train})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({label(u) for u in test} - set(index), key=str)
    if unknown:
        raise ValueError(f"test classes absent from training: {unknown[:5]}")
    fit, dev = split_dev(train)
    sets = [(pooled([features(u.inputs) for u in part]), torch.tensor([index[label(u)] for u in part]))
            for part in (fit, dev, test)]
    return train_probe(*sets, classes=len(classes), config=config)


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


