"""FLOPs: the published reference points, hand counts per op, and the no-silent-zero rule."""

import pytest
import torch
from torch import nn

from vitsearch.evaluators.complexity import UncountedOpError, analytic_flops, count_flops, trace_flops

REFERENCE_GFLOPS = {"deit_tiny": 1.2584, "deit_small": 4.6083, "poolformer_s12": 1.8226}


@pytest.mark.parametrize("preset, gflops", REFERENCE_GFLOPS.items())
def test_reference_flops_within_0_1_percent(preset, gflops):
    counted = count_flops(preset)
    assert abs(counted / 1e9 - gflops) / gflops < 1e-3
    assert analytic_flops(preset) == counted


def test_sdpa_is_counted_like_explicit_attention():
    from vitsearch.space import build_model

    model = build_model("test_vit", img_size=32)
    fused = count_flops(model, img_size=32)
    for block in model.stages[0].blocks:
        block.mixer.fused = False
    assert count_flops(model, img_size=32) == fused


def test_sdpa_hand_count():
    class Sdpa(nn.Module):
        def forward(self, x):
            return torch.nn.functional.scaled_dot_product_attention(x, x, x)

    b, h, n, d = 2, 3, 5, 4
    assert trace_flops(Sdpa(), (torch.randn(b, h, n, d),)) == b * h * n * n * d * 2


def test_uncounted_op_raises():
    class Cumsum(nn.Module):  # aten::cumsum has no handle and is not on the free list
        def forward(self, x):
            return x.cumsum(-1)

    with pytest.raises(UncountedOpError, match="aten::cumsum"):
        count_flops(Cumsum(), img_size=4)


def test_counting_keeps_training_mode():
    from vitsearch.space import build_model

    model = build_model("test_vit", img_size=32).train()
    count_flops(model, img_size=32)
    assert model.training
