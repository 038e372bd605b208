"""Evaluation figures as PNG files."""

from __future__ import annotations

import numpy as np


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
