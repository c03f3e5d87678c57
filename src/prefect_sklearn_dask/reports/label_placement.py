"""Where each point's name goes on a scatter, so that names of close points do not overlap.

Bokeh's ``LabelSet`` draws every label at the same offset from its point, and it has no
collision handling: on ``make run``'s chart five of the eight models scored within 0.02
of each other at fit times under 5 s, and "svc" was hidden under "et" and "hgb (best)".
Here each label takes the first of a few spots around its point (right, then left, above,
then below) whose box in screen pixels overlaps no label placed before it and no point;
the best model goes first, so it keeps the plain spot. The pixel geometry is that of the
panel (its size, its axes' padding) and an estimated text width: good enough to separate
names, with no browser needed to compute it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Rough extent of the panel's frame (the panel minus its axes, title and toolbar), px.
FRAME_MARGIN_X = 100
FRAME_MARGIN_Y = 80
CHAR_PX = 6.5  # mean advance of 9pt sans-serif
LINE_PX = 12
GAP_PX = 6
# (x_offset, y_offset, text_align) tried in order; bokeh's y offset points up.
SPOTS: tuple[tuple[int, int, str], ...] = (
    (GAP_PX, 4, "left"),
    (GAP_PX, -4 - LINE_PX, "left"),
    (-GAP_PX, 4, "right"),
    (-GAP_PX, -4 - LINE_PX, "right"),
    (GAP_PX, 4 + LINE_PX, "left"),
    (GAP_PX, -4 - 2 * LINE_PX, "left"),
    (-GAP_PX, 4 + LINE_PX, "right"),
    (-GAP_PX, -4 - 2 * LINE_PX, "right"),
)


@dataclass(frozen=True)
class Box:
    left: float
    bottom: float
    right: float
    top: float

    def overlap(self, other: Box) -> float:
        """Area shared with ``other`` (0 when apart)."""
        width = min(self.right, other.right) - max(self.left, other.left)
        height = min(self.top, other.top) - max(self.bottom, other.bottom)
        return max(width, 0.0) * max(height, 0.0)


def _to_pixels(values: Sequence[float], span_px: float, padding: float, log: bool) -> list[float]:
    """Screen position of each value on an axis whose range pads the data by ``padding``
    (bokeh's ``range_padding``: the span grows by that fraction, half on each side)."""
    scaled = [math.log10(v) if log else v for v in values]
    low, high = min(scaled), max(scaled)
    width = (high - low) or 1.0
    low -= width * padding / 2
    width *= 1 + padding
    return [(v - low) / width * span_px for v in scaled]


def label_box(x: float, y: float, label: str, spot: tuple[int, int, str]) -> Box:
    """The pixel box of ``label`` drawn at ``spot`` from the point at (x, y)."""
    dx, dy, align = spot
    width = len(label) * CHAR_PX
    left = x + dx if align == "left" else x + dx - width
    return Box(left, y + dy, left + width, y + dy + LINE_PX)


def pixel_points(
    xs: Sequence[float],
    ys: Sequence[float],
    sizes: Sequence[float],
    *,
    width: int,
    height: int,
    x_padding: float,
    y_padding: float,
    log_x: bool = False,
) -> tuple[list[float], list[float], list[Box]]:
    """Each point's pixel position (x, y) and the box its marker covers."""
    px = _to_pixels(xs, width - FRAME_MARGIN_X, x_padding, log_x)
    py = _to_pixels(ys, height - FRAME_MARGIN_Y, y_padding, False)
    points = [
        Box(x - size / 2, y - size / 2, x + size / 2, y + size / 2)
        for x, y, size in zip(px, py, sizes, strict=True)
    ]
    return px, py, points


def place_labels(
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    sizes: Sequence[float],
    **geometry: Any,
) -> list[tuple[int, int, str]]:
    """A spot from :data:`SPOTS` per label, placed in the order given; where every spot
    collides, the one that overlaps least. ``geometry``: :func:`pixel_points`' keywords."""
    px, py, points = pixel_points(xs, ys, sizes, **geometry)
    placed: list[Box] = []
    chosen = []
    for i, (x, y, label) in enumerate(zip(px, py, labels, strict=True)):
        others = placed + points[:i] + points[i + 1 :]  # its own point: the label abuts it
        boxes = [label_box(x, y, label, spot) for spot in SPOTS]
        clashes = [sum(box.overlap(other) for other in others) for box in boxes]
        best = clashes.index(min(clashes))  # the first free spot, else the least covered
        placed.append(boxes[best])
        chosen.append(SPOTS[best])
    return chosen
