"""SCHEME: block-diagonal MLP (both forms, exact FLOPs) and the training-only CCA branch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitsearch.evaluators.complexity import analytic_flops, count_flops, count_params, trace_flops
from vitsearch.space import ArchConfig, BlockConfig, ConfigError, MixerConfig, StageConfig, StemConfig, build_model
from vitsearch.space.layers import Mlp
from vitsearch.space.scheme import (
    DEFAULT_FORM,
    FORMS,
    BlockDiagonalLinear,
    BlockDiagonalMlp,
    CcaMlp,
    channel_covariance_attention,
)


def tiny_arch(groups: int = 1, cca: bool = False, head: str = "cls") -> ArchConfig:
    block = BlockConfig(mixer=MixerConfig(type="attention", heads=2), mlp_ratio=2.0, mlp_groups=groups, cca=cca)
    return ArchConfig(stages=(StageConfig(width=64, blocks=(block, block)),), stem=StemConfig(patch_size=8), head=head)


def dense_block_diagonal(layer: BlockDiagonalLinear) -> torch.Tensor:
    """The full ``(out, in)`` matrix: the diagonal blocks placed with ``torch.block_diag``."""
    g = layer.groups
    blocks = layer.weight.view(g, layer.out_features // g, layer.in_features // g)
    return torch.block_diag(*blocks)


def reference_mlp(mlp: BlockDiagonalMlp, x: torch.Tensor) -> torch.Tensor:
    h = F.gelu(x @ dense_block_diagonal(mlp.fc1).T + mlp.fc1.bias)
    return h @ dense_block_diagonal(mlp.fc2).T + mlp.fc2.bias


@pytest.mark.parametrize("groups", [2, 4])
def test_both_forms_equal_the_block_diagonal_matrices(groups):
    mlp = BlockDiagonalMlp(64, 128, groups).double()
    for p in mlp.parameters():  # non-trivial biases too
        nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 17, 64, dtype=torch.float64)
    want = reference_mlp(mlp, x)
    for form in FORMS:
        mlp.form = form
        torch.testing.assert_close(mlp(x), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(mlp.fc1(x), x @ dense_block_diagonal(mlp.fc1).T + mlp.fc1.bias, rtol=0, atol=1e-12)


def test_block_diagonal_blocks_do_not_mix_groups():
    mlp = BlockDiagonalMlp(64, 128, 4, form="bmm").double()
    x = torch.randn(1, 5, 64, dtype=torch.float64)
    y0 = mlp(x)
    x2 = x.clone()
    x2[..., :16] += 1.0  # change group 0 only
    changed = (mlp(x2) - y0).abs().amax(dim=(0, 1)) > 1e-9
    assert changed[:16].all() and not changed[16:].any()


def test_gradients_equal_across_forms():
    mlp = BlockDiagonalMlp(64, 256, 4).double()
    x = torch.randn(2, 9, 64, dtype=torch.float64, requires_grad=True)
    grads = {}
    for form in FORMS:
        mlp.form = form
        mlp.zero_grad()
        x.grad = None
        mlp(x).square().sum().backward()
        grads[form] = [x.grad.clone()] + [p.grad.clone() for p in mlp.parameters()]
        assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads[form])
    for form in FORMS[1:]:
        for a, b in zip(grads[FORMS[0]], grads[form], strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("form", ["conv", "bmm", "split", "auto"])
@pytest.mark.parametrize("groups", [2, 4, 8])
def test_fvcore_counts_exactly_the_block_diagonal_cost(form, groups):
    n, d, hidden = 17, 64, 256
    mlp = BlockDiagonalMlp(d, hidden, groups, form=form)
    counted = trace_flops(mlp, (torch.zeros(1, n, d),))
    assert counted == 2 * n * d * hidden // groups  # fc1 + fc2, one multiply-add per weight per token


def test_model_flops_with_groups_follow_the_formula():
    dense, grouped = build_model(tiny_arch(1), img_size=32), build_model(tiny_arch(4), img_size=32)
    tokens, d, hidden = 17, 64, 128
    saved = 2 * (2 * tokens * d * hidden - 2 * tokens * d * hidden // 4)  # two blocks
    assert count_flops(dense, img_size=32) - count_flops(grouped, img_size=32) == saved
    assert count_flops(grouped, img_size=32) == analytic_flops(grouped.arch, img_size=32)


def test_groups_one_is_the_timm_mlp():
    model = build_model(tiny_arch(1), img_size=32, num_classes=10)
    mlp = model.stages[0].blocks[0].mlp
    assert type(mlp) is Mlp and isinstance(mlp.fc1, nn.Linear) and isinstance(mlp.fc2, nn.Linear)
    keys = {k for k in model.state_dict() if ".mlp." in k}
    assert "stages.0.blocks.0.mlp.fc1.weight" in keys and "stages.0.blocks.0.mlp.fc2.bias" in keys
    grouped = build_model(tiny_arch(4), img_size=32).stages[0].blocks[0].mlp
    assert isinstance(grouped, BlockDiagonalMlp) and grouped.form == DEFAULT_FORM
    assert grouped.fc1.weight.shape == (128, 16)


def test_groups_must_divide_widths():
    def data(width: int, ratio: float, groups: int) -> dict:
        block = {"mixer": "pool", "mlp_ratio": ratio, "mlp_groups": groups}
        return {"stages": [{"width": width, "depth": 1, "block": block}], "stem": {"patch_size": 8}, "head": "mean"}

    with pytest.raises(ConfigError, match=r"stages\[0\]\.blocks\[0\]\.mlp_groups: 3 does not divide width 64"):
        ArchConfig.from_dict(data(64, 2.0, 3))
    with pytest.raises(ConfigError, match=r"mlp_groups: 64 does not divide .* hidden width 96"):
        ArchConfig.from_dict(data(64, 1.5, 64))  # divides the width, not the hidden width
    assert ArchConfig.from_dict(data(64, 1.5, 32)).stages[0].blocks[0].mlp_groups == 32


# --- CCA -------------------------------------------------------------------------------------


def test_cca_is_channel_covariance_attention():
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    tau = 3.0
    out = channel_covariance_attention(x, tau)
    for b in range(2):
        cov = x[b].T @ x[b] / tau  # (C, C)
        weights = torch.exp(cov - cov.amax(dim=1, keepdim=True))
        weights = weights / weights.sum(dim=1, keepdim=True)  # row i: how output channel i mixes inputs
        want = torch.stack([sum(weights[i, j] * x[b, :, j] for j in range(8)) for i in range(8)], dim=1)
        torch.testing.assert_close(out[b], want, rtol=0, atol=1e-12)


def test_cca_branch_only_in_training_and_theta_learns():
    torch.manual_seed(1)
    cca = CcaMlp(BlockDiagonalMlp(16, 64, 4), hidden=64).double()
    assert cca.tau == math.sqrt(64)
    with torch.no_grad():
        cca.theta.copy_(torch.tensor([0.3, -0.2]))
    a = torch.softmax(torch.tensor([0.3, -0.2], dtype=torch.float64), 0)[0]
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    mlp_out = cca.mlp(x)
    train_out = cca.train()(x)
    torch.testing.assert_close(train_out, a * mlp_out + (1 - a) * channel_covariance_attention(x, 8.0))
    eval_out = cca.eval()(x)
    torch.testing.assert_close(eval_out, a * mlp_out)
    assert (train_out - eval_out).abs().max() > 1e-3
    cca.train()(x).sum().backward()
    assert cca.theta.grad is not None and cca.theta.grad.abs().sum() > 0


def test_cca_readout_starts_at_half_and_follows_theta():
    model = build_model(tiny_arch(2, cca=True), img_size=32, num_classes=10)
    assert model.cca_weights() == {"stages.0.blocks.0": 0.5, "stages.0.blocks.1": 0.5}
    optimizer = torch.optim.SGD([m.theta for m in model.modules() if isinstance(m, CcaMlp)], lr=1.0)
    for _ in range(3):  # push theta towards the MLP branch, as training does when CCA stops helping
        optimizer.zero_grad()
        sum(1 - m.mix_weight() for m in model.modules() if isinstance(m, CcaMlp)).backward()
        optimizer.step()
    weights = model.cca_weights()
    assert all(0 < w < 0.45 for w in weights.values())
    theta = model.stages[0].blocks[0].mlp.theta.detach()
    assert weights["stages.0.blocks.0"] == pytest.approx(torch.softmax(theta, 0)[1].item())
    assert build_model(tiny_arch(2), img_size=32).cca_weights() == {}


@pytest.mark.parametrize("groups", [1, 2])
def test_cca_reparameterisation_is_exact(groups):
    torch.manual_seed(2)
    model = build_model(tiny_arch(groups, cca=True), img_size=32, num_classes=10).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, CcaMlp):
                m.theta.normal_(std=1.0)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    deployed = model.reparameterize()
    assert model.training and not deployed.training  # the original keeps training
    assert not any(isinstance(m, CcaMlp) for m in deployed.modules())
    assert any(isinstance(m, CcaMlp) for m in model.modules())
    model.eval()
    assert (model(x) - deployed(x)).abs().max() < 1e-5
    assert count_params(deployed) == count_params(model) - 2 * 2  # two blocks lose theta
    flops = count_flops(deployed, img_size=32)
    assert flops == count_flops(model, img_size=32) == analytic_flops(model.arch, img_size=32, num_classes=10)
    mlp = deployed.stages[0].blocks[0].mlp
    assert isinstance(mlp, Mlp if groups == 1 else BlockDiagonalMlp)
