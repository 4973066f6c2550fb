"""`vitsearch run / show / plot / export / spaces / validate-proxy` through CliRunner on tiny settings."""

import json

import pandas as pd
import pytest
import yaml
from conftest import TOY_SPACE
from typer.testing import CliRunner

from vitsearch.evaluators.complexity import count_flops
from vitsearch.search.cli import app
from vitsearch.space import ArchConfig

runner = CliRunner()
FAST = ["--evaluator", "grad_norm", "--data", "synthetic", "--set", "batch_size=4", "--set", "width_mult=0.25"]


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(TOY_SPACE))
    return path


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_run_writes_every_output_within_budget_and_resumes(space_file, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--space", space_file, "--budget", "40M", "--trials", 3, "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    for name in ("trials.csv", "pareto.csv", "pareto.html", "history.html", "importance.html", "best.yaml", "study.db"):
        assert (out / name).exists(), name
    front = pd.read_csv(out / "pareto.csv")
    assert (front["flops"] <= 40e6).all()
    best = ArchConfig.load(out / "best.yaml")
    assert count_flops(best) in set(front["flops"])

    again = invoke("run", "--space", space_file, "--budget", "40M", "--trials", 4, "--out", out, *FAST)
    assert again.exit_code == 0, again.output
    assert "resuming at 3/4" in " ".join(again.output.split())  # the console wraps at 80 columns
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 4

    shown = invoke("show", out)
    assert shown.exit_code == 0 and "Pareto front" in shown.output
    exported = invoke("export", out, "-o", tmp_path / "arch.json")
    assert exported.exit_code == 0, exported.output
    assert ArchConfig.from_dict(json.loads((tmp_path / "arch.json").read_text())) == best
    flops = invoke("flops", out / "best.yaml", "--json")
    assert json.loads(flops.stdout)["flops"] == count_flops(best)
    assert invoke("plot", out).exit_code == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budget", "lots"], "--budget: cannot read 'lots'"),
        (["--budget", "1M"], "below the smallest architecture"),
        (["--budget", "40M", "--sampler", "grid"], "--sampler: unknown 'grid'"),
        (["--budget", "40M", "--evaluator", "oracle"], "unknown evaluator 'oracle'"),
        (["--budget", "40M", "--max-params", "many"], "--max-params: cannot read"),
        (["--budget", "40M", "--latency-method", "guess"], "--latency-method: unknown 'guess' (choose from measured"),
    ],
)
def test_run_bad_input_is_one_line(space_file, tmp_path, args, message):
    result = invoke("run", "--space", space_file, "--out", tmp_path / "r", *FAST[:2], *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_unknown_space_and_run_dir(tmp_path):
    result = invoke("run", "--space", "nowhere", "--budget", "2G")
    assert result.exit_code == 2 and "--space" in result.output
    result = invoke("show", tmp_path)
    assert result.exit_code == 2 and "no study.db" in result.output


def test_existing_files_survive_a_failed_run(space_file, tmp_path):
    out = tmp_path / "run"
    assert invoke("run", "--space", space_file, "--budget", "40M", "--trials", 2, "--out", out, *FAST).exit_code == 0
    before = (out / "best.yaml").read_text()
    result = invoke("run", "--space", space_file, "--budget", "1M", "--trials", 3, "--out", out, *FAST)
    assert result.exit_code == 2
    assert (out / "best.yaml").read_text() == before


def test_validate_proxy_toy(space_file, tmp_path):
    result = invoke(
        "validate-proxy", "--space", space_file, "--budget", "40M", "--n", 3, "--out", tmp_path,
        "--evaluator", "grad_norm", "--reference", "synflow", "--data", "synthetic",
        "--set", "batch_size=4", "--ref-set", "batch_size=4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Kendall tau" in result.output and "params alone" in result.output and "flops alone" in result.output
    assert len(pd.read_csv(tmp_path / "validate_grad_norm_vs_synflow.csv")) == 3


def test_validate_proxy_several_estimates_and_the_noise_ceiling(space_file, tmp_path):
    result = invoke(
        "validate-proxy", "--space", space_file, "--budget", "40M", "--n", 4, "--out", tmp_path,
        "--evaluator", "grad_norm", "--evaluator", "naswot", "--reference", "synflow", "--data", "synthetic",
        "--set", "batch_size=4", "--ref-set", "batch_size=4", "--ceiling", 3,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ceiling" in result.output and "params alone" in result.output
    for name in ("grad_norm", "naswot"):
        assert len(pd.read_csv(tmp_path / f"validate_{name}_vs_synflow.csv")) == 4
    ceiling = json.loads((tmp_path / "ceiling_synflow.json").read_text())
    assert ceiling["n"] == 3 and ceiling["evaluator"]["settings"]["seed"] == 1  # the reference against itself
    assert ceiling["reference"]["settings"]["seed"] == 0

    bad = invoke(
        "validate-proxy", "--space", space_file, "--budget", "40M", "--n", 3, "--out", tmp_path / "bad",
        "--reference", "synflow", "--data", "synthetic", "--ceiling", 5,
    )  # fmt: skip
    assert bad.exit_code == 2 and "--ceiling: 5 is more than the --n 3" in bad.output


def test_run_scores_the_baselines_and_says_what_the_best_beat(space_file, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--space", space_file, "--budget", "500M", "--trials", 2, "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    baselines = pd.read_csv(out / "baselines.csv")
    assert set(baselines["baseline"]) == {"deit@0.5G", "poolformer@0.5G", "schemeformer@0.5G"}
    assert (baselines["flops"] <= 500e6).all()
    assert "baseline deit@0.5G (grad_norm rung 0): score" in result.output
    assert "best found (grad_norm rung 0 score" in result.output
    assert (pd.read_csv(out / "trials.csv")["state"] == "COMPLETE").sum() == 2  # baselines are not trials
    assert "hand-designed baselines" in (out / "pareto.html").read_text()
    shown = invoke("show", out)
    assert shown.exit_code == 0 and "hand-designed baselines" in shown.output and "best found" in shown.output

    bare = tmp_path / "bare"
    result = invoke(
        "run", "--space", space_file, "--budget", "500M", "--trials", 2, "--out", bare, "--no-baselines", *FAST
    )
    assert result.exit_code == 0, result.output
    assert not (bare / "baselines.csv").exists() and "baseline deit" not in result.output


def test_run_checks_the_budget_once_and_builds_one_sampler(space_file, tmp_path, monkeypatch):
    """The run plan is checked once and its study opened once per process (was: 3 budget checks, 4 samplers)."""
    from vitsearch.search import plan

    calls = {"budget": 0, "sampler": 0}
    check_budget, tpe = plan.check_budget, plan.SAMPLERS["tpe"]

    def counted_check(config):
        calls["budget"] += 1
        return check_budget(config)

    def counted_tpe(seed):
        calls["sampler"] += 1
        return tpe(seed)

    monkeypatch.setattr(plan, "check_budget", counted_check)
    monkeypatch.setitem(plan.SAMPLERS._entries, "tpe", counted_tpe)  # the registry's own dict, for this test
    out = tmp_path / "run"
    result = invoke(
        "run", "--space", space_file, "--budget", "40M", "--trials", 2, "--out", out, "--no-baselines", *FAST
    )
    assert result.exit_code == 0, result.output
    assert calls == {"budget": 1, "sampler": 1}
