"""Baseline labels in pareto.html: placed so no label covers a marker or another label."""

from __future__ import annotations

import itertools

import pandas as pd

from vitsearch.search import plots

# What a 2-GFLOPs run scores: presets and their budget-scaled versions within 0.2 GFLOPs of each other.
BASELINES = pd.DataFrame(
    {
        "baseline": [
            "psvit_tiny",
            "deit_tiny",
            "schemeformer_ppaa_s12",
            "poolformer_s12",
            "deit@2G",
            "schemeformer@2G",
        ],
        "gflops": [1.209, 1.258, 1.769, 1.823, 1.873, 1.963],
        "score": [0.194, 0.188, 0.434, 0.458, 0.156, 0.434],
    }
)
EXTENT = (2.0, 0.7)


def boxes(points: pd.DataFrame) -> list[tuple[float, float, float, float]]:
    places = plots._label_positions(points, EXTENT)
    out = []
    for (_, row), place in zip(points.iterrows(), places, strict=True):
        at = (row.gflops / EXTENT[0] * plots._PLOT_PX[0], row.score / EXTENT[1] * plots._PLOT_PX[1])
        out.append(plots._label_box(at, len(row.baseline), place))
    return out


def test_no_label_overlaps_another_label_or_a_marker():
    labels = boxes(BASELINES)
    for a, b in itertools.combinations(labels, 2):
        assert not plots._overlap(a, b)
    for box, (_, row) in itertools.product(labels, BASELINES.iterrows()):
        x, y = row.gflops / EXTENT[0] * plots._PLOT_PX[0], row.score / EXTENT[1] * plots._PLOT_PX[1]
        marker = (x - plots._MARKER_PX, y - plots._MARKER_PX, x + plots._MARKER_PX, y + plots._MARKER_PX)
        assert not plots._overlap(box, marker)


def test_of_two_close_points_the_higher_is_labelled_above_and_the_lower_below():
    # the fixed alternation used before put PoolFormer-S12's label under SCHEMEformer's marker
    places = dict(zip(BASELINES.baseline, plots._label_positions(BASELINES, EXTENT), strict=True))
    assert places["poolformer_s12"] == "top center" and places["schemeformer_ppaa_s12"] == "bottom center"
    assert places["psvit_tiny"] == "top center" and places["deit_tiny"] == "bottom center"


def test_the_overlap_test_itself():
    assert plots._overlap((0, 0, 2, 2), (1, 1, 3, 3))
    assert not plots._overlap((0, 0, 1, 1), (1, 0, 2, 1))  # touching edges do not overlap


def test_a_label_moves_off_a_searched_architecture_when_it_can():
    # a lone baseline with a searched point just above it: "top center" would cover that point
    lone = pd.DataFrame({"baseline": ["poolformer_s12"], "gflops": [1.0], "score": [0.35]})
    above = pd.DataFrame({"gflops": [1.0], "score": [0.35 + 14 / plots._PLOT_PX[1] * EXTENT[1]]})
    assert plots._label_positions(lone, EXTENT) == ["top center"]
    assert plots._label_positions(lone, EXTENT, above) == ["bottom center"]
