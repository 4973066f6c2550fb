"""Refiner: self-attention whose maps are refined by convolutions across and within heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MixerConfig
from ..layers import ForwardContext, TokenGrid
from ..registry import register_mixer
from .qkv import QkvMixer


@register_mixer("refined")
class RefinedAttention(QkvMixer):
    """Refiner (Zhou et al. 2021, "Refiner: Refining Self-attention for Vision Transformers"),
    ``Refined_Attention`` with ``refine_mode='conv_exapnd'`` of the official code
    (zhoudaquan/Refiner_ViT ``models/refined_transformer.py``, ``refiner_utils.DLA``)::

        A   = softmax(q k^T / sqrt(d_h))                      (B, H, N, N), softmax first
        R   = relu6(BN(conv1x1_{H -> rH}(A)))                 expansion across heads
        R   = relu6(BN(dwconv_kxk(R)))                        local refinement of each N x N map
        A'  = BN_adapt(BN(conv1x1_{rH -> H}(R)) + A)          reduction and residual
        out = proj(A' v)

    The refined map is not re-normalised (the code applies it to ``v`` as is). The maps are
    ``N x N`` over all tokens, cls included: the convolutions run over the whole map with
    zero ("same") padding, exactly as the official code treats its 197 x 197 maps. Options:
    ``expand`` r (3 in the paper code), ``kernel_size`` (3), ``qkv_bias`` (False, as Refiner).

    FLOPs of one image (``n`` tokens, width ``d``, ``H`` heads): ``4*n*d*d`` (qkv, proj) ``+
    2*n*n*d`` (``q k^T``, ``A' v``) ``+ n*n*(2*r*H*H + r*H*k*k)`` (the three convs) ``+
    n*n*2*(2*r*H + 2*H)`` (four BatchNorms in eval, fvcore's rule for an affine BN).

    Deviations: BNs stay unfused in the deployed form; the Refiner block's ``adjust_ratio``
    rescaling (a block-level trick) and its attention sharing are not part of this mixer.

    Weight sharing: the supernet holds this mixer at the most heads; the head convolutions and
    their BatchNorms are per head, so a path takes their leading ``h`` (or ``r*h``) channels.
    """

    SUMMARY = "Refiner: attention maps expanded, convolved and reduced across heads"
    OPTIONS = {"expand": 3, "kernel_size": 3, "qkv_bias": False}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)
        h, r, k = self.heads, self.opts["expand"], self.opts["kernel_size"]
        self.proj = nn.Linear(dim, dim)
        self.conv_exp = nn.Conv2d(h, r * h, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(r * h)
        self.depth_sep_conv = nn.Conv2d(r * h, r * h, k, padding=k // 2, groups=r * h, bias=False)
        self.bn2 = nn.BatchNorm2d(r * h)
        self.conv_pro = nn.Conv2d(r * h, h, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(h)
        self.adapt_bn = nn.BatchNorm2d(h)

    @classmethod
    def validate(cls, cfg: MixerConfig, dim: int, path: str) -> None:
        super().validate(cfg, dim, path)
        cls.require_at_least(cfg, "expand", path)
        cls.require_positive_odd(cfg, "kernel_size", path)

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        h, r, k = cls.resolve_heads(cfg, dim), cls.option(cfg, "expand"), cls.option(cfg, "kernel_size")
        n = grid.tokens
        linear = 4 * n * dim * dim
        attention = 2 * n * n * dim
        refine = n * n * (2 * r * h * h + r * h * k * k)
        norms = n * n * 2 * (2 * r * h + 2 * h)
        return linear + attention + refine + norms

    def refine(self, attn: torch.Tensor) -> torch.Tensor:
        """Refiner's distributed local attention on post-softmax maps ``(B, H, N, N)``."""
        # Heads innermost (channels_last): the 1x1 convs mix heads at every map position. Measured
        # on CPU, one training step of this stack at 197 tokens: 1.9x faster than the NCHW form
        # with clamp (whose backward is a separate `where` over every map).
        attn = attn.contiguous(memory_format=torch.channels_last)
        x = F.relu6(self.bn1(self.conv_exp(attn)))  # (B, rH, N, N)
        x = F.relu6(self.bn2(self.depth_sep_conv(x)))
        x = self.bn3(self.conv_pro(x)) + attn  # (B, H, N, N)
        return self.adapt_bn(x).contiguous()

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        q, k, v = self.project_qkv(x, ctx)  # each (B, H, N, d_h)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
        return self.merge_heads(self.refine(attn) @ v)
