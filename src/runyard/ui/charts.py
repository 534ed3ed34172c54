"""Small charts drawn on the server as SVG: no script, no chart library, readable without colour."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what a screen reader and the tooltip say
    value: int


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    peak: int
    summary: str


def bar_chart(points: list[tuple[str, int]], *, width: int = 480, height: int = 120, noun: str = "runs") -> BarChart:
    """Bars for ``points`` (label, count), scaled to the largest; empty hours draw nothing."""
    peak = max((count for _, count in points), default=0)
    slot = width / max(1, len(points))
    bars = []
    for i, (label, count) in enumerate(points):
        h = 0.0 if peak == 0 else (height - 4) * count / peak
        bars.append(Bar(x=round(i * slot + 1, 2), y=round(height - h, 2), width=round(max(1.0, slot - 2), 2),
                        height=round(h, 2), label=f"{label}: {count} {noun}", value=count))
    total = sum(count for _, count in points)
    return BarChart(width, height, bars, peak, f"{total} {noun} in {len(points)} hours, at most {peak} in one hour")
