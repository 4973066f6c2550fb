import dataclasses
import sys
import types

import pytest
import torch
from typer.testing import CliRunner

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.search.cli import app
from vitsearch.search.distill import soft_distillation
from vitsearch.search.train import TrainJob, TrainRecipe, train
from vitsearch.search.train_weights import load_inherited, supernet_start
from vitsearch.space import build_model, get_preset
from vitsearch.space.weights import model_from_weights

# 256 synthetic 32 px images of 4 classes, batch 32: one epoch is 8 steps.
RECIPE = TrainRecipe(epochs=1, batch_size=32, lr=1e-3, warmup_epochs=0, ema_decay=0.99)


def job(tmp_path, name="run", arch="test_vit", **changes):
    recipe = changes.pop("recipe", RECIPE)
    return TrainJob(arch=arch, out=tmp_path / name, data="synthetic", img_size=32, recipe=recipe, **changes)


def test_one_epoch_writes_a_loadable_model_and_a_report(tmp_path):
    report = train(job(tmp_path))
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} >= {"last.pt", "model.safetensors", "arch.yaml", "report.json"}
    assert 0.0 <= report["val_acc"] <= 1.0 and report["epochs"] == 1
    assert report["flops"] == analytic_flops("test_vit", 32, num_classes=4)
    assert report["params"] > 0 and report["latency_ms"] > 0
    blob = torch.load(out / "last.pt", weights_only=True)  # nothing but tensors and plain containers
    assert blob["epoch"] == 1 and blob["ema"] is not None
    model, meta = model_from_weights(out / "model.safetensors")
    assert meta["form"] == "train" and meta["num_classes"] == 4 and model.img_size == 32


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    recipe = TrainRecipe(epochs=2, batch_size=32, lr=1e-3, warmup_epochs=1, ema_decay=0.99)
    train(job(tmp_path, "whole", recipe=recipe))

    class Stop(Exception):
        pass

    def stop_after_first(record):
        raise Stop

    with pytest.raises(Stop):
        train(job(tmp_path, "cut", recipe=recipe), on_epoch=stop_after_first)
    with pytest.raises(Exception, match="--resume"):
        train(job(tmp_path, "cut", recipe=recipe))
    train(job(tmp_path, "cut", recipe=recipe, resume=True))
    whole, _ = model_from_weights(tmp_path / "whole" / "model.safetensors")
    cut, _ = model_from_weights(tmp_path / "cut" / "model.safetensors")
    for (name, a), b in zip(whole.state_dict().items(), cut.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_soft_distillation_is_temperature_scaled_kl():
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    assert soft_distillation(t, t, 2.0).abs() < 1e-6
    manual = (t.softmax(-1) * (t.log_softmax(-1) - s.log_softmax(-1))).sum(-1).mean()
    torch.testing.assert_close(soft_distillation(s, t, 1.0), manual)


def test_distillation_with_module_imitation_trains_a_mixer_free_student(tmp_path):
    train(job(tmp_path, "teacher"))
    student = get_preset("test_vit")
    identity = student.stages[0].blocks[0].mixer.__class__(type="identity")
    blocks = tuple(b.__class__(mixer=identity, mlp_ratio=b.mlp_ratio) for b in student.stages[0].blocks)
    student = student.replace(stages=(student.stages[0].__class__(width=64, blocks=blocks),))
    plain = train(job(tmp_path, "plain", arch=student))
    taught = train(
        job(
            tmp_path,
            "taught",
            arch=student,
            teacher_weights=tmp_path / "teacher" / "model.safetensors",
            recipe=TrainRecipe(**{**RECIPE.to_dict(), "imitation_weight": 1.0}),
        )
    )
    assert taught["teacher"].endswith("model.safetensors")
    assert taught["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    # the deployed student has no token mixer left, and the report counts that form
    assert taught["flops"] == analytic_flops(student, 32, num_classes=4)


def test_from_supernet_trains_the_adapted_path_and_inherits_weights(tmp_path, monkeypatch):
    arch = get_preset("test_vit")
    path = arch.replace(stem=dataclasses.replace(arch.stem, patch_size=4))  # what a proxy profile would build
    torch.manual_seed(7)
    donor = build_model(path, img_size=32, num_classes=1000)  # another class count: head starts fresh
    calls = []

    class Supernet:
        profile = types.SimpleNamespace(img_size=32)

        def adapt(self, wanted):
            calls.append(wanted.digest())
            return path

        def extract(self, wanted, adapted=False):
            assert adapted and wanted == path
            return donor

    fake = types.ModuleType("vitsearch.evaluators.supernet")
    fake.load_supernet = lambda checkpoint: Supernet()
    monkeypatch.setitem(sys.modules, "vitsearch.evaluators.supernet", fake)
    built, size, state = supernet_start(tmp_path / "supernet.ckpt", arch)
    assert calls == [arch.digest()] and built == path and size == 32
    model = build_model(built, img_size=size, num_classes=4)
    skipped = load_inherited(model, state, "supernet")
    assert skipped == ["head.weight", "head.bias"]
    torch.testing.assert_close(model.stages[0].blocks[0].mlp.fc1.weight, donor.stages[0].blocks[0].mlp.fc1.weight)


def test_train_cli_reports_bad_input_in_one_line(tmp_path):
    runner = CliRunner()
    base = ["--data", "synthetic", "--img-size", "32", "--epochs", "1", "--out", str(tmp_path / "o")]
    cases = {
        ("missing.yaml",): "missing.yaml",
        ("test_vit", "--from-supernet", "x.ckpt"): "x.ckpt: no supernet checkpoint here",
        ("test_vit", "--teacher", "test_vit"): "a teacher needs its weights",
        ("test_vit", "--teacher-weights", str(tmp_path / "none.pt")): "no such weights file",
        ("test_vit", "--batch-size", "31"): "even batch size",
        ("test_vit", "--data", "nowhere"): "not a known dataset",
    }
    for args, words in cases.items():
        rest = base[2:] if "--data" in args else base
        result = runner.invoke(app, ["train", *args, *rest])
        assert result.exit_code == 2, result.output
        assert words in result.output and "Traceback" not in result.output
