"""The training engine: unchanged CPU proxy scores, devices, precision, one top1."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from vitsearch.evaluators.base import DivergedError
from vitsearch.evaluators.proxy import ProxyEvaluator
from vitsearch.evaluators.supernet.train import SupernetTrainConfig
from vitsearch.evaluators.training import (
    Engine,
    compiled,
    make_optimizer,
    make_scheduler,
    place_model,
    resolve_device,
    resolve_precision,
    to_device,
)
from vitsearch.evaluators.training.device import prefers_channels_last, visible_gpus, worker_gpus
from vitsearch.evaluators.training.engine import tensor_batches, top1
from vitsearch.search.train import TrainRecipe
from vitsearch.space import ConfigError, build_model

BEFORE = json.loads((Path(__file__).parent / "proxy_scores_before_engine.json").read_text())


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_cpu_proxy_score_equals_the_pre_engine_value(name):
    # Recorded with the proxy's own loop before it moved onto the engine (threads=1, float32, CPU, the
    # target grid: grid_scale=1 was the only grid then).
    ev = ProxyEvaluator(
        epochs=2,
        batch_size=32,  # the proxy's defaults then (they have moved since)
        width_mult=0.25,
        train_subset=200,
        val_subset=100,
        threads=1,
        max_seconds=None,
        warmup_epochs=1,
        grid_scale=1.0,
        device="cpu",
    )
    result = ev.evaluate(name)
    want = BEFORE[name]
    assert result["score"] == want["score"]
    assert result["best_val_acc"] == want["best_val_acc"]
    assert result["params"] == want["params"]
    assert result["train_loss"] == pytest.approx(want["train_loss"], rel=1e-6)


def test_cpu_float32_settings_and_cache_key_are_unchanged():
    ev = ProxyEvaluator(device="cpu", amp="auto")
    assert ev.precision.amp == "off"
    assert "amp" not in ev.settings() and "device" not in ev.settings()
    bf = ProxyEvaluator(device="cpu", amp="bf16")
    assert bf.settings()["amp"] == "bf16"
    assert bf.cache_key(build_arch()) != ev.cache_key(build_arch())


def build_arch():
    from vitsearch.space import resolve_arch

    return resolve_arch("test_vit")


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "mps"])
def test_bad_device_is_a_config_error_naming_the_option(spec):
    with pytest.raises(ConfigError, match="^--device: "):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_amp_choices():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu).amp == "off"
    assert resolve_precision("bf16", cpu).dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="^--amp: "):
        resolve_precision("fp8", cpu)


def _engine(model, precision, **kw):
    opt = make_optimizer(model, 1e-3, 0.05)
    return Engine(model, opt, make_scheduler(opt, 2, 4, warmup_epochs=1, warmup_lr=1e-5), precision, **kw)


def test_engine_steps_schedule_and_clips():
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    engine = _engine(model, resolve_precision("off", torch.device("cpu")), grad_clip=0.5)
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    lrs = []
    before = model.weight.detach().clone()
    for _ in range(8):
        engine.update(lambda: nn.functional.cross_entropy(model(x), y), "t")
        lrs.append(engine.optimizer.param_groups[0]["lr"])
    assert engine.updates == 8
    assert not torch.equal(before, model.weight)
    assert lrs[0] < lrs[3]  # warm-up rises
    assert lrs[-1] < lrs[4]  # cosine falls


def test_engine_divergence_is_reported():
    model = nn.Linear(4, 2)
    engine = _engine(model, resolve_precision("off", torch.device("cpu")), diverge_factor=2.0, diverge_floor=0.1)
    engine.update(lambda: model(torch.ones(1, 4)).sum() * 0 + 1.0, "first")
    with pytest.raises(DivergedError, match="exploded"):
        engine.update(lambda: model(torch.ones(1, 4)).sum() * 0 + 100.0, "second")
    with pytest.raises(DivergedError, match="non-finite"):
        engine.update(lambda: model(torch.ones(1, 4)).sum() * float("nan"), "third")


def test_bf16_autocast_on_cpu_is_close_to_float32():
    # Same init, same batches, 20 updates: bf16 logits agree with float32 to within 0.15 (absolute)
    # and the final losses to within 5% relative; bf16 keeps 8 mantissa bits, so not closer.
    torch.manual_seed(0)
    x, y = torch.randn(64, 3, 16, 16), torch.randint(0, 4, (64,))
    models, losses = {}, {}
    for amp in ("off", "bf16"):
        torch.manual_seed(0)
        model = build_model("test_vit", img_size=16, in_chans=3, num_classes=4)
        engine = _engine(model, resolve_precision(amp, torch.device("cpu")), grad_clip=1.0)
        for _ in range(20):
            losses[amp] = engine.update(lambda m=model: nn.functional.cross_entropy(m(x), y), "t")
        models[amp] = model.eval()
    with torch.no_grad():
        diff = (models["off"](x) - models["bf16"](x)).abs().max().item()
    assert diff < 0.15
    assert math.isclose(losses["off"], losses["bf16"], rel_tol=0.05)


def test_fp16_uses_a_grad_scaler():
    assert resolve_precision("fp16", torch.device("cpu")).grad_scaler() is not None
    assert resolve_precision("bf16", torch.device("cpu")).grad_scaler() is None


def test_top1_counts_and_restores_mode():
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    model.train()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1, 1])
    assert top1(model, tensor_batches(x, y, batch_size=3)) == 0.75
    assert model.training


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_proxy_on_cuda_bf16():
    ev = ProxyEvaluator(epochs=1, train_subset=128, val_subset=64, device="cuda", amp="bf16")
    result = ev.evaluate("test_vit")
    assert 0 <= result["score"] <= 1
    assert ev.settings()["amp"] == "bf16" and ev.settings()["device"].startswith("cuda")


def test_channels_last_only_for_convolutions_on_a_gpu():
    # The CPU keeps NCHW (CPU float32 numbers stay as they were); a GPU run of a model with 2-D
    # convolutions takes cuDNN's channels_last. Deciding needs no GPU: only the device's type.
    conv = build_model("test_metaformer", img_size=16, in_chans=3, num_classes=4)
    linear = nn.Sequential(nn.Linear(4, 4))
    assert prefers_channels_last(conv, torch.device("cuda"))
    assert not prefers_channels_last(conv, torch.device("cpu"))
    assert not prefers_channels_last(linear, torch.device("cuda"))
    assert place_model(conv, torch.device("cpu")) is False
    x = torch.randn(2, 3, 8, 8)
    assert to_device(x, torch.device("cpu"), channels_last=True).is_contiguous(memory_format=torch.channels_last)
    assert to_device(torch.randn(2, 3), torch.device("cpu"), channels_last=True).shape == (2, 3)


def test_compiled_is_opt_in_and_shares_the_parameters():
    model = nn.Linear(3, 2)
    assert compiled(model, False) is model
    wrapped = compiled(model, True)  # lazy: nothing compiles until the first call
    assert wrapped is not model and wrapped.state_dict().keys() != model.state_dict().keys()
    assert all(a is b for a, b in zip(wrapped.parameters(), model.parameters(), strict=True))


def test_worker_gpus_round_robin_over_visible_devices(monkeypatch):
    cuda = torch.device("cuda")
    assert worker_gpus(cuda, 4, ["0", "1"]) == [None, "1", "0", "1"]  # the parent keeps its first visible GPU
    assert worker_gpus(cuda, 3, ["3", "5", "7"]) == [None, "5", "7"]
    assert worker_gpus(torch.device("cuda:1"), 3, ["0", "1"]) == [None, None, None]  # pinned by the user
    assert worker_gpus(torch.device("cpu"), 2, ["0", "1"]) == [None, None]
    assert worker_gpus(cuda, 2, ["0"]) == [None, None]  # one GPU: all share it
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, GPU-ab12,")
    assert visible_gpus() == ["2", "GPU-ab12"]


def test_a_worker_process_sees_only_its_gpu(monkeypatch):
    import signal

    from vitsearch.search import live

    seen = {}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # worker_main installs a SIGTERM handler
    monkeypatch.setattr(live, "run_search", lambda config: seen.update(gpus=os.environ["CUDA_VISIBLE_DEVICES"]))
    live.worker_main(None, None, "1")
    assert seen["gpus"] == "1"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ProxyEvaluator(epochs=0), "ProxyProfile.epochs: must be at least 1, got 0"),
        (lambda: ProxyEvaluator(grad_clip=0), "ProxyProfile.grad_clip: must be positive"),
        (lambda: TrainRecipe(batch_size=0), "--batch-size: must be at least 1, got 0"),
        (lambda: TrainRecipe(label_smoothing=1.0), "--label-smoothing: must be in [0, 1), got 1.0"),
        (lambda: SupernetTrainConfig(lr=0), "--lr: must be positive, got 0"),
        (lambda: SupernetTrainConfig(random_paths=-1), "--random-paths: must be 0 or more, got -1"),
    ],
)
def test_every_recipe_is_checked_by_one_rule_set_with_one_error_style(make, message):
    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value).startswith(message)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_zero_cost_on_cuda_matches_the_cpu():
    from vitsearch.evaluators.base import get_evaluator

    tiny = {"data": "synthetic", "img_size": 32, "target_img_size": 32, "batch_size": 8}
    for name in ("naswot", "synflow", "snip", "grad_norm", "jacob_cov", "dss"):
        cpu = get_evaluator(name, device="cpu", **tiny).evaluate("test_metaformer")["score"]
        gpu_ev = get_evaluator(name, device="cuda", **tiny)
        assert gpu_ev.settings()["device"].startswith("cuda")
        assert math.isclose(gpu_ev.evaluate("test_metaformer")["score"], cpu, rel_tol=1e-3, abs_tol=1e-3), name


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_channels_last_training_on_cuda(tmp_path):
    ev = ProxyEvaluator(epochs=1, train_subset=128, val_subset=64, device="cuda", amp="bf16")
    assert 0 <= ev.evaluate("test_metaformer")["score"] <= 1
