"""Progress bars: every long job's bar comes from `progress_bar`, tqdm with a total. On a terminal it redraws one line
in place; on anything else (CI logs, `| tee`, a file) it prints a plain line at most every few seconds instead
of a carriage return per update, so a log stays readable."""

from __future__ import annotations

import sys

LOG_SECONDS = 5.0  # off a terminal: at most one line per this many seconds (plus the last one)


class LineWriter:
    """A file for tqdm that writes each in-place update ('\\r' + status) as one line of its own."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, *args, **options):
    """`tqdm(iterable, *args, **options)`; where its stream (stderr unless `file`) is not a terminal, a line every
    LOG_SECONDS instead of carriage returns. `disable=True` shows nothing, as in tqdm."""
    from tqdm import tqdm

    stream = options.pop("file", None) or sys.stderr
    if not getattr(stream, "isatty", lambda: False)():
        stream = LineWriter(stream)
        options.setdefault("mininterval", LOG_SECONDS)
        options["dynamic_ncols"] = False
    return tqdm(iterable, *args, file=stream, **options)
