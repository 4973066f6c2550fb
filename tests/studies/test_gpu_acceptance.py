"""studies/gpu_acceptance.py --device cpu --quick: every step runs and the report is written."""

from __future__ import annotations

import json

import pytest
from study_scripts import load_study


@pytest.mark.slow
def test_the_quick_cpu_mode_runs_every_step(tmp_path):
    report = load_study("gpu_acceptance.py").main(["--device", "cpu", "--quick", "--out", str(tmp_path)])
    assert report["tests"] == {"skipped": "--device cpu"}
    assert len(report["throughput"]) == 2 * 2 * 2  # two models, ours and timm's, train and inference
    assert all(r["error"] == "" and r["images_per_s"] > 0 for r in report["throughput"]), report["throughput"]
    assert all(r["error"] == "" and r["seconds"] > 0 for r in report["trainings"].values()), report["trainings"]
    assert report["search"]["exit_code"] == 0, report["search"]["error"]
    assert "stages" in report["search"]["best"]
    assert json.loads((tmp_path / "acceptance.json").read_text())["device"] == "cpu"
    table = (tmp_path / "acceptance.md").read_text()
    assert "| deit_tiny | timm | False | train |" in table and "default search" in table
