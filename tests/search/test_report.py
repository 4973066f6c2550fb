"""report.html: written by every run and by `vitsearch report`, self-contained, and drawn by a real browser."""

import re
import shutil
import subprocess

import pytest
from conftest import CountingEvaluator
from typer.testing import CliRunner

from vitsearch.search.cli import app
from vitsearch.search.driver import SearchConfig, load_study, run_search
from vitsearch.search.outputs import write_outputs
from vitsearch.search.plan import RunPlan
from vitsearch.search.results import RunResults, arch_of

BUDGET = 40_000_000
PLOTLY_BUNDLE = "plotly.js v"  # the licence header of the embedded bundle


@pytest.fixture
def run_dir(toy_space, tmp_path):
    config = SearchConfig(
        space=toy_space, evaluator=CountingEvaluator(BUDGET), budget=BUDGET, trials=6,
        storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="toy-report",
    )  # fmt: skip
    written = write_outputs(RunResults.of(run_search(config).study), tmp_path)
    assert tmp_path / "report.html" in written
    return tmp_path


def test_report_is_self_contained_with_the_pick_drawn_the_plots_and_the_commands(run_dir):
    html = (run_dir / "report.html").read_text()
    assert html.count(PLOTLY_BUNDLE) == 1  # plotly.js embedded once, used by every figure
    assert html.count("Plotly.newPlot") == 3  # front, history, importance
    assert not re.search(r"<script[^>]+src=", html)  # nothing fetched: it opens offline
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="arch-drawing"' in html
    results = RunResults.of(load_study(str(run_dir), None))
    row = results.best_row
    assert f"<b>Trial {int(row['trial'])}</b>: {row['gflops']:.3f} GFLOPs" in html
    assert html.count('class="layer"') == sum(len(s.blocks) for s in arch_of(results.study)[0].stages)
    assert f"vitsearch export {run_dir} -o arch.yaml" in html
    assert f"vitsearch train {run_dir}/best.yaml" in html
    assert f"vitsearch export {run_dir} --deploy --weights {run_dir}/train/model.safetensors" in html


def test_a_study_with_nothing_evaluated_yet_still_gets_its_page(toy_space, tmp_path):
    """An interrupted first trial still leaves a report (the outputs are written on every exit)."""
    config = SearchConfig(
        space=toy_space, evaluator=CountingEvaluator(BUDGET), budget=BUDGET, trials=3,
        storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="empty",
    )  # fmt: skip
    write_outputs(RunResults.of(RunPlan.check(config).open().study), tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "No architecture has been evaluated within the budget yet." in html and "Nothing to draw yet." in html


def test_report_command_rewrites_it_and_show_draws_the_pick(run_dir):
    (run_dir / "report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "report.html").stat().st_size > 1_000_000  # with plotly.js inside
    shown = CliRunner().invoke(app, ["show", str(run_dir)], terminal_width=120)
    assert shown.exit_code == 0, shown.output
    assert "chosen architecture: trial" in shown.output and "stage 0: width" in shown.output


def test_report_of_a_missing_run_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1, result.output


def _browser() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.slow
def test_report_renders_in_headless_chromium_without_a_javascript_error(run_dir):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium: the browser test of report.html needs Debian's chromium (.ci/run installs it)")
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--virtual-time-budget=10000", "--dump-dom", (run_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    dom = done.stdout
    assert done.returncode == 0 and "<body" in dom, done.stderr[-2000:]
    # each drawn plotly figure holds <svg class="main-svg">: three figures, each drawn
    drawn = re.findall(r'<div id="([0-9a-f-]+)" class="plotly-graph-div.*?class="main-svg"', dom, flags=re.S)
    assert len(set(drawn)) == 3, "a plot did not draw"
    assert not re.search(r"<html[^>]*data-js-errors=", dom), re.search(r'data-js-errors="([^"]*)"', dom).group(1)
    assert "Uncaught" not in done.stderr, done.stderr[-2000:]
