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


def conv_stem_strides(patch_size: int) -> tuple[int, int, int]:
    """Per-conv strides of the ViX conv stem, with product ``patch_size``.

    The last two convs each take a factor 2 (else 3) of the patch size while it has one; the
    first conv takes what is left. 16 -> (4, 2, 2), 8 -> (2, 2, 2), 4 -> (1, 2, 2),
    6 -> (1, 3, 2), 1 -> (1, 1, 1) (ViX's own setting), 5 -> (5, 1, 1).
    """
    strides = []
    rest = patch_size
    for _ in range(2):
        factor = 2 if rest % 2 == 0 else 3 if rest % 3 == 0 else 1
        strides.append(factor)
        rest //= factor
    return rest, strides[1], strides[0]


def conv_stem_layers(cfg: StemConfig, in_chans: int, dim: int) -> list[tuple[int, int, int, int, int]]:
    """``(in, out, kernel, stride, padding)`` of the three convs of the ViX conv stem."""
    channels = (in_chans, *ConvStem.WIDTHS, dim)
    layers = []
    for i, stride in enumerate(conv_stem_strides(cfg.patch_size)):
        # 3x3 with padding 1 covers every pixel up to stride 3; a larger (first-conv) stride
        # gets a kernel as large as the stride, so no pixel is skipped.
        kernel, padding = (3, 1) if stride <= 3 else (stride, 0)
        layers.append((channels[i], channels[i + 1], kernel, stride, padding))
    return layers


class ConvStem(nn.Module):
    """ViX conv embedding (Jeevan & Sethi 2022, "Vision Xformers"): three convs replace the patch embedding.

    As ViX's code (``HybridViTRoPE`` and siblings): channels ``in -> 32 -> 64 -> dim``, 3x3
    kernels, padding 1, bias, no norm and no activation between the convs. ViX runs them at
    stride 1 with patch size 1 (CIFAR, 32x32 = 1024 tokens); here the configured
    ``patch_size`` is put into the strides (``conv_stem_strides``) so the token grid is
    ``img_size // patch_size`` for any patch size >= 1. Deviations: the striding (none in
    ViX); and when the first conv's stride exceeds 3 (patch sizes 16, 32, or with a prime
    factor >= 5) that conv's kernel grows to its stride, without padding, because a 3x3 kernel
    at such a stride would skip pixels. An image side that is not a multiple of the patch size
    is cropped at the bottom/right to one first, as the patch stem's conv ignores those pixels.
    """

    WIDTHS = (32, 64)  # hidden channels of ViX's conv embedding

    def __init__(self, cfg: StemConfig, in_chans: int, dim: int):
        super().__init__()
        self.patch_size = cfg.patch_size
        layers = conv_stem_layers(cfg, in_chans, dim)
        self.convs = nn.Sequential(*(nn.Conv2d(i, o, k, stride=s, padding=p) for i, o, k, s, p in layers))

    @staticmethod
    def out_size(cfg: StemConfig, img_size: int) -> int:
        size = img_size - img_size % cfg.patch_size
        for _, _, k, s, p in conv_stem_layers(cfg, 1, 1):
            size = conv_out(size, k, s, p)
        return size

    @classmethod
    def flops(cls, cfg: StemConfig, in_chans: int, dim: int, img_size: int) -> int:
        size, total = img_size - img_size % cfg.patch_size, 0
        for c_in, c_out, k, s, p in conv_stem_layers(cfg, in_chans, dim):
            size = conv_out(size, k, s, p)
            total += size * size * c_out * c_in * k * k  # fvcore's conv rule; bias not counted
        return total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            x = x[..., : h - h % p, : w - w % p]
        return self.convs(x)


STEMS: dict[str, type[nn.Module]] = {"patch": PatchStem, "conv": ConvStem}


def build_stem(cfg: StemConfig, in_chans: int, dim: int) -> nn.Module:
    return STEMS[cfg.type](cfg, in_chans, dim)


def stem_grid_size(cfg: StemConfig, img_size: int) -> int:
    return STEMS[cfg.type].out_size(cfg, img_size)


def stem_flops(cfg: StemConfig, in_chans: int, dim: int, img_size: int) -> int:
    return STEMS[cfg.type].flops(cfg, in_chans, dim, img_size)
