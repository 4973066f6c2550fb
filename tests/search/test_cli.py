"""The CLI through typer's CliRunner: outputs, JSON contract, one-line errors with exit 2."""

import json

import pytest
from typer.testing import CliRunner

from vitsearch.evaluators.complexity import analytic_flops, count_flops
from vitsearch.search.cli import app
from vitsearch.space import build_model, get_preset, list_presets

runner = CliRunner()


def test_flops_json_reports_params_and_flops():
    result = runner.invoke(app, ["flops", "deit_tiny", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["params"] == 5_717_416
    assert abs(report["flops"] / 1.2584e9 - 1) < 1e-3
    assert sum(part["flops"] for part in report["parts"]) == report["flops"]
    assert sum(part["params"] for part in report["parts"]) == report["params"]


def test_flops_table_and_profile_options():
    result = runner.invoke(app, ["flops", "test_vit", "--img-size", "32", "--num-classes", "10"])
    assert result.exit_code == 0, result.output
    assert "stages.0" in result.stdout
    total = next(line for line in result.stdout.splitlines() if "total" in line)
    want = analytic_flops("test_vit", img_size=32, num_classes=10)  # at the profile asked for, not 224 px
    assert want != analytic_flops("test_vit") and f"{want / 1e9:.4f}" in total


def test_flops_from_a_config_file(tmp_path):
    path = tmp_path / "arch.yaml"
    get_preset("test_metaformer").save(path)
    result = runner.invoke(app, ["flops", str(path), "--img-size", "64", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["img_size"] == 64
    assert report["flops"] == analytic_flops(get_preset("test_metaformer"), img_size=64) > 0


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "neither a preset"),
        ("stages: [", "not valid YAML"),
        (
            "stages:\n- {width: 192, depth: 2, block: {mixer: {type: attention, heads: 5}}}\n",
            "heads: 5 does not divide",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, message):
    target = "no_such_preset"
    if content is not None:
        target = str(tmp_path / "arch.yaml")
        (tmp_path / "arch.yaml").write_text(content)
    result = runner.invoke(app, ["flops", target])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


def test_mixers_lists_the_registry():
    from vitsearch.space import list_mixers

    result = runner.invoke(app, ["mixers"])
    assert result.exit_code == 0
    for name in list_mixers():
        assert name in result.stdout


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, vitsearch.search.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", list_presets())
def test_flops_of_every_preset_deployed_and_train_form(name):
    deployed = runner.invoke(app, ["flops", name, "--img-size", "32", "--num-classes", "10", "--json"])
    train = runner.invoke(app, ["flops", name, "--img-size", "32", "--num-classes", "10", "--json", "--train-form"])
    assert deployed.exit_code == 0 and train.exit_code == 0, deployed.output + train.output
    deployed, train = json.loads(deployed.stdout), json.loads(train.stdout)
    assert deployed["form"] == "deployed" and train["form"] == "train"
    assert deployed["params"] <= train["params"]  # reparameterisation only removes weights
    # the deployed count is the analytic one; the train form's is fvcore's on the model as built (not reparameterised)
    assert deployed["flops"] == analytic_flops(name, img_size=32, num_classes=10) > 0
    model = build_model(get_preset(name), img_size=32, num_classes=10)
    assert train["flops"] == count_flops(model, img_size=32) >= deployed["flops"]
