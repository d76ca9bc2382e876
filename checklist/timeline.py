"""Lays out a case's dated facts on a time axis for the SVG timeline. Pure Python.

Positions only: what is drawn, and in which lane, is fixed by the kind of fact; nothing here
weighs or colours a fact by its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTH = 960
LEFT = 150
RIGHT = 20
LANE_HEIGHT = 26

LANES = (
    ("diagnosis", "Diagnosis"),
    ("staging", "Staging"),
    ("metastasis", "Metastases"),
    ("therapy", "Therapy lines"),
    ("event", "Adverse events"),
    ("performance", "Performance status"),
    ("immune", "Immune findings"),
)


@dataclass(frozen=True)
class Point:
    lane: str
    on: date
    label: str
    end: date | None = None  # therapy lines: a bar to `end`, or to today when ongoing
    ongoing: bool = False


@dataclass(frozen=True)
class Mark:
    lane_index: int
    x: float
    y: float
    label: str
    on: date
    width: float = 0.0
    ongoing: bool = False


@dataclass(frozen=True)
class Layout:
    marks: tuple[Mark, ...]
    lanes: tuple[tuple[str, str, float], ...]  # (key, label, y)
    ticks: tuple[tuple[float, str], ...]
    height: float
    width: int = WIDTH


def layout(points: list[Point], today: date) -> Layout | None:
    if not points:
        return None
    dates = [p.on for p in points] + [p.end or today for p in points if p.end or p.ongoing]
    start, stop = min(dates), max(max(dates), start_plus_one(min(dates)))
    span = (stop - start).days or 1
    usable = WIDTH - LEFT - RIGHT

    def x_of(day: date) -> float:
        return round(LEFT + usable * (day - start).days / span, 1)

    lane_y = {key: 30 + i * LANE_HEIGHT for i, (key, _label) in enumerate(LANES)}
    marks = []
    for point in sorted(points, key=lambda p: (p.on, p.lane, p.label)):
        x = x_of(point.on)
        width = 0.0
        if point.lane == "therapy":
            end = point.end or (today if point.ongoing else point.on)
            width = max(x_of(end) - x, 3.0)
        index = [k for k, _l in LANES].index(point.lane)
        marks.append(
            Mark(index, x, lane_y[point.lane], point.label, point.on, width, point.ongoing)
        )
    ticks = []
    for year in range(start.year, stop.year + 1):
        tick = date(year, 1, 1)
        if start <= tick <= stop:
            ticks.append((x_of(tick), str(year)))
    if not ticks:
        ticks.append((x_of(start), start.strftime("%Y-%m")))
    lanes = tuple((key, label, float(lane_y[key])) for key, label in LANES)
    return Layout(tuple(marks), lanes, tuple(ticks), 30 + len(LANES) * LANE_HEIGHT + 10)


def start_plus_one(day: date) -> date:
    return date(day.year + 1, day.month, min(day.day, 28))
