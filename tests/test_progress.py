"""cpc.progress: off a terminal a bar prints whole lines, at most one per LOG_SECONDS, never carriage returns."""

import io

from cpc.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_few_plain_lines_and_a_terminal_gets_the_usual_bar():
    log = io.StringIO()
    for _ in progress_bar(range(100_000), desc="work", file=log):
        pass
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3 and lines[-1].startswith("work: 100%") and "100000/100000" in lines[-1]
    terminal = Terminal()
    for _ in progress_bar(range(1000), desc="work", file=terminal, mininterval=0):
        pass
    assert terminal.getvalue().count("\r") > 1  # redrawn in place


def test_disable_shows_nothing():
    log = io.StringIO()
    for _ in progress_bar(range(10), file=log, disable=True):
        pass
    assert log.getvalue() == ""
