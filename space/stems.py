"""Stems: image ``(B, C, H, W)`` -> token map ``(B, D, H/p, W/p)``."""

from __future__ import annotations

import torch
from torch import nn

from .config import StemConfig
from .downsample import conv_out


def patch_padding(kernel: int, stride: int) -> int:
    # 0 for ViT's non-overlapping patches, 2 for PoolFormer's 7x7 / stride 4 stem.
    return (kernel - stride + 1) // 2


class PatchStem(nn.Module):
    """One convolution with kernel >= stride: ViT's linear patch embedding or PoolFormer's stem."""

    def __init__(self, cfg: StemConfig, in_chans: int, dim: int):
        super().__init__()
        k = cfg.kernel_size or cfg.patch_size
        self.proj = nn.Conv2d(
            in_chans, dim, kernel_size=k, stride=cfg.patch_size, padding=patch_padding(k, cfg.patch_size)
        )

    @staticmethod
    def out_size(cfg: StemConfig, img_size: int) -> int:
        k = cfg.kernel_size or cfg.patch_size
        return conv_out(img_size, k, cfg.patch_size, patch_padding(k, cfg.patch_size))

    @classmethod
    def flops(cls, cfg: StemConfig, in_chans: int, dim: int, img_size: int) -> int:
        k = cfg.kernel_size or cfg.patch_size
        return cls.out_size(cfg, img_size) ** 2 * dim * in_chans * k * k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


STEMS: dict[str, type[nn.Module]] = {"patch": PatchStem}


def build_stem(cfg: StemConfig, in_chans: int, dim: int) -> nn.Module:
    return STEMS[cfg.type](cfg, in_chans, dim)


def stem_grid_size(cfg: StemConfig, img_size: int) -> int:
    return STEMS[cfg.type].out_size(cfg, img_size)


def stem_flops(cfg: StemConfig, in_chans: int, dim: int, img_size: int) -> int:
    return STEMS[cfg.type].flops(cfg, in_chans, dim, img_size)
