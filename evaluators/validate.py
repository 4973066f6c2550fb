"""Proxy fidelity: how well a cheap evaluator ranks architectures like a longer reference.

``validate_proxy`` scores every architecture with both evaluators (through an on-disk cache
keyed by architecture digest + evaluator name + settings, so a second call re-trains
nothing), then reports Kendall's tau and Spearman's rho (scipy) with percentile bootstrap
95% confidence intervals, and writes ``<stem>.csv``, ``<stem>.json`` (the summary and both
evaluators' settings) and ``<stem>.html`` (a plotly scatter, plotly.js embedded).

The ``vitsearch validate-proxy`` command is a thin layer over this: it samples the
architectures from a search space under a budget and passes them here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from vitsearch.space.files import atomic_write_text

from .base import BaseEvaluator, EvaluationFailed

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from vitsearch.space import ArchConfig


class ResultCache:
    """One JSON file per (architecture, evaluator, settings) under ``root/<evaluator name>/``.

    A record holds the architecture, its digest, the evaluator's name and settings, and
    either ``result`` (the evaluator's dict) or ``error`` (the ``EvaluationFailed`` reason):
    failures are deterministic too, so they are cached.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, evaluator: BaseEvaluator, arch: ArchConfig) -> Path:
        return self.root / (evaluator.name or type(evaluator).__name__) / f"{evaluator.cache_key(arch)}.json"

    def get(self, evaluator: BaseEvaluator, arch: ArchConfig) -> dict[str, Any] | None:
        path = self.path(evaluator, arch)
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, evaluator: BaseEvaluator, arch: ArchConfig, record: dict[str, Any]) -> None:
        path = self.path(evaluator, arch)
        atomic_write_text(path, json.dumps(record, indent=1, default=_json_default))  # a crash never leaves half


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def cached_evaluate(evaluator: BaseEvaluator, arch: ArchConfig, cache: ResultCache | None) -> dict[str, Any]:
    """The cached record for ``arch``, evaluating (and storing) it on a miss.

    Returns:
        The record: ``result`` or ``error``, plus ``cached`` (True when read from disk).
    """
    if cache is not None:
        hit = cache.get(evaluator, arch)
        if hit is not None:
            return {**hit, "cached": True}
    record: dict[str, Any] = {
        "digest": arch.digest(),
        "arch": arch.to_dict(),
        "evaluator": evaluator.name,
        "settings": evaluator.settings(),
    }
    start = time.perf_counter()
    try:
        record["result"] = evaluator.evaluate(arch)
    except EvaluationFailed as err:
        record["error"] = err.reason
        record["partial"] = err.partial
    record["wall_seconds"] = time.perf_counter() - start
    if cache is not None:
        cache.put(evaluator, arch, record)
    return {**record, "cached": False}


def bootstrap_ci(
    x: np.ndarray, y: np.ndarray, statistic: Any, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic(x, y)`` over resampled pairs (NaN resamples dropped)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        value = statistic(x[idx], y[idx])
        if math.isfinite(value):
            values.append(value)
    if not values:
        return (math.nan, math.nan)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import kendalltau

    if len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return math.nan
    return float(kendalltau(x, y).statistic)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


TRIVIAL_BASELINES = ("params", "flops")  # rank by size alone: often as good as a ViT proxy (docs/results/fidelity.md)
# The fidelity study's label (studies/fidelity/cheap.csv rows) of the profile ProxyProfile ships.
SHIPPED_PROXY_LABEL = "proxy-b8-500x2-w0.125"


@dataclass
class ProxyValidation:
    """What ``validate_proxy`` measured, and where it wrote it."""

    frame: pd.DataFrame  # one row per architecture
    n: int  # architectures both evaluators scored
    kendall_tau: float
    kendall_ci: tuple[float, float]
    spearman_rho: float
    spearman_ci: tuple[float, float]
    evaluator_seconds: float  # median seconds per architecture (fresh evaluations only; NaN if all cached)
    reference_seconds: float
    csv_path: Path
    html_path: Path
    json_path: Path
    summary: dict[str, Any] = field(default_factory=dict)

    def table_row(self) -> str:
        """One markdown table row: evaluator, tau [CI], rho [CI], seconds per architecture."""
        ev = self.summary.get("evaluator", {}).get("name", "?")
        return (
            f"| {ev} | {self.kendall_tau:.3f} [{self.kendall_ci[0]:.3f}, {self.kendall_ci[1]:.3f}] "
            f"| {self.spearman_rho:.3f} [{self.spearman_ci[0]:.3f}, {self.spearman_ci[1]:.3f}] "
            f"| {self.evaluator_seconds:.1f} |"
        )


class ScatterInfo(NamedTuple):
    names: list[str]
    x: list[float]
    y: list[float]
    x_label: str
    y_label: str
    title: str


def _get_scatter_info(frame: pd.DataFrame, evaluator: str, reference: str, title: str) -> ScatterInfo:
    ok = frame.dropna(subset=["evaluator_score", "reference_score"])
    return ScatterInfo(
        names=ok["name"].tolist(),
        x=ok["evaluator_score"].astype(float).tolist(),
        y=ok["reference_score"].astype(float).tolist(),
        x_label=f"{evaluator} score",
        y_label=f"{reference} score",
        title=title,
    )


def _get_scatter_plot(info: ScatterInfo) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(
            x=info.x,
            y=info.y,
            mode="markers",
            text=info.names,
            hovertemplate="%{text}<br>x=%{x:.4g}<br>y=%{y:.4g}<extra></extra>",
        )
    )
    fig.update_layout(title=info.title, xaxis_title=info.x_label, yaxis_title=info.y_label, template="plotly_white")
    return fig


def validate_proxy(
    archs: Sequence[ArchConfig | str],
    evaluator: BaseEvaluator,
    reference: BaseEvaluator,
    cache_dir: str | Path,
    out_dir: str | Path | None = None,
    stem: str | None = None,
    names: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> ProxyValidation:
    """Rank agreement between ``evaluator`` and ``reference`` over ``archs``.

    Args:
        archs: architectures (``ArchConfig`` or anything ``resolve_arch`` takes).
        evaluator: the cheap estimate under test.
        reference: the trusted, longer estimate (e.g. proxy training for 10+ epochs).
        cache_dir: the result cache; both evaluators read and write it.
        out_dir: where the CSV / JSON / HTML go; default ``cache_dir``.
        stem: file name stem; default ``validate_<evaluator>_vs_<reference>``.
        names: labels for the rows; default the preset name when given one, else the digest.
        n_boot: bootstrap resamples for the confidence intervals.
        seed: bootstrap seed.

    Returns:
        A ``ProxyValidation``; tau / rho are NaN when fewer than 3 architectures succeed in
        both or a side is constant.
    """
    import pandas as pd

    from vitsearch.space import resolve_arch
    from vitsearch.space.analytic import analytic_flops, analytic_params

    cache = ResultCache(cache_dir)
    out = Path(out_dir) if out_dir is not None else Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or f"validate_{evaluator.name}_vs_{reference.name}"
    resolved = [resolve_arch(a) for a in archs]
    if names is None:
        names = [a if isinstance(a, str) else r.digest() for a, r in zip(archs, resolved, strict=True)]
    if len(names) != len(resolved):
        raise ValueError(f"{len(names)} names for {len(resolved)} architectures")

    rows = []
    for name, arch in zip(names, resolved, strict=True):
        ev = cached_evaluate(evaluator, arch, cache)
        ref = cached_evaluate(reference, arch, cache)
        rows.append(
            {
                "name": name,
                "digest": arch.digest(),
                "params": analytic_params(arch),  # the trivial baselines every estimate must beat
                "flops": analytic_flops(arch),
                "evaluator_score": ev.get("result", {}).get("score", math.nan),
                "reference_score": ref.get("result", {}).get("score", math.nan),
                "evaluator_seconds": ev["wall_seconds"],
                "reference_seconds": ref["wall_seconds"],
                "evaluator_cached": ev["cached"],
                "reference_cached": ref["cached"],
                "evaluator_error": ev.get("error", ""),
                "reference_error": ref.get("error", ""),
            }
        )
    frame = pd.DataFrame(rows)
    ok = frame.dropna(subset=["evaluator_score", "reference_score"])
    ok = ok[np.isfinite(ok["evaluator_score"]) & np.isfinite(ok["reference_score"])]
    x, y = ok["evaluator_score"].to_numpy(float), ok["reference_score"].to_numpy(float)
    enough = len(ok) >= 3
    tau = kendall_tau(x, y) if enough else math.nan
    rho = spearman_rho(x, y) if enough else math.nan
    tau_ci = bootstrap_ci(x, y, kendall_tau, n_boot, seed) if enough else (math.nan, math.nan)
    rho_ci = bootstrap_ci(x, y, spearman_rho, n_boot, seed) if enough else (math.nan, math.nan)

    def median_fresh(col: str, cached: str) -> float:
        fresh = frame.loc[~frame[cached], col]
        return float(fresh.median()) if len(fresh) else math.nan

    baselines = {}
    for column in TRIVIAL_BASELINES:
        b = ok[column].to_numpy(float)
        baselines[column] = {
            "kendall_tau": kendall_tau(b, y) if enough else math.nan,
            "kendall_ci95": list(bootstrap_ci(b, y, kendall_tau, n_boot, seed)) if enough else [math.nan, math.nan],
            "spearman_rho": spearman_rho(b, y) if enough else math.nan,
        }
    summary = {
        "n": len(ok),
        "baselines": baselines,
        "n_archs": len(frame),
        "kendall_tau": tau,
        "kendall_ci95": list(tau_ci),
        "spearman_rho": rho,
        "spearman_ci95": list(rho_ci),
        "bootstrap": {"n_boot": n_boot, "seed": seed, "method": "percentile"},
        "evaluator": {"name": evaluator.name, "settings": evaluator.settings()},
        "reference": {"name": reference.name, "settings": reference.settings()},
    }
    csv_path, json_path, html_path = (out / f"{stem}.{ext}" for ext in ("csv", "json", "html"))
    frame.to_csv(csv_path, index=False)
    json_path.write_text(json.dumps(summary, indent=2, default=_json_default))
    title = f"{evaluator.name} vs {reference.name}: Kendall tau {tau:.3f}, Spearman rho {rho:.3f} (n={len(ok)})"
    fig = _get_scatter_plot(_get_scatter_info(frame, evaluator.name, reference.name, title))
    fig.write_html(html_path, include_plotlyjs=True, full_html=True)
    return ProxyValidation(
        frame=frame,
        n=len(ok),
        kendall_tau=tau,
        kendall_ci=tau_ci,
        spearman_rho=rho,
        spearman_ci=rho_ci,
        evaluator_seconds=median_fresh("evaluator_seconds", "evaluator_cached"),
        reference_seconds=median_fresh("reference_seconds", "reference_cached"),
        csv_path=csv_path,
        html_path=html_path,
        json_path=json_path,
        summary=summary,
    )
