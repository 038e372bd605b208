"""The Markdown report `cpc probe` writes beside its JSON: one table of every feature set's accuracy (test, dev,
chosen epoch), what each split held and what of it was scored, and the confusion images, so a run reads at a
glance in any Markdown viewer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ReportRow:
    spec: str  # the --features spec
    task: str  # phones, speakers, a clip target, ...
    accuracy: float
    dev_accuracy: float
    best_epoch: int
    coverage: list[str]  # cpc.eval.probes.describe lines, one per split
    confusion: str  # the confusion image's file name, beside the report


def probe_report(title: str, settings: dict, rows: list[ReportRow]) -> str:
    """The report's Markdown: the settings, the table, the coverage and the confusion images."""
    lines = [f"# {title}", "", "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()), "",
             "| features | task | test accuracy % | dev accuracy % | epoch |", "|---|---|---|---|---|"]
    lines += [f"| `{r.spec}` | {r.task} | {100 * r.accuracy:.1f} | {100 * r.dev_accuracy:.1f} | {r.best_epoch} |"
              for r in rows]
    lines += ["", "## Coverage", ""]
    lines += [f"- `{r.spec}`, {r.task}: " + "; ".join(r.coverage) for r in rows]
    lines += ["", "## Confusion matrices", ""]
    lines += [f"### `{r.spec}`, {r.task}\n\n![{r.task}: {r.spec}]({r.confusion})\n" for r in rows]
    return "\n".join(lines)


def write_probe_report(out: Path, title: str, settings: dict, rows: list[ReportRow]) -> Path:
    """Writes out/report.md; returns its path."""
    path = Path(out) / "report.md"
    path.write_text(probe_report(title, settings, rows))
    return path
