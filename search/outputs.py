"""The files of a run directory, written from one ``RunResults``: CSVs, the best architecture, the plots."""

from __future__ import annotations

from pathlib import Path

from vitsearch.space.files import atomic_write_text

from .plots import write_plots
from .results import RunResults, arch_of


def write_outputs(results: RunResults, out: Path, plots: bool = True) -> list[Path]:
    """trials.csv, pareto.csv, baselines.csv, best.yaml and (optionally) the HTML pages, each atomically."""
    written = [out / "trials.csv", out / "pareto.csv"]
    atomic_write_text(written[0], results.trials.to_csv(index=False))
    atomic_write_text(written[1], results.front.to_csv(index=False))
    if not results.baselines.empty:
        written.append(atomic_write_text(out / "baselines.csv", results.baselines.to_csv(index=False)))
    if results.best is not None:
        arch, _ = arch_of(results.study, results.best.number)
        written.append(atomic_write_text(out / "best.yaml", arch.to_yaml()))
    if plots:
        written += write_plots(results, out)
    return written
