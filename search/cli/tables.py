"""Rich tables of a study's results: the Pareto front, the baselines, the failed trials."""

from __future__ import annotations

import pandas as pd
from rich.table import Table


def pareto_table(front: pd.DataFrame, title: str = "Pareto front (within budget)") -> Table:
    table = Table(title=title)
    latency = "latency_ms" in front and front["latency_ms"].notna().any()
    columns = ("trial", "score", "GFLOPs", "params") + (("latency ms",) if latency else ()) + ("architecture",)
    for column in columns:
        table.add_column(column, justify="right" if column != "architecture" else "left")
    for row in front.itertuples():
        cells = [str(row.trial), f"{row.score:.4f}", f"{row.gflops:.3f}", f"{row.params / 1e6:.2f}M"]
        if latency:
            cells.append(f"{row.latency_ms:.2f}" if pd.notna(row.latency_ms) else "-")
        table.add_row(*cells, row.architecture)
    return table


def baselines_table(baselines: pd.DataFrame) -> Table:
    table = Table(title="hand-designed baselines (same evaluator)")
    for column in ("baseline", "score", "GFLOPs", "params", "architecture"):
        table.add_column(column, justify="left" if column in ("baseline", "architecture") else "right")
    for row in baselines.itertuples():
        score = f"{row.score:.4f}" if row.state == "COMPLETE" else f"failed: {row.fail_reason}"
        table.add_row(row.baseline, score, f"{row.gflops:.3f}", f"{row.params / 1e6:.2f}M", row.architecture)
    return table


def failures_table(failed: pd.DataFrame, title: str = "failed trials") -> Table:
    table = Table(title=title)
    for column in ("trial", "GFLOPs", "reason"):
        table.add_column(column, justify="right" if column != "reason" else "left")
    for row in failed.itertuples():
        table.add_row(str(row.trial), f"{row.gflops:.3f}", str(row.fail_reason or "no reason recorded"))
    return table
