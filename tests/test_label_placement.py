"""Model names on the score-vs-fit-time scatter: close points get names that do not overlap."""

from __future__ import annotations

import pytest

from prefect_sklearn_dask.reports.figures import HEIGHT, WIDTH
from prefect_sklearn_dask.reports.label_placement import (
    SPOTS,
    label_box,
    pixel_points,
    place_labels,
)

# `make run`'s chart of 2026-12-02: five models within 0.02 of f1 at fit times under 5 s.
MAKE_RUN = [
    ("hgb (best)", 0.9544, 0.929, 16),
    ("et", 0.9512, 0.666, 10),
    ("rf", 0.9456, 2.016, 10),
    ("svc", 0.9424, 0.487, 10),
    ("mlp", 0.9408, 4.675, 10),
    ("knn", 0.8902, 0.018, 10),
    ("nb", 0.7785, 0.017, 10),
    ("logreg", 0.7349, 0.029, 10),
]
GEOMETRY = {"width": WIDTH, "height": HEIGHT, "x_padding": 0.4, "y_padding": 0.15, "log_x": True}


def boxes(points, spots):
    """The pixel boxes of the labels and of the points, as place_labels sees them."""
    labels, scores, fits, sizes = zip(*points, strict=True)
    px, py, dots = pixel_points(fits, scores, sizes, **GEOMETRY)
    names = [label_box(x, y, n, s) for x, y, n, s in zip(px, py, labels, spots, strict=True)]
    return names, dots


def clashes(points, spots) -> list[tuple[str, str]]:
    names, dots = boxes(points, spots)
    found = []
    for i, box in enumerate(names):
        found += [(points[i][0], points[j][0]) for j in range(i) if box.overlap(names[j]) > 0]
        found += [
            (points[i][0], f"{points[j][0]}'s point")
            for j, dot in enumerate(dots)
            if j != i and box.overlap(dot) > 0
        ]
    return found


def place(points):
    labels, scores, fits, sizes = zip(*points, strict=True)
    return place_labels(fits, scores, labels, sizes, **GEOMETRY)


def test_one_spot_for_every_label_overlaps_what_the_chart_drew():
    """The fixed offset bokeh's LabelSet uses is what hid "svc" on that chart."""
    assert clashes(MAKE_RUN, [SPOTS[0]] * len(MAKE_RUN))


def test_close_points_get_names_that_overlap_no_name_and_no_point():
    spots = place(MAKE_RUN)
    assert clashes(MAKE_RUN, spots) == []
    assert spots[0] == SPOTS[0]  # the best model keeps the plain spot, right and above
    assert all(spot in SPOTS for spot in spots)


@pytest.mark.parametrize(
    "points",
    [
        [("only", 0.5, 1.0, 16)],
        [("a", 0.9, 1.0, 16), ("b", 0.9, 1.0, 10), ("c", 0.9, 1.0, 10)],  # all on one spot
    ],
)
def test_one_point_or_points_on_one_spot_still_get_a_spot_each(points):
    spots = place(points)
    assert len(spots) == len(points) and all(spot in SPOTS for spot in spots)
    if len(points) == 3:
        assert len(set(spots)) == 3  # names of points on one spot go to different sides
