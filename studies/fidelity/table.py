"""The fidelity table from the study's CSV caches, in seconds (no training).

Reads ``archs.csv`` (``params`` and ``flops``, the trivial baselines), ``reference.csv`` and
``cheap.csv`` (``run_reference.py``) and prints markdown: for every cheap evaluator / profile
and the two baselines, Kendall tau and Spearman rho against the reference's seed 0 with
percentile bootstrap 95% intervals (``evaluators.validate``), n, the median seconds per
architecture (CPU seconds of the one-thread process where the cache has them, so a loaded
machine does not inflate them) and its share of the reference's; the noise ceiling (reference seed 0 vs seed 1
on the architectures both finished); and the reference's mean learning curve, to show whether
it flattens; and, by FLOPs band, whether the default proxy follows the reference across model sizes.
Works on partial data: every row says its n.

Usage: ``.venv/bin/python studies/fidelity/table.py [--out studies/fidelity/table.md]``
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from pathlib import Path

import numpy as np

from vitsearch.evaluators.result_rows import ResultRows
from vitsearch.evaluators.validate import SHIPPED_PROXY_LABEL as DEFAULT_LABEL
from vitsearch.evaluators.validate import bootstrap_ci, kendall_tau, spearman_rho

HERE = Path(__file__).resolve().parent


def read_csv(path: Path) -> list[dict[str, str]]:
    """Every row of a plain CSV (``archs.csv``); none if it does not exist."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def scores(rows: list[dict[str, str]], label: str, seed: int = 0, last: int = 0) -> dict[str, float]:
    """``arch_id -> score`` of the successful rows of one label and seed; ``last`` > 0: the mean of the
    curve's last ``last`` epochs instead (steadier than the final epoch alone)."""

    def value(r: dict[str, str]) -> float:
        curve = [float(v) for v in r["curve"].split()]
        return statistics.mean(curve[-last:]) if last and curve else float(r["score"])

    out = {r["arch_id"]: value(r) for r in rows if r["label"] == label and int(r["seed"]) == seed and not r["error"]}
    return {k: v for k, v in out.items() if math.isfinite(v)}


def seconds(rows: list[dict[str, str]], label: str) -> float:
    """Median seconds per architecture: CPU seconds where recorded (steady on a shared machine), else wall."""
    values = [float(r.get("cpu_seconds") or r["seconds"]) for r in rows if r["label"] == label and int(r["seed"]) == 0]
    return statistics.median(values) if values else math.nan


def agreement(a: dict[str, float], b: dict[str, float], n_boot: int) -> dict[str, object]:
    """Tau and rho (with bootstrap CIs) over the architectures both ``a`` and ``b`` scored."""
    shared = sorted(a.keys() & b.keys())
    x = np.array([a[k] for k in shared])
    y = np.array([b[k] for k in shared])
    if len(shared) < 3:
        nan = (math.nan, math.nan)
        return {"n": len(shared), "tau": math.nan, "tau_ci": nan, "rho": math.nan, "rho_ci": nan}
    return {
        "n": len(shared),
        "tau": kendall_tau(x, y),
        "tau_ci": bootstrap_ci(x, y, kendall_tau, n_boot),
        "rho": spearman_rho(x, y),
        "rho_ci": bootstrap_ci(x, y, spearman_rho, n_boot),
    }


def paired_difference(
    a: dict[str, float], b: dict[str, float], truth: dict[str, float], n_boot: int, seed: int = 0
) -> tuple[float, tuple[float, float], int]:
    """Kendall tau of ``a`` minus that of ``b`` against ``truth`` over the architectures all three share, with a
    percentile bootstrap 95% interval resampling those architectures (one resample serves both taus: paired)."""
    shared = sorted(a.keys() & b.keys() & truth.keys())
    if len(shared) < 3:
        return math.nan, (math.nan, math.nan), len(shared)
    xy = np.array([[a[k], b[k]] for k in shared])  # resampled by row: both taus see the same architectures
    t = np.array([truth[k] for k in shared])

    def gap(pairs: np.ndarray, truth_: np.ndarray) -> float:
        return kendall_tau(pairs[:, 0], truth_) - kendall_tau(pairs[:, 1], truth_)

    return gap(xy, t), bootstrap_ci(xy, t, gap, n_boot, seed), len(shared)


def choose_default(archs: list[dict[str, str]], ref: list[dict[str, str]], cheap: list[dict[str, str]], **kw) -> str:
    """The rule that chose the default proxy: the best tau among estimates at <= ``share`` of the reference's
    seconds and n >= ``min_n``, and whether it beats ranking by params and by FLOPs (paired bootstrap of the
    tau gap)."""
    label, n_boot = kw.get("reference", "reference"), kw.get("n_boot", 1000)
    share, min_n = kw.get("share", 0.05), kw.get("min_n", 30)
    truth, ref_s = scores(ref, label, 0), seconds(ref, label)
    candidates = {}
    for name in dict.fromkeys(r["label"] for r in cheap):
        estimate = scores(cheap, name, 0)
        a = agreement(estimate, truth, n_boot)
        if a["n"] >= min_n and seconds(cheap, name) <= share * ref_s and math.isfinite(a["tau"]):
            candidates[name] = (a["tau"], estimate)
    if not candidates:
        return f"No estimate has n >= {min_n} at <= {share:.0%} of the reference's seconds yet."
    best = max(candidates, key=lambda k: candidates[k][0])
    rule = f"best tau at <= {share:.0%} of the reference's seconds, n >= {min_n}"
    lines = [f"By the rule ({rule}): **{best}**, tau {candidates[best][0]:.3f}."]
    for base in ("params", "flops"):
        trivial = {a["arch_id"]: float(a[base]) for a in archs}
        diff, ci, n = paired_difference(candidates[best][1], trivial, truth, n_boot)
        verdict = "beats it" if ci[0] > 0 else ("loses to it" if ci[1] < 0 else "is not distinguishable from it")
        lines.append(f"Against `{base}`: tau gap {diff:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}] (n={n}): {best} {verdict}.")
    return " ".join(lines)


def fmt(value: float, ci: tuple[float, float]) -> str:
    return "—" if math.isnan(value) else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def fidelity_table(archs: list[dict[str, str]], ref: list[dict[str, str]], cheap: list[dict[str, str]], **kw) -> str:
    """The markdown fidelity table; ``kw``: ``reference`` (label), ``n_boot``, ``last`` (see ``scores``)."""
    label, n_boot, last = kw.get("reference", "reference"), kw.get("n_boot", 1000), kw.get("last", 0)
    truth = scores(ref, label, 0, last)
    ref_s = seconds(ref, label)
    lines = [
        f"Reference: `{label}` seed 0 ({f'mean of the last {last} epochs' if last else 'final epoch'}) "
        f"on {len(truth)} of {len(archs)} architectures, "
        f"median {ref_s:.0f} s per architecture.",
        "",
        "| estimate | Kendall tau [95% CI] | Spearman rho [95% CI] | n | failed | s / arch | % of reference |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(name: str, estimate: dict[str, float], secs: float, failed: int = 0) -> None:
        a = agreement(estimate, truth, n_boot)
        share = f"{100 * secs / ref_s:.2f}" if ref_s > 0 and not math.isnan(secs) else "—"
        s = "—" if math.isnan(secs) else f"{secs:.1f}"
        tau, rho = fmt(a["tau"], a["tau_ci"]), fmt(a["rho"], a["rho_ci"])
        lines.append(f"| {name} | {tau} | {rho} | {a['n']} | {failed} | {s} | {share} |")

    ceiling = agreement(truth, scores(ref, label, 1, last), n_boot)
    lines.append(
        f"| *noise ceiling* (seed 0 vs 1) | {fmt(ceiling['tau'], ceiling['tau_ci'])} "
        f"| {fmt(ceiling['rho'], ceiling['rho_ci'])} | {ceiling['n']} | | {ref_s:.1f} | 100 |"
    )
    for base in ("params", "flops"):
        row(base, {a["arch_id"]: float(a[base]) for a in archs}, 0.0)
    for name in dict.fromkeys(r["label"] for r in cheap):
        failed = sum(1 for r in cheap if r["label"] == name and int(r["seed"]) == 0 and r["error"])
        shown = f"**{name}** (default)" if name == kw.get("default") else name
        row(shown, scores(cheap, name, 0), seconds(cheap, name), failed)
    return "\n".join(lines)


def flops_bands(archs: list[dict[str, str]], ref: list[dict[str, str]], cheap: list[dict[str, str]], **kw) -> str:
    """Does the default proxy follow the reference across model sizes? The architectures both scored, in
    ``bands`` equal parts by FLOPs: mean reference accuracy, mean proxy score, and tau within each part.
    A proxy that under-rates large models steers a search to small ones, whatever the budget."""
    label, default, bands = kw.get("reference", "reference"), kw.get("default", DEFAULT_LABEL), kw.get("bands", 3)
    truth, proxy = scores(ref, label, 0), scores(cheap, default, 0)
    flops = {a["arch_id"]: float(a["flops"]) for a in archs}
    shared = sorted(truth.keys() & proxy.keys() & flops.keys(), key=lambda k: flops[k])
    if len(shared) < 3 * bands:
        return f"Too few architectures scored by both `{label}` and `{default}` for {bands} FLOPs bands."
    lines = [
        f"`{default}` against `{label}` seed 0, the {len(shared)} architectures both scored in {bands} bands by FLOPs:",
        "",
        "| GFLOPs | n | mean reference accuracy | mean proxy score | tau within the band |",
        "|---|---|---|---|---|",
    ]
    for part in np.array_split(np.arange(len(shared)), bands):
        ids = [shared[i] for i in part]
        x, y = np.array([truth[k] for k in ids]), np.array([proxy[k] for k in ids])
        span = f"{flops[ids[0]] / 1e9:.2f}-{flops[ids[-1]] / 1e9:.2f}"
        lines.append(f"| {span} | {len(ids)} | {x.mean():.3f} | {y.mean():.3f} | {kendall_tau(x, y):.2f} |")
    return "\n".join(lines)


def curve_table(ref: list[dict[str, str]], label: str = "reference") -> str:
    """Mean / min / max reference val accuracy per epoch over the seed-0 architectures finished."""
    curves = [[float(v) for v in r["curve"].split()] for r in ref if r["label"] == label and int(r["seed"]) == 0]
    curves = [c for c in curves if c]
    if not curves:
        return "No reference curves yet."
    epochs = max(len(c) for c in curves)
    lines = ["| epoch | mean val acc | min | max | n |", "|---|---|---|---|---|"]
    for e in range(epochs):
        at = [c[e] for c in curves if len(c) > e]
        lines.append(f"| {e + 1} | {statistics.mean(at):.4f} | {min(at):.4f} | {max(at):.4f} | {len(at)} |")
    quarter = max(1, epochs // 4)
    gains = [c[-1] - c[-1 - quarter] for c in curves if len(c) > quarter]
    if gains:
        lines.append("")
        lines.append(
            f"Gain over the last {quarter} epochs: mean {statistics.mean(gains):+.4f}, "
            f"max {max(gains):+.4f}; {sum(g <= 0.01 for g in gains)} of {len(gains)} architectures gain at most 0.01."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=Path, default=HERE / "archs.csv")
    parser.add_argument("--reference", type=Path, default=HERE / "reference.csv")
    parser.add_argument("--cheap", type=Path, default=HERE / "cheap.csv")
    parser.add_argument("--label", default="reference", help="the reference rows' label")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--last", type=int, default=0, help="reference score: mean of the last N epochs (0: final)")
    parser.add_argument("--default", default=DEFAULT_LABEL, help="the label of the shipped default (bold)")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    archs, ref, cheap = read_csv(args.archs), ResultRows(args.reference).rows(), ResultRows(args.cheap).rows()
    text = "\n\n".join(
        [
            "## Fidelity against the reference",
            fidelity_table(
                archs, ref, cheap, reference=args.label, n_boot=args.n_boot, last=args.last, default=args.default
            ),
            choose_default(archs, ref, cheap, reference=args.label, n_boot=args.n_boot),
            "## The default proxy by model size",
            flops_bands(archs, ref, cheap, reference=args.label, default=args.default),
            "## Reference learning curves (seed 0)",
            curve_table(ref, args.label),
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
