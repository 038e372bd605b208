"""Probes on frozen frame features: linear (or one-hidden-layer) frame classification, e.g. phones or the motion
direction in each video frame, and sequence classification on mean-pooled features (speakers, a clip's digit); the epoch is chosen on a dev set, the test set is scored once.

Baseline features go through the very same probe: MFCC (13 + deltas + delta-deltas) and log-mel, both on the
10 ms frame grid of the CPC encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cpc.models.encoders import LogMelFrames


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
    """(frames, dim) -> (frames, (2 context + 1) dim): each frame with its neighbours, edges repeated."""
    if context == 0:
        return features
    padded = torch.cat([features[:1].expand(context, -1), features, features[-1:].expand(context, -1)])
    return torch.cat([padded[i : i + len(features)] for i in range(2 * context + 1)], dim=1)


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


class MfccFrames(nn.Module):
    """13 MFCCs + deltas + delta-deltas (39 dims) on the CPC 10 ms frame grid: (batch, samples) -> (batch, frames, 39)."""

    def __init__(self, sample_rate: int = 16000, hop: int = 160, window: int = 400):
        super().__init__()
        import torchaudio

        self.logmel = LogMelFrames(sample_rate, n_mels=40, hop=hop, window=window)
        self.dct = torchaudio.functional.create_dct(13, 40, norm="ortho")
        self.dim = 39

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        import torchaudio

        cepstra = self.logmel(wav) @ self.dct  # (batch, frames, 13)
        delta = torchaudio.functional.compute_deltas(cepstra.transpose(1, 2))
        delta2 = torchaudio.functional.compute_deltas(delta)
        return torch.cat([cepstra, delta.transpose(1, 2), delta2.transpose(1, 2)], dim=2)


def baseline_features(wav: torch.Tensor, kind: str) -> torch.Tensor:
    """(samples,) -> (samples // 160, dim) MFCC or log-mel frames."""
    extractor = {"mfcc": MfccFrames, "logmel": LogMelFrames}.get(kind)
    if extractor is None:
        raise ValueError(f"unknown baseline features {kind!r}; choose 'mfcc' or 'logmel'")
    with torch.no_grad():
        return extractor()(torch.as_tensor(wav, dtype=torch.float32)[None])[0]


def pooled(features: list[torch.Tensor]) -> torch.Tensor:
    """Utterance vectors for speaker probes: the mean of each utterance's frames, (utterances, dim)."""
    return torch.stack([f.float().mean(0) for f in features])


@dataclass
class Utterance:
    key: str
    wav: torch.Tensor  # (samples,)
    labels: torch.Tensor | None  # (frames,) or None
    speaker: str

    @property
    def inputs(self) -> torch.Tensor:
        """What a featurizer reads."""
        return self.wav


@dataclass
class Clip:
    key: str
    frames: torch.Tensor  # (T, H, W, C) uint8
    labels: torch.Tensor | None  # (T,) per-frame ids (e.g. motion direction) or None
    targets: dict[str, int]  # clip-level class ids, e.g. {"digit": 3}

    @property
    def inputs(self) -> torch.Tensor:
        return self.frames


def load_utterances(shards) -> list[Utterance]:
    """Every utterance of a shard set once, in shard order, with its frame labels and speaker."""
    from cpc.data.audio import AudioDataConfig, audio_stream

    utterances = []
    for batch in audio_stream(AudioDataConfig(shards=shards, batch_size=1), train=False, windows=False):
        labels = batch["labels"][0] if "labels" in batch else None
        utterances.append(Utterance(batch["key"][0], batch["wav"][0], labels, batch["speaker_name"][0]))
    return utterances


def load_clips(shards) -> list[Clip]:
    """Every video clip of a shard set once, whole, with its per-frame labels and clip targets."""
    from cpc.data.video import VideoDataConfig, video_stream

    clips = []
    for batch in video_stream(VideoDataConfig(shards=shards, batch_size=1), train=False, windows=False):
        labels = batch["labels"][0] if "labels" in batch else None
        targets = {name: int(ids[0]) for name, ids in batch.get("targets", {}).items()}
        clips.append(Clip(batch["key"][0], batch["frames"][0], labels, targets))
    return clips


def featurizer(spec: str, layer: str = "c", calibration: Sequence = ()):
    """'mfcc', 'logmel', a checkpoint path, 'random:PRESET' / 'random:CHECKPOINT' (that architecture, untrained),
    or 'int8:CHECKPOINT' (its encoder in int8, scales calibrated on the `calibration` waveforms) -> a function
    wav -> features."""
    if spec in ("mfcc", "logmel"):
        return lambda wav: baseline_features(wav, spec)
    from cpc.train.pretrain import load_model

    if spec.startswith("random:"):
        source = spec.split(":", 1)[1]
        if Path(source).exists():
            model = load_model(source, weights=False)
        else:
            from cpc.methods.cpc import cpc_preset
            from cpc.models.cpc import CPCModel

            torch.manual_seed(0)
            model = CPCModel(cpc_preset(source).model).eval()
    elif spec.startswith("int8:"):
        from cpc.models.int8 import int8_model

        model = int8_model(load_model(spec.split(":", 1)[1]), list(calibration))
    else:
        model = load_model(spec)
    return lambda wav: model.features(wav, layer)


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


phone_probe = frame_probe


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


def speaker_probe(train: list[Utterance], test: list[Utterance], features,
                  config: ProbeConfig = ProbeConfig()) -> ProbeResult:
    """Speaker id from mean-pooled features; test speakers must appear in train."""
    return class_probe(train, test, features, lambda u: u.speaker, config)


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


def load_images(shards, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of a shard set once, un-augmented (RGB, `size`, normalised as training views) -> (N, 3, size,
    size), (N,) class ids."""
    from cpc.data.images import ImageDataConfig, evaluation_transform, image_stream

    transform = evaluation_transform(size)
    images, labels = [], []
    stream = image_stream(ImageDataConfig(shards=shards, batch_size=256), lambda image: [transform(image)],
                          train=False)
    for batch in stream:
        images.append(batch["views"][:, 0])
        labels.append(batch["targets"]["class"])
    return torch.cat(images), torch.cat(labels)


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


def plot_confusion(confusion: np.ndarray, png, title: str) -> None:
    """Row-normalised confusion matrix (true rows, predicted columns) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(6, 5))
    image = axis.imshow(rates, cmap="viridis", vmin=0, vmax=1)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.colorbar(image)
    figure.tight_layout()
    figure.savefig(png, dpi=90)
    plt.close(figure)
