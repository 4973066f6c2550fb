"""Plotly pages of a study: Pareto front, search history, parameter importance.

Optuna's split: ``_get_*_info`` turns a study into plain data (tested), ``_get_*_plot``
draws it. Pages embed plotly.js so they open offline; nothing is fetched from a CDN.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import optuna
import pandas as pd
import plotly.graph_objects as go

from vitsearch.space.files import atomic_write_text

from .results import RunResults, top_rung

# Label placement works in approximate screen pixels: a 540 px figure leaves a plot area about 345 px
# high, and in a 1,000 px window the legend on the right leaves it about 585 px wide (measured on a
# headless-Chromium rendering). Wider windows only spread the points: the narrow estimate is the safe one.
_FIGURE_HEIGHT_PX = 540
_PLOT_PX = (585.0, 345.0)
_CHAR_PX, _LINE_PX, _MARKER_PX = 7.0, 14.0, 7.0
_PLACES = ("top center", "bottom center", "middle right", "middle left")


class ParetoInfo(NamedTuple):
    budget_gflops: float
    front: pd.DataFrame  # non-dominated, within budget
    others: pd.DataFrame  # evaluated, dominated or over budget
    score_label: str  # what the score is: the evaluator's name
    baselines: pd.DataFrame  # hand-designed architectures scored by the same evaluator (search.baselines)
    objectives: tuple[str, ...] = ("flops",)  # what the front minimises besides the score
    lower: pd.DataFrame | None = None  # evaluated only at lower rungs: where the search went, not comparable


class HistoryInfo(NamedTuple):
    trial: list[int]
    best_score: list[float | None]
    hypervolume: list[float]


def _get_pareto_info(results: RunResults) -> ParetoInfo:
    """The study's one front (``RunResults.front``, over all its objectives), the rest, the scored baselines."""
    trials, front, baselines = results.trials, results.front, results.baselines
    evaluated = trials[trials["state"] == "COMPLETE"]
    rung = top_rung(trials)
    lower = evaluated.iloc[0:0]
    if rung is not None:  # one axis, one fidelity: lower rungs' scores are not comparable across sizes
        lower = evaluated[(evaluated["rung"] < rung) & evaluated["within_budget"]]
        evaluated = evaluated[evaluated["rung"] == rung]
        baselines = results.baselines_at(rung)
    others = evaluated.drop(index=front.index, errors="ignore")
    evaluators = sorted(set(trials["evaluator"])) if "evaluator" in trials else []
    scored = baselines[baselines["state"] == "COMPLETE"]
    label = f"score ({results.fidelity or ', '.join(evaluators) or 'none'})"
    return ParetoInfo(results.budget / 1e9, front, others, label, scored, results.objectives, lower)


def _hover(frame: pd.DataFrame, name: str = "trial", prefix: str = "trial ") -> list[str]:
    """Hover text per row, titled by its ``name`` column (a trial number, a baseline's name)."""
    return [
        f"{prefix}{getattr(r, name)}<br>score {r.score:.4f}<br>{r.gflops:.3f} GFLOPs, {r.params / 1e6:.2f}M params"
        f"<br>{r.architecture.replace(' | ', '<br>')}"
        for r in frame.itertuples()
    ]


def _get_pareto_plot(info: ParetoInfo) -> go.Figure:
    fig = go.Figure()
    if info.lower is not None and not info.lower.empty:  # where the search went across the budget
        fig.add_trace(
            go.Scatter(
                x=info.lower["gflops"],
                y=info.lower["score"],
                mode="markers",
                name="stopped at a lower rung (score not comparable)",
                marker={"color": "gray", "size": 7, "symbol": "circle-open", "opacity": 0.5},
                hovertext=[f"{h}<br>{f}" for h, f in zip(_hover(info.lower), info.lower["fidelity"], strict=True)],
                hoverinfo="text",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=info.others["gflops"],
            y=info.others["score"],
            mode="markers",
            name="dominated (same fidelity)",
            marker={"color": "lightgray", "size": 8, "opacity": 0.6},
            hovertext=_hover(info.others),
            hoverinfo="text",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=info.front["gflops"],
            y=info.front["score"],
            # A staircase only when FLOPs is the one cost: a front over more costs is not monotone in FLOPs.
            mode="lines+markers" if info.objectives == ("flops",) else "markers",
            line={"shape": "hv"},
            name="Pareto front" + ("" if info.objectives == ("flops",) else f" ({', '.join(info.objectives)})"),
            marker={"color": "crimson", "size": 11},
            hovertext=_hover(info.front),
            hoverinfo="text",
        )
    )
    if not info.baselines.empty:
        fig.add_trace(
            go.Scatter(
                x=info.baselines["gflops"],
                y=info.baselines["score"],
                mode="markers+text",
                name="hand-designed baselines",
                text=list(info.baselines["baseline"]),
                textposition=_label_positions(info.baselines, _extent(info), _other_points(info), _right_edge(info)),
                marker={"color": "royalblue", "size": 12, "symbol": "diamond"},
                hovertext=_hover(info.baselines, "baseline", ""),
                hoverinfo="text",
            )
        )
    fig.add_vline(x=info.budget_gflops, line_dash="dash", annotation_text=f"budget {info.budget_gflops:g} GFLOPs")
    fig.update_layout(
        title="Accuracy against complexity",
        xaxis_title="GFLOPs (target profile)",
        yaxis_title=info.score_label,
        template="plotly_white",
        height=_FIGURE_HEIGHT_PX,  # fixed, so the label placement's pixel model holds
    )
    return fig


def hypervolume_2d(points: list[tuple[float, float]], budget_flops: float) -> float:
    """Area dominated by (score up, FLOPs down) points, reference (score 0, FLOPs = budget), over the budget.

    Sweeping FLOPs upwards, the dominated height at each FLOPs level is the best score of
    any point at or below it: a staircase whose area this sums.
    """
    inside = sorted((f, s) for s, f in points if f <= budget_flops and s > 0)
    area, best = 0.0, 0.0
    for i, (f, s) in enumerate(inside):
        best = max(best, s)
        right = inside[i + 1][0] if i + 1 < len(inside) else budget_flops
        area += (right - f) * best
    return area / budget_flops


def _get_history_info(trials: pd.DataFrame, budget: int) -> HistoryInfo:
    numbers, best, volumes, points = [], [], [], []
    current: float | None = None
    for row in trials.sort_values("trial").itertuples():
        if row.state == "COMPLETE" and row.within_budget:
            current = row.score if current is None else max(current, row.score)
            points.append((row.score, row.flops))
        numbers.append(int(row.trial))
        best.append(current)
        volumes.append(hypervolume_2d(points, budget))
    return HistoryInfo(numbers, best, volumes)


def _get_history_plot(info: HistoryInfo) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=info.trial, y=info.best_score, mode="lines+markers", name="best score within budget"))
    fig.add_trace(
        go.Scatter(x=info.trial, y=info.hypervolume, mode="lines", name="hypervolume (normalised)", yaxis="y2")
    )
    fig.update_layout(
        title="Search history",
        xaxis_title="trial",
        yaxis={"title": "best score"},
        yaxis2={"title": "hypervolume", "overlaying": "y", "side": "right"},
        template="plotly_white",
    )
    return fig


def _get_importance_plot(study: optuna.Study) -> go.Figure:
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.user_attrs.get("result", {}).get("evaluated")
    ]
    if len(done) < 3:
        fig = go.Figure()
        fig.add_annotation(text=f"{len(done)} evaluated trials: importance needs at least 3", showarrow=False)
        return fig
    # Only evaluated trials: over-budget samples carry a placeholder score of 0.
    view = optuna.create_study(directions=[d.name.lower() for d in study.directions])
    view.add_trials(done)
    # fANOVA is indifferent to the direction; Optuna 5's default (PED-ANOVA) assumes minimisation.
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = optuna.visualization.plot_param_importances(
                view, evaluator=evaluator, target=lambda t: t.values[0], target_name="score"
            )
    except (RuntimeError, ValueError) as err:  # e.g. no parameter shared by all trials
        fig = go.Figure()
        fig.add_annotation(text=f"importance not available: {err}", showarrow=False)
    fig.update_layout(title="Which choices matter for the score (fANOVA)")
    return fig


def figures(results: RunResults) -> dict[str, go.Figure]:
    """The three figures of a run, by page name: the front with the baselines, the history, the importance."""
    return {
        "pareto.html": _get_pareto_plot(_get_pareto_info(results)),
        "history.html": _get_history_plot(_get_history_info(results.trials, results.budget)),
        "importance.html": _get_importance_plot(results.study),
    }


def write_plots(results: RunResults, out: Path, figs: dict[str, go.Figure] | None = None) -> list[Path]:
    """Write pareto.html (with the baselines), history.html and importance.html into ``out``."""
    written = []
    for name, fig in (figs or figures(results)).items():
        path = out / name
        atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
        written.append(path)
    return written


def _searched(info: ParetoInfo) -> list[pd.DataFrame]:
    """The non-empty frames of searched architectures the plot draws: front, dominated, lower rungs."""
    return [f for f in (info.front, info.others, info.lower) if f is not None and not f.empty]


def _plotted(info: ParetoInfo) -> list[pd.DataFrame]:
    """Every non-empty frame the plot draws: the searched architectures and the baselines."""
    return _searched(info) + ([info.baselines] if not info.baselines.empty else [])


def _extent(info: ParetoInfo) -> tuple[float, float]:
    """The (GFLOPs, score) spans the axes cover: every plotted point and the budget line."""
    frames = _plotted(info)
    xs = [float(v) for f in frames for v in f["gflops"]] + [info.budget_gflops, 0.0]
    ys = [float(v) for f in frames for v in f["score"]]
    return max(xs) - min(xs) or 1.0, (max(ys) - min(ys)) if len(ys) > 1 and max(ys) > min(ys) else 1.0


def _right_edge(info: ParetoInfo) -> float:
    """How far right of the rightmost point the x axis reaches, in GFLOPs (plotly pads its autorange ~5%)."""
    x_span, _ = _extent(info)
    right = max([float(v) for f in _plotted(info) for v in f["gflops"]] + [info.budget_gflops])
    return right + 0.05 * x_span


def _other_points(info: ParetoInfo) -> pd.DataFrame:
    """The searched architectures' markers (front, dominated, lower rungs): labels should not cover them either."""
    frames = [f[["gflops", "score"]] for f in _searched(info)]
    return pd.concat(frames) if frames else pd.DataFrame(columns=["gflops", "score"])


def _label_positions(
    points: pd.DataFrame,
    extent: tuple[float, float] | None = None,
    obstacles: pd.DataFrame | None = None,
    right_edge: float | None = None,
) -> list[str]:
    """A text position per baseline whose label box overlaps no marker (``obstacles`` too) and no label placed before.

    Presets and their budget-scaled versions sit close: a fixed alternation put one point's label
    beside its neighbour (PoolFormer-S12's under SCHEMEformer's marker). Greedy, highest score first;
    ``extent`` is the (GFLOPs, score) span the axes show (default: the points' own, from zero); a label
    reaching past ``right_edge`` (GFLOPs) would be clipped, so it counts as covering something.
    """
    xs, ys = points["gflops"].astype(float).tolist(), points["score"].astype(float).tolist()
    names = [str(n) for n in points["baseline"]]
    x_span, y_span = extent or (max(xs + [1e-9]), max(ys + [1e-9]))  # overlap is shift-invariant: spans suffice
    px = [(x / x_span * _PLOT_PX[0], y / y_span * _PLOT_PX[1]) for x, y in zip(xs, ys, strict=True)]
    markers = [(x - _MARKER_PX, y - _MARKER_PX, x + _MARKER_PX, y + _MARKER_PX) for x, y in px]
    small = _MARKER_PX * 0.6  # the searched architectures' markers are smaller than the baselines' diamonds
    dots = [] if obstacles is None else [
        (x / x_span * _PLOT_PX[0], y / y_span * _PLOT_PX[1])
        for x, y in zip(obstacles["gflops"].astype(float), obstacles["score"].astype(float), strict=True)
    ]  # fmt: skip
    dot_boxes = [(x - small, y - small, x + small, y + small) for x, y in dots]
    edge_px = float("inf") if right_edge is None else right_edge / x_span * _PLOT_PX[0]
    placed: list[tuple[float, float, float, float]] = []
    out = [_PLACES[0]] * len(xs)
    for i in sorted(range(len(xs)), key=lambda k: -ys[k]):
        boxes = {place: _label_box(px[i], len(names[i]), place) for place in _PLACES}

        def cost(place: str, box: tuple[float, float, float, float]) -> tuple[int, int, int]:
            # covering a baseline or a label is worse than covering a searched point; then the usual order
            hard = sum(_overlap(box, o) for o in markers + placed) + (box[2] > edge_px)
            return hard, sum(_overlap(box, o) for o in dot_boxes), _PLACES.index(place)

        out[i] = min(boxes.items(), key=lambda item: cost(*item))[0]
        placed.append(boxes[out[i]])
    return out


def _label_box(at: tuple[float, float], chars: int, place: str) -> tuple[float, float, float, float]:
    x, y = at
    w, h, gap = chars * _CHAR_PX, _LINE_PX, _MARKER_PX + 1
    return {
        "top center": (x - w / 2, y + gap, x + w / 2, y + gap + h),
        "bottom center": (x - w / 2, y - gap - h, x + w / 2, y - gap),
        "middle right": (x + gap, y - h / 2, x + gap + w, y + h / 2),
        "middle left": (x - gap - w, y - h / 2, x - gap, y + h / 2),
    }[place]


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
