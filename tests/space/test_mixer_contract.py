"""The contract every registered mixer keeps: shapes, gradients, finite outputs, counted FLOPs."""

import pytest
import torch

from vitsearch.evaluators.complexity import analytic_flops, count_flops
from vitsearch.space import (
    ArchConfig,
    BlockConfig,
    MixerConfig,
    StageConfig,
    StemConfig,
    build_model,
    get_mixer,
    list_mixers,
)


def one_mixer_arch(name: str, head: str = "cls", width: int = 64) -> ArchConfig:
    heads = 2 if get_mixer(name).USES_HEADS else None
    block = BlockConfig(mixer=MixerConfig(type=name, heads=heads), mlp_ratio=2.0)
    return ArchConfig(
        stages=(StageConfig(width=width, blocks=(block, block)),),
        stem=StemConfig(patch_size=8),
        head=head,
    )


@pytest.mark.parametrize("head", ["cls", "mean"])
@pytest.mark.parametrize("name", list_mixers())
def test_forward_backward_and_flops(name, head):
    model = build_model(one_mixer_arch(name, head), img_size=32, num_classes=10)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)
    counted = count_flops(model, img_size=32)
    assert counted > 0
    assert analytic_flops(model.arch, img_size=32, num_classes=10) == counted


@pytest.mark.parametrize("name", list_mixers())
def test_mixer_keeps_token_shape(name):
    from vitsearch.space import ForwardContext, TokenGrid

    grid = TokenGrid(4, 4, prefix=1)
    cfg = MixerConfig(type=name, heads=2 if get_mixer(name).USES_HEADS else None)
    mixer = get_mixer(name)(64, cfg, grid)
    x = torch.randn(3, grid.tokens, 64)
    assert mixer(x, ForwardContext(grid=grid)).shape == x.shape


@pytest.mark.parametrize("name", list_mixers())
def test_every_mixer_says_what_it_is(name):
    assert get_mixer(name).SUMMARY
