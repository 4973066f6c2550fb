"""RIFormer's token-mixer-free block: a per-channel affine in training, nothing at inference."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..config import MixerConfig
from ..layers import ForwardContext, Mixer, TokenGrid
from ..registry import register_mixer


class PassThrough(nn.Module):
    """The deployed RIFormer mixer: no parameters, no FLOPs; the block adds ``ls1 * norm1'(x)``."""

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return x


@register_mixer("identity")
class IdentityAffine(Mixer):
    """RIFormer (Wang et al., CVPR 2023, "RIFormer: Keep Your Vision Backbone Effective But
    Removing Token Mixer"), training form: ``Affine(n) - n = (s - 1) * n + t`` for the normed
    input ``n``, so the block computes ``x + ls1 * (Affine(N(x)) - N(x))``.

    Deployment (``fold_into_norm``, called by ``Block.reparameterize``): the affine folds into
    the block's norm1, ``gamma' = gamma * (s - 1)`` and ``beta' = beta * (s - 1) + t``, and the
    mixer becomes a parameter-free pass-through, so the block is ``x + ls1 * norm1'(x)``. Both
    LayerNorm and GroupNorm1 end in a per-channel affine, so the fold is exact for either; the
    cls token, where there is one, goes through the same per-channel map as every token.

    Deviations from the official code (mmpretrain ``riformer.py``): the affine there is a
    depth-wise 1x1 ``Conv2d`` with bias; here it is the same map written element-wise, so the
    training form costs 0 FLOPs by the counting convention, exactly like the deployed form.
    ``s`` and ``t`` start as that conv's default init, uniform in [-1, 1] (fan-in 1). The paper's
    training recipe (soft distillation from a teacher with mixers, module imitation) is the
    trainer's concern, not the mixer's.
    """

    SUMMARY = "RIFormer: no token mixer at inference (affine folded into the norm)"
    OPTIONS: dict = {}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)
        self.scale = nn.Parameter(torch.empty(dim).uniform_(-1.0, 1.0))
        self.shift = nn.Parameter(torch.empty(dim).uniform_(-1.0, 1.0))

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        return 0  # element-wise scale, shift and subtraction are free; the deployed form has no mixer

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return x * self.scale + self.shift - x

    @torch.no_grad()
    def fold_into_norm(self, norm: nn.Module) -> tuple[nn.Module, PassThrough]:
        """``(norm', pass_through)`` with ``norm'(x) = Affine(norm(x)) - norm(x)`` for every ``x``."""
        folded = copy.deepcopy(norm)
        s1 = self.scale - 1.0
        folded.weight.copy_(norm.weight * s1)
        folded.bias.copy_(norm.bias * s1 + self.shift)
        return folded, PassThrough()
