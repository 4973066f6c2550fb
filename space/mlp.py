"""The dense two-layer MLP of a block (timm ``Mlp``); ``scheme.py`` builds the block-diagonal ones."""

from __future__ import annotations

import torch
from torch import nn

from .config import BlockConfig


class Mlp(nn.Module):
    """Dense two-layer MLP (timm ``Mlp``): ``fc2(gelu(fc1(x)))``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    @staticmethod
    def flops(dim: int, cfg: BlockConfig, tokens: int) -> int:
        return 2 * tokens * dim * int(dim * cfg.mlp_ratio) // cfg.mlp_groups
