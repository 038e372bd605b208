"""A run's log: out/log.csv in long form (step, split, name, value), TensorBoard events when tensorboard is
installed, and curves.png at the end. Resuming from step n keeps the rows up to n, so every (step, split, name)
appears once even when steps after n are redone."""

from __future__ import annotations

import csv
from pathlib import Path

from cpc.train.curves import plot_curves

HEADER = ["step", "split", "name", "value"]


class RunLog:
    def __init__(self, out: Path, resumed_step: int | None):
        out.mkdir(parents=True, exist_ok=True)
        self.path, self.png = out / "log.csv", out / "curves.png"
        kept = []
        if resumed_step is not None and self.path.exists():
            with open(self.path, newline="", errors="replace") as stream:
                kept = [row for row in csv.DictReader(stream) if complete(row) and int(row["step"]) <= resumed_step]
        self.stream = open(self.path, "w", newline="")
        self.writer = csv.writer(self.stream)
        self.writer.writerow(HEADER)
        self.writer.writerows([row[k] for k in HEADER] for row in kept)
        self.stream.flush()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(out / "tensorboard", purge_step=resumed_step)
        except ImportError:
            self.tensorboard = None

    @staticmethod
    def has_rows(out: Path) -> bool:
        """Whether out/log.csv logged anything (a run that failed before its first step leaves a header only)."""
        path = out / "log.csv"
        if not path.exists():
            return False
        with open(path, errors="replace") as stream:
            return len(stream.readlines()[:2]) > 1

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.writerow([step, split, name, f"{value:.6g}"])
            if self.tensorboard is not None:
                self.tensorboard.add_scalar(f"{split}/{name}", value, step)
        self.stream.flush()

    def close(self, plot: bool = True) -> None:
        if self.stream.closed:  # closed already (a run that stopped, then failed on its way out)
            return
        self.stream.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if plot:
            plot_curves(self.path, self.png)


def complete(row: dict[str, str | None]) -> bool:
    """A whole row: a process killed mid-write leaves a cut (or zero-filled) last line."""
    return row.get("value") is not None and (row.get("step") or "").isdigit() and "\x00" not in row["value"]
