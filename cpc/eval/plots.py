"""Evaluation figures as PNG files."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def frequency_order(confusion: np.ndarray) -> np.ndarray:
    """The classes of a confusion matrix (rows true) that occur or are predicted, most frequent true class first
    (ties in id order)."""
    true, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = np.flatnonzero((true > 0) | (predicted > 0))
    return present[np.argsort(-true[present], kind="stable")]


def plot_confusion(confusion: np.ndarray, png, title: str, names: Sequence[str] | None = None) -> list[str]:
    """Row-normalised confusion matrix (true rows, predicted columns) as a PNG, classes ordered by frequency and
    labelled with `names` (by class id; ids where none is given); returns the labels in the order shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = frequency_order(confusion)
    shown = confusion[np.ix_(order, order)]
    labels = [names[c] if names is not None and c < len(names) else str(c) for c in order]
    rates = shown / np.maximum(shown.sum(axis=1, keepdims=True), 1)
    size = max(6.0, 0.18 * len(order) + 2)
    figure, axis = plt.subplots(figsize=(size, size * 0.85))
    image = axis.imshow(rates, cmap="viridis", vmin=0, vmax=1)
    ticks = np.arange(len(order))
    font = 8 if len(order) <= 40 else 6
    axis.set_xticks(ticks, labels, rotation=90, fontsize=font)
    axis.set_yticks(ticks, labels, fontsize=font)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true (most frequent first)")
    axis.set_title(title)
    figure.colorbar(image)
    figure.tight_layout()
    figure.savefig(png, dpi=90)
    plt.close(figure)
    return labels
