"""``report.html``: one self-contained page per run that a user can open offline and share.

It shows what was found and how sure we are (the pick, its fidelity, the verdict against the
baselines scored at the same rung), the chosen architecture drawn (``search/drawing.py``), the
front, history and importance figures (``search/plots.py``, plotly.js embedded once) and the
commands that export, train and deploy the pick. Everything is read from one ``RunResults``.
"""

from __future__ import annotations

import importlib.metadata
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from vitsearch.space.files import atomic_write_text

from .drawing import ArchView, arch_svg, arch_view
from .results import RunResults, arch_of

REPORT_FILE = "report.html"

# Registered first in <head>: an error in any later script is written onto the page, where the
# browser test (and a user's "view source") finds it.
_ERROR_TRAP = (
    "<script>window.addEventListener('error', function (e) { var d = document.documentElement;"
    " d.setAttribute('data-js-errors', (d.getAttribute('data-js-errors') || '') + e.message + '\\n'); });</script>"
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #555; margin-top: 0; }
.answer { background: #f3f7fb; border-left: 4px solid #1f77b4; padding: 0.8rem 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:last-child, td:last-child { text-align: left; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; }
nav a { margin-right: 1rem; }
"""


def write_report(results: RunResults, out: Path, figs: dict[str, go.Figure] | None = None) -> Path:
    """Write ``out/report.html`` (atomically) from the run's results and, when given, its figures."""
    from .plots import figures

    page = report_html(results, out, figs or figures(results))
    return atomic_write_text(out / REPORT_FILE, page)


def report_html(results: RunResults, out: Path, figs: dict[str, go.Figure]) -> str:
    """The page as one string: head, then each section in reading order."""
    study = results.study.study_name
    sections = [
        ("found", "What was found", _found(results)),
        ("architecture", "The chosen architecture", _architecture(results)),
        ("front", "Accuracy against complexity", _figure(figs["pareto.html"], embed_js=True) + _tables(results)),
        ("history", "Search history", _figure(figs["history.html"])),
        ("importance", "Which choices matter", _figure(figs["importance.html"])),
        ("use", "Use it", _commands(results, out)),
    ]
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{escape(title)}</h2>{html}</section>' for key, title, html in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{_ERROR_TRAP}'
        f"<title>vitsearch report: {escape(study)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>vitsearch report: {escape(study)}</h1>{_meta(results)}<nav>{nav}</nav>{body}</body></html>\n"
    )


def _meta(results: RunResults) -> str:
    search = results.study.user_attrs.get("search", {})
    counts = results.trials["state"].value_counts().to_dict() if not results.trials.empty else {}
    states = ", ".join(f"{n} {state.lower()}" for state, n in counts.items()) or "no trials yet"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<p class="meta">space {escape(str(search.get("space", "?")))}, budget {results.budget / 1e9:g} GFLOPs at '
        f"{search.get('img_size', '?')} px, {search.get('num_classes', '?')} classes, evaluator "
        f"{escape(str(search.get('evaluator', '?')))}; trials: {escape(states)}. "
        f"Written {when} by vitsearch {_version()}.</p>"
    )


def _version() -> str:
    try:
        return importlib.metadata.version("vitsearch")
    except importlib.metadata.PackageNotFoundError:
        return "(source checkout)"


def _found(results: RunResults) -> str:
    row = results.best_row
    if row is None:
        return "<p>No architecture has been evaluated within the budget yet.</p>"
    at_top = _evaluated_at(results, row["rung"])
    verdict = results.verdict_line() or "No baselines were scored in this run (it ran with --no-baselines)."
    return (
        f'<div class="answer"><p><b>Trial {int(row["trial"])}</b>: {row["gflops"]:.3f} GFLOPs '
        f"({row['gflops'] / (results.budget / 1e9):.0%} of the budget), {row['params'] / 1e6:.2f} M params, "
        f"score <b>{row['score']:.4f}</b> at {escape(str(row['fidelity']))}.</p>"
        f"<p>{escape(verdict)}</p></div>"
        "<p><b>How sure.</b> The score is what the evaluator measured at the fidelity named above; "
        f"the pick is the best of the {at_top} architectures evaluated at that fidelity, and the front and "
        "the baselines are compared at that fidelity only (lower rungs favour small models). A proxy score "
        "ranks architectures; it is not the accuracy a full training reaches. Train the pick (below) to know "
        "that, and see the project's search-versus-baselines study for how often the pick beats hand design "
        "once trained.</p>"
    )


def _evaluated_at(results: RunResults, rung) -> int:
    done = results.trials[results.trials["state"] == "COMPLETE"]
    if pd.notna(rung) and "rung" in done:
        done = done[done["rung"] == rung]
    return int(done["digest"].nunique())


def pick_view(results: RunResults) -> ArchView | None:
    """The drawing's data for the run's pick, at the run's target profile; None before anything is evaluated."""
    if results.best is None:
        return None
    arch, _ = arch_of(results.study, results.best.number)
    search = results.study.user_attrs.get("search", {})
    return arch_view(arch, img_size=search.get("img_size", 224), num_classes=search.get("num_classes", 1000))


def _architecture(results: RunResults) -> str:
    view = pick_view(results)
    if view is None:
        return "<p>Nothing to draw yet.</p>"
    rows = "".join(
        f"<tr><td>{s.index}</td><td>{escape(s.entry_label or '-')}</td><td>{s.width}</td>"
        f"<td>{s.grid[0]}x{s.grid[1]}</td><td>{len(s.layers)}</td><td>{s.flops / 1e9:.3f}</td>"
        f"<td>{s.flops_share:.0%}</td><td>{s.params / 1e6:.2f}</td><td>{s.params_share:.0%}</td></tr>"
        for s in view.stages
    )
    table = (
        "<table><tr><th>stage</th><th>entry</th><th>width</th><th>tokens</th><th>layers</th><th>GFLOPs</th>"
        f"<th>of FLOPs</th><th>M params</th><th>of params</th></tr>{rows}</table>"
    )
    return arch_svg(view) + table


def _figure(fig: go.Figure, embed_js: bool = False) -> str:
    # The first figure carries plotly.js inline; the others use it, so the page embeds it once.
    return fig.to_html(full_html=False, include_plotlyjs=embed_js)


def _tables(results: RunResults) -> str:
    front = results.front
    columns = ["trial", "score", "gflops", "params", "architecture"]
    html = "<h3>Pareto front</h3>" + _frame_table(front, columns) if not front.empty else ""
    best = results.best_row
    baselines = results.baselines if best is None else results.baselines_at(best["rung"])
    if not baselines.empty:
        html += "<h3>Hand-designed baselines (same evaluator, same fidelity)</h3>"
        html += _frame_table(baselines, ["baseline", "score", "gflops", "params", "architecture"])
    return html


def _frame_table(frame: pd.DataFrame, columns: list[str]) -> str:
    def cell(column: str, value) -> str:
        if column == "params":
            return f"{value / 1e6:.2f}M"
        if isinstance(value, float):
            return f"{value:.4f}" if column == "score" else f"{value:.3f}"
        return escape(str(value))

    head = "".join(f"<th>{'GFLOPs' if c == 'gflops' else c}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell(c, getattr(r, c))}</td>" for c in columns) + "</tr>"
        for r in frame[columns].itertuples()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _commands(results: RunResults, out: Path) -> str:
    run = str(out)
    search = results.study.user_attrs.get("search", {})
    classes = search.get("num_classes", 1000)
    lines = [
        "# the chosen architecture as a config (best.yaml is already in the run folder)",
        f"vitsearch export {run} -o arch.yaml",
        "# train it with the reference recipe (AdamW, cosine, mixup/cutmix, EMA); writes <run>/train/",
        f"vitsearch train {run}/best.yaml --data cifar10:/path/to/cifar10 --img-size 32 --epochs 100",
        "# deploy: reparameterised weights (safetensors) and an ONNX file checked against onnxruntime",
        f"vitsearch export {run} --deploy --weights {run}/train/model.safetensors -o {run}/deployed",
    ]
    python = (
        "from vitsearch.space import ArchConfig, build_model\n"
        f'model = build_model(ArchConfig.load("{run}/best.yaml"), num_classes={classes})'
    )
    return f"<pre>{escape(chr(10).join(lines))}</pre><p>In Python:</p><pre>{escape(python)}</pre>"
