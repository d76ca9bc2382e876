"""Long commands: a bar on a terminal, one summary line otherwise (checklist/progress.py)."""

import io

from checklist.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_it_prints_one_summary_line_when_not_on_a_terminal():
    out = io.StringIO()
    with Progress("verifying audit events", 2500, unit="events", file=out) as progress:
        for _ in range(5):
            progress.update(500)
    [line] = out.getvalue().splitlines()
    assert line.startswith("verifying audit events: 2,500 events in ")
    assert line.endswith("/s)")


def test_it_draws_a_bar_on_a_terminal_and_no_summary_line():
    out = Terminal()
    with Progress("cases", 4, unit="cases", file=out) as progress:
        for _ in range(4):
            progress.update()
    text = out.getvalue()
    assert "4/4" in text and "100%" in text
    assert "cases in " not in text
