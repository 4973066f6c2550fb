"""The files of a run directory, written from one ``RunResults``: CSVs, the best architecture, the pages."""

from __future__ import annotations

from pathlib import Path

from vitsearch.space.files import atomic_write_text

from .plots import figures, write_plots
from .results import RunResults, arch_of
from .run_report import write_report


def write_outputs(results: RunResults, out: Path, plots: bool = True) -> list[Path]:
    """trials.csv, pareto.csv, baselines.csv, best.yaml and (optionally) the plots and report.html, each atomically."""
    written = [out / "trials.csv", out / "pareto.csv"]
    atomic_write_text(written[0], results.trials.to_csv(index=False))
    atomic_write_text(written[1], results.front.to_csv(index=False))
    if not results.baselines.empty:
        written.append(atomic_write_text(out / "baselines.csv", results.baselines.to_csv(index=False)))
    if results.best is not None:
        arch, _ = arch_of(results.study, results.best.number)
        written.append(atomic_write_text(out / "best.yaml", arch.to_yaml()))
    if plots:
        figs = figures(results)  # drawn once: the importance figure fits fANOVA
        written += write_plots(results, out, figs)
        written.append(write_report(results, out, figs))
    return written
