"""RIFormer identity mixer (and its fold into the norm), DWNet dwconv mixer, Refiner mixer, deployment pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitsearch.evaluators.complexity import analytic_flops, count_flops, count_params, trace_flops
from vitsearch.space import (
    ArchConfig,
    BlockConfig,
    ConfigError,
    ForwardContext,
    MixerConfig,
    StageConfig,
    StemConfig,
    TokenGrid,
    build_model,
    get_mixer,
)
from vitsearch.space.mixers.identity import IdentityAffine, PassThrough


def identity_arch(norm: str, head: str) -> ArchConfig:
    block = BlockConfig(mixer=MixerConfig(type="identity"), mlp_ratio=2.0)
    return ArchConfig(
        stages=(StageConfig(width=64, blocks=(block, block)),),
        stem=StemConfig(patch_size=8),
        norm=norm,
        head=head,
    )


class MixerOnly(nn.Module):
    """Traceable wrapper: a mixer with a fixed grid (the context is not a tensor)."""

    def __init__(self, mixer: nn.Module, grid: TokenGrid):
        super().__init__()
        self.mixer, self.grid = mixer, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x, ForwardContext(grid=self.grid))


# --- RIFormer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("norm", "head"), [("layernorm", "cls"), ("groupnorm", "mean"), ("groupnorm", "cls")])
def test_identity_folds_into_the_norm_exactly(norm, head):
    torch.manual_seed(3)
    model = build_model(identity_arch(norm, head), img_size=32, num_classes=10).double()
    with torch.no_grad():  # trained-looking norms, so the fold is tested on every term
        for block in model.stages[0].blocks:
            block.norm1.weight.normal_(1.0, 0.5)
            block.norm1.bias.normal_(0.0, 0.5)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    deployed = model.reparameterize()
    model.eval()
    reference = model(x)
    assert (reference - deployed(x)).abs().max() < 1e-5
    # The affine matters: dropping the mixer branch changes the output.
    for block in model.stages[0].blocks:
        block.mixer.scale.data.fill_(1.0)
        block.mixer.shift.data.zero_()
    assert (reference - model(x)).abs().max() > 1e-3


def test_deployed_identity_model_has_no_mixer():
    model = build_model(identity_arch("groupnorm", "mean"), img_size=32, num_classes=10)
    deployed = model.reparameterize()
    for block in deployed.stages[0].blocks:
        assert isinstance(block.mixer, PassThrough)
        assert list(block.mixer.parameters()) == []
    assert not any(".mixer." in name for name, _ in deployed.named_parameters())
    assert count_params(deployed) == count_params(model) - 2 * 2 * 64  # scale and shift per block
    assert isinstance(model.stages[0].blocks[0].mixer, IdentityAffine)  # original untouched
    flops = count_flops(deployed, img_size=32)
    assert flops == count_flops(model, img_size=32) == analytic_flops(model.arch, img_size=32, num_classes=10)


def test_reparameterize_calls_every_submodule_children_first():
    calls = []

    class Frozen(nn.Module):
        def forward(self, x):
            return x

    class Probe(nn.Module):  # stands in for e.g. a Performer that freezes its random features
        def __init__(self, tag):
            super().__init__()
            self.tag = tag
            self.inner = Inner() if tag == "outer" else nn.Identity()

        def reparameterize(self):
            calls.append(self.tag)
            return Frozen()

    class Inner(nn.Module):
        def reparameterize(self):
            calls.append("inner")
            return self

    model = build_model("test_vit", img_size=32, num_classes=10)
    model.stages[0].blocks[1].extra = Probe("outer")
    deployed = model.reparameterize()
    assert calls == ["inner", "outer"]
    assert isinstance(deployed.stages[0].blocks[1].extra, Frozen)
    assert isinstance(model.stages[0].blocks[1].extra, Probe)


def test_riformer_preset_deploys_to_poolformer_cost():
    arch = "riformer_s12"
    assert analytic_flops(arch) == analytic_flops("poolformer_s12") == 1_822_580_736


# --- DWNet dwconv ------------------------------------------------------------------------------


def test_dwconv_shapes_backward_flops_and_cls():
    grid = TokenGrid(4, 4, prefix=1)
    cfg = MixerConfig(type="dwconv")
    mixer = get_mixer("dwconv")(64, cfg, grid)
    x = torch.randn(3, grid.tokens, 64, requires_grad=True)
    out = mixer(x, ForwardContext(grid=grid))
    assert out.shape == x.shape
    assert torch.equal(out[:, 0], torch.zeros(3, 64))  # the cls token passes a zero
    out.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in mixer.parameters())
    hand = 2 * 16 * 64 * 64 + 16 * 64 * 7 * 7 + 3 * 2 * 16 * 64  # two 1x1, 7x7 depth-wise, three BNs
    assert get_mixer("dwconv").flops(64, cfg, grid) == hand == 187_392
    assert trace_flops(MixerOnly(mixer.eval(), grid), (torch.zeros(1, grid.tokens, 64),)) == hand


def test_dwconv_kernel_is_local():
    grid = TokenGrid(9, 9)
    mixer = get_mixer("dwconv")(8, MixerConfig(type="dwconv", options=(("kernel_size", 3),)), grid).eval()
    x = torch.randn(1, 81, 8)
    y0 = mixer(x, ForwardContext(grid=grid))
    x2 = x.clone()
    x2[0, 0] += 1.0  # top-left token
    moved = (mixer(x2, ForwardContext(grid=grid)) - y0).abs().sum(-1).view(9, 9) > 0
    assert moved[:2, :2].all() and not moved[2:].any() and not moved[:, 2:].any()
    with pytest.raises(ConfigError, match="kernel_size"):
        get_mixer("dwconv").validate(MixerConfig(type="dwconv", options=(("kernel_size", 4),)), 8, "m")


# --- Refiner ----------------------------------------------------------------------------------


def test_refined_shapes_backward_and_hand_counted_flops():
    grid = TokenGrid(4, 4, prefix=1)
    cfg = MixerConfig(type="refined", heads=2)
    mixer = get_mixer("refined")(64, cfg, grid)
    x = torch.randn(3, grid.tokens, 64, requires_grad=True)
    out = mixer(x, ForwardContext(grid=grid))
    assert out.shape == x.shape
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mixer.parameters())
    n, d, h, r, k = 17, 64, 2, 3, 3
    hand = (
        4 * n * d * d  # qkv and proj
        + 2 * n * n * d  # q k^T and A v
        + n * n * (h * r * h + r * h * k * k + r * h * h)  # expand 1x1, depth-wise kxk, reduce 1x1
        + 2 * n * n * (r * h + r * h + h + h)  # four eval BatchNorms
    )
    assert get_mixer("refined").flops(64, cfg, grid) == hand == 347_310
    assert trace_flops(MixerOnly(mixer.eval(), grid), (torch.zeros(1, n, 64),)) == hand


def test_refined_with_zero_refinement_is_softmax_attention():
    grid = TokenGrid(3, 3, prefix=1)
    mixer = get_mixer("refined")(32, MixerConfig(type="refined", heads=4), grid).double().eval()
    with torch.no_grad():
        mixer.conv_pro.weight.zero_()  # refinement branch off: A' = adapt_bn(bn3(0) + A)
    x = torch.randn(2, grid.tokens, 32, dtype=torch.float64)
    q, k, v = mixer.qkv(x).reshape(2, 10, 3, 4, 8).permute(2, 0, 3, 1, 4)
    attn = F.scaled_dot_product_attention(q, k, v)
    bn_gain = (1 + mixer.adapt_bn.eps) ** -0.5  # eval BN with initial running stats
    want = mixer.proj((attn * bn_gain).transpose(1, 2).reshape(2, 10, 32))
    torch.testing.assert_close(mixer(x, ForwardContext(grid=grid)), want, rtol=0, atol=1e-10)
