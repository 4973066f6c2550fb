import json

import pytest
import timm
import torch
from deploy_helpers import TINY_SPACE, WidthEvaluator, mixer_arch
from typer.testing import CliRunner

from vitsearch.search.cli import app
from vitsearch.search.deploy import export_deployed
from vitsearch.space import get_preset, list_mixers
from vitsearch.space.onnx_export import onnx_session, random_images

runner = CliRunner()


@pytest.mark.parametrize("mixer", list_mixers())
def test_every_mixer_exports_with_onnxruntime_parity(mixer, tmp_path):
    # CCA and a block-diagonal MLP add the training-only branch and its fold to every case.
    arch = mixer_arch(mixer, mlp_groups=2, cca=True)
    result = export_deployed(arch, tmp_path, img_size=32, num_classes=10)
    parity = result.info["parity"]
    assert parity["onnxruntime_vs_torch"] < 1e-4
    assert parity["reparameterized_vs_train_form"] < 1e-4
    # the file runs at another batch size too (dynamic batch axis), and matches timm's build
    session = onnx_session(tmp_path / "model.onnx")
    x = random_images(3, 3, 32, seed=5)
    (out,) = session.run(None, {"images": x.numpy()})
    model = timm.create_model("vitsearch", arch=str(tmp_path / "arch.yaml"), pretrained=True)
    assert model.num_classes == 10 and model.img_size == 32
    with torch.no_grad():
        assert (torch.from_numpy(out) - model(x)).abs().max() < 1e-4


def test_presets_with_pooling_stems_and_rope_export(tmp_path):
    arch = get_preset("psvit_tiny").replace(stages=get_preset("psvit_tiny").stages[:2])
    for i, spec in enumerate((arch, "test_metaformer", get_preset("vix_fnet"))):
        info = export_deployed(spec, tmp_path / str(i), img_size=32, num_classes=10).info
        assert info["parity"]["onnxruntime_vs_torch"] < 1e-4


def test_export_cli_from_a_run_dir_uses_trained_weights_and_rejects_bad_input(tmp_path):
    from vitsearch.search.driver import SearchConfig, run_search
    from vitsearch.search.outputs import write_outputs
    from vitsearch.search.results import RunResults
    from vitsearch.space.search_space import SearchSpace

    run = tmp_path / "run"
    run.mkdir()
    config = SearchConfig(
        space=SearchSpace.from_dict(TINY_SPACE),
        evaluator=WidthEvaluator(),
        budget=10**9,
        trials=2,
        img_size=32,
        num_classes=10,
        storage=f"sqlite:///{run / 'study.db'}",
        study_name="toy",
    )
    write_outputs(RunResults.of(run_search(config).study), run, plots=False)
    fresh = runner.invoke(app, ["export", str(run), "--deploy", "-o", str(tmp_path / "fresh")])
    assert fresh.exit_code == 0, fresh.output
    info = json.loads((tmp_path / "fresh" / "export.json").read_text())
    assert info["img_size"] == 32 and info["num_classes"] == 10 and "seed 0" in info["weights_source"]

    # weights that `vitsearch train` left in <run>/train are picked up
    from vitsearch.space.weights import model_from_weights, save_weights

    torch.manual_seed(3)
    trained = timm.create_model("vitsearch", arch=str(run / "best.yaml"), img_size=32, num_classes=10)
    save_weights(trained, run / "train" / "model.safetensors", "train")
    done = runner.invoke(app, ["export", str(run), "--deploy", "-o", str(tmp_path / "trained")])
    assert done.exit_code == 0, done.output
    deployed, meta = model_from_weights(tmp_path / "trained" / "model.safetensors")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), trained.eval()(x), atol=1e-5, rtol=1e-5)
    assert meta["form"] == "deployed"

    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    cases = {
        ("test_vit", "--weights", str(tmp_path / "bad.pt")): "weights-only torch checkpoint",
        ("missing.yaml",): "missing.yaml",
        ("test_vit", "--weights", str(tmp_path / "nope.safetensors")): "no such weights file",
        ("test_vit", "--weights", str(run / "train" / "model.safetensors")): "holds weights of architecture",
    }
    for args, words in cases.items():
        result = runner.invoke(app, ["export", *args, "--deploy", "-o", str(tmp_path / "x")])
        assert result.exit_code == 2 and words in result.output, result.output
        assert "Traceback" not in result.output
