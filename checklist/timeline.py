"""Lays out a case's dated facts on a time axis for the SVG timeline. Pure Python.

Positions only: what is drawn, and in which row, is fixed by the kind of fact; nothing here
weighs or colours a fact by its value. Each therapy line gets its own row so that lines that
follow each other closely never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from checklist import rules

WIDTH = 960
LEFT = 150
RIGHT = 20
ROW_HEIGHT = 24
TOP = 30

LANES = (
    "diagnosis",
    "staging",
    "metastasis",
    "therapy",
    "event",
    "performance",
    "immune",
    "genomics",
    "lifestyle",
)


@dataclass(frozen=True)
class Point:
    lane: str
    on: date
    label: str
    end: date | None = None  # therapy lines: a bar to `end`, or to today when ongoing
    ongoing: bool = False
    row_key: str = ""  # therapy episodes: one row per episode, in the order of the keys
    row_title: str = ""  # the episode's row title ("Line 1", "Radiotherapy · 2021-03")
    precision: str = rules.DAY  # how precisely `on` is known; drawn at its first day


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    label: str
    on: date
    width: float = 0.0
    ongoing: bool = False
    precision: str = rules.DAY

    @property
    def when(self) -> rules.PartialDate:
        return rules.PartialDate(self.on, self.precision)

    @property
    def label_anchor(self) -> str:
        # Labels of bars in the right half end at the bar's end, so they stay on the canvas.
        return "end" if self.x > WIDTH / 2 else "start"

    @property
    def label_x(self) -> float:
        return round(self.x + self.width - 3, 1) if self.label_anchor == "end" else self.x + 3


@dataclass(frozen=True)
class Row:
    lane: str
    title: str  # "" for the lane's own row; the line's title for therapy rows
    y: float


@dataclass(frozen=True)
class Layout:
    marks: tuple[Mark, ...]
    rows: tuple[Row, ...]
    ticks: tuple[tuple[float, str], ...]
    height: float
    width: int = WIDTH


def layout(points: list[Point], today: date) -> Layout | None:
    if not points:
        return None
    dates = [p.on for p in points] + [p.end or today for p in points if p.end or p.ongoing]
    start = min(dates)
    stop = max(max(dates), date(start.year + 1, start.month, min(start.day, 28)))
    span = (stop - start).days or 1
    usable = WIDTH - LEFT - RIGHT

    def x_of(day: date) -> float:
        return round(LEFT + usable * (day - start).days / span, 1)

    titles = {p.row_key: p.row_title for p in points if p.lane == "therapy"}
    therapy_rows = sorted(titles, key=lambda k: (len(k), k))
    rows: list[Row] = []
    row_y: dict[tuple[str, str], float] = {}
    for lane in LANES:
        keys = therapy_rows or [""] if lane == "therapy" else [""]
        for key in keys:
            y = float(TOP + len(rows) * ROW_HEIGHT)
            rows.append(Row(lane, titles.get(key, "") if lane == "therapy" else "", y))
            row_y[(lane, key)] = y

    marks = []
    for point in sorted(points, key=lambda p: (p.on, p.lane, p.label)):
        x = x_of(point.on)
        width = 0.0
        if point.lane == "therapy":
            end = point.end or (today if point.ongoing else point.on)
            width = round(max(x_of(end) - x, 3.0), 1)
        y = row_y[(point.lane, point.row_key if point.lane == "therapy" else "")]
        marks.append(Mark(x, y, point.label, point.on, width, point.ongoing, point.precision))
    ticks = [
        (x_of(date(year, 1, 1)), str(year))
        for year in range(start.year, stop.year + 1)
        if start <= date(year, 1, 1) <= stop
    ] or [(x_of(start), start.strftime("%Y-%m"))]
    return Layout(tuple(marks), tuple(rows), tuple(ticks), TOP + len(rows) * ROW_HEIGHT + 6)
