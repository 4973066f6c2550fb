"""DWNet local mixer: point-wise conv, 7x7 depth-wise conv, point-wise conv, each with BatchNorm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MixerConfig
from ..layers import ForwardContext, Mixer, TokenGrid, join_prefix, split_prefix
from ..registry import register_mixer


@register_mixer("dwconv")
class DepthwiseConvMixer(Mixer):
    """DWNet (Han et al., ICLR 2022, "On the Connection between Local Attention and Dynamic
    Depth-wise Convolution"), the static ``DWBlock`` of the official code (Atten4Vis/
    DemystifyLocalViT ``models/dwnet.py``), replacing Swin's 7x7 window attention::

        conv1x1 (no bias) -> BN -> ReLU -> depth-wise kxk conv (bias) -> BN -> ReLU -> conv1x1 (no bias) -> BN

    So DWNet does add the point-wise layers and BatchNorm around the depth-wise conv (they play
    the roles of attention's value and output projections); ``kernel_size`` (default 7, the
    window size) is the option.

    FLOPs of one image, ``H*W`` grid, width ``d``: ``2*HW*d*d`` (point-wise) ``+ HW*d*k*k``
    (depth-wise) ``+ 3 * 2*HW*d`` (three BatchNorms in eval, fvcore's rule for an affine BN).

    Deviations: DWNet's block has no pre-norm before this mixer (BN inside it instead); here it
    sits in the MetaFormer block after ``norm1`` like every mixer. The BNs are kept, not fused
    into the convs, in the deployed form (fusing would change the counted FLOPs of the trained
    model's eval form). A cls token has no place on the grid: its mixer output is zero, as with
    ``pool``, so it is carried unchanged by the residual (DWNet itself has no cls token).

    Weight sharing: the supernet holds this mixer at the largest width; a path takes the leading
    channels of every conv and BatchNorm (the default rule).
    """

    SUMMARY = "DWNet local 7x7 depth-wise conv mixer"
    OPTIONS = {"kernel_size": 7}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)
        k = self.opts["kernel_size"]
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(dim)
        self.conv = nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)
        self.bn = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    @classmethod
    def validate(cls, cfg: MixerConfig, dim: int, path: str) -> None:
        super().validate(cfg, dim, path)
        cls.require_positive_odd(cfg, "kernel_size", path)

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        k = cls.option(cfg, "kernel_size")
        hw = grid.spatial
        return 2 * hw * dim * dim + hw * dim * k * k + 3 * 2 * hw * dim

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        prefix, spatial = split_prefix(x, ctx.grid)  # spatial: (B, C, H, W)
        y = F.relu(self.bn0(self.conv0(spatial)))
        y = F.relu(self.bn(self.conv(y)))
        y = self.bn2(self.conv2(y))
        return join_prefix(torch.zeros_like(prefix), y)
