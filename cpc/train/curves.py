"""Training curves from the trainer's long-form CSV log, as one PNG."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path


def plot_curves(log: str | Path, png: str | Path, names: tuple[str, ...] = ("loss", "accuracy", "lr")) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    with open(log, newline="") as stream:
        for row in csv.DictReader(stream):
            series[(row["name"], row["split"])].append((int(row["step"]), float(row["value"])))
    shown = [n for n in names if any(name == n for name, _ in series)]
    figure, axes = plt.subplots(1, max(1, len(shown)), figsize=(4.5 * max(1, len(shown)), 3.2), squeeze=False)
    for axis, name in zip(axes[0], shown):
        for split in ("train", "val"):
            points = series.get((name, split))
            if points:
                axis.plot(*zip(*points), label=split, marker="o" if split == "val" else None, markersize=3)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.legend()
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return Path(png)
