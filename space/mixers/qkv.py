"""The base of every mixer with a fused q/k/v linear and an output projection, and its sharing rule."""

from __future__ import annotations

import torch
from torch import nn

from ..config import MixerConfig
from ..layers import ForwardContext, Mixer, SupernetSizes, TokenGrid


def qkv_weight(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """``(3D, D)`` fused q/k/v weight -> ``(3d, d)``: the leading ``(d, d)`` of each block."""
    big = weight.shape[1]
    return weight.view(3, big, big)[:, :dim, :dim].reshape(3 * dim, dim)


def qkv_bias(bias: torch.Tensor, dim: int) -> torch.Tensor:
    big = bias.shape[0] // 3
    return bias.view(3, big)[:, :dim].reshape(3 * dim)


def v_weight(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """The value block of a fused ``(3D, D)`` weight, sliced to ``(d, d)`` (PSViT sharing blocks)."""
    big = weight.shape[1]
    return weight[2 * big : 2 * big + dim, :dim]


def v_bias(bias: torch.Tensor, dim: int) -> torch.Tensor:
    big = bias.shape[0] // 3
    return bias[2 * big : 2 * big + dim]


class QkvMixer(Mixer):
    """Heads, the fused ``qkv`` linear (or only ``v``, for a block that reuses an attention map),
    and the head split and merge around the output projection ``proj``.

    Subclasses create ``self.proj = nn.Linear(dim, dim)`` themselves, after any tensor that sits
    between the two in the original code: parameters draw their initial values in creation
    order, so this keeps every seeded model as it was.

    Weight sharing: width ``d`` takes the leading ``(d, d)`` of each of the q, k and v blocks of
    the supernet's ``(3D, D)`` weight (a values-only block takes the v block); any head count
    splits the same ``d`` channels, so heads need nothing more.
    """

    USES_HEADS = True
    ROTATES_QK = True  # project_qkv
    OPTIONS = {"qkv_bias": True}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid, *, values_only: bool = False):
        super().__init__(dim, cfg, grid)
        self.heads = self.resolve_heads(cfg, dim)
        self.head_dim = dim // self.heads
        self.scale = self.head_dim**-0.5
        self.values_only = values_only
        if values_only:
            self.v = nn.Linear(dim, dim, bias=self.opts["qkv_bias"])
        else:
            self.qkv = nn.Linear(dim, dim * 3, bias=self.opts["qkv_bias"])

    def project_qkv(self, x: torch.Tensor, ctx: ForwardContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, N, C)`` -> q, k, v, each ``(B, H, N, d_h)``; q and k rotated when the model uses RoPE."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = ctx.apply_rope(q, k)
        return q, k, v

    def project_v(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, C)`` -> v ``(B, H, N, d_h)`` of a values-only block."""
        b, n, _ = x.shape
        return self.v(x).reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, N, d_h)`` -> ``proj`` of the heads side by side, ``(B, N, C)``."""
        b, _, n, _ = x.shape
        return self.proj(x.transpose(1, 2).reshape(b, n, self.dim))

    @classmethod
    def qkv_supernet_weights(cls, cfg: MixerConfig, sizes: SupernetSizes) -> nn.Module:
        """``qkv`` and ``proj`` at the largest width, for subclasses that hold more beside them."""
        weights = nn.Module()
        weights.qkv = nn.Linear(sizes.width, 3 * sizes.width, bias=cls.option(cfg, "qkv_bias"))
        weights.proj = nn.Linear(sizes.width, sizes.width)
        return weights

    def supernet_sources(self, weights: nn.Module) -> dict[str, torch.Tensor]:
        w, b, d = weights.qkv.weight, weights.qkv.bias, self.dim
        if self.values_only:
            return {"v.weight": v_weight(w, d), **({"v.bias": v_bias(b, d)} if b is not None else {})}
        return {"qkv.weight": qkv_weight(w, d), **({"qkv.bias": qkv_bias(b, d)} if b is not None else {})}
