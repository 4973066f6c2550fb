"""Tiny spaces and profiles shared by the supernet tests (32 px, 4 classes, widths <= 64)."""

from __future__ import annotations

import random

import torch

from vitsearch.evaluators.supernet import Supernet, SupernetProfile
from vitsearch.space import list_mixers
from vitsearch.space.search_space import SearchSpace

# Every path choice the space format has: stems, positions, heads, norms, every mixer, head dims,
# MLP ratios and groups, CCA, sharing, every downsample kind (token pooling and conv), depth.
EVERYTHING = {
    "name": "everything",
    "stem": {"type": ["patch", "conv"], "patch_size": [8, 16]},
    "position": ["learned", "rope", "none"],
    "head": ["cls", "mean"],
    "norm": ["layernorm", "groupnorm"],
    "stages": [
        {
            "width": [32, 64],
            "depth": [1, 2, 3],
            "layer": {
                "mixer": list_mixers(),
                "head_dim": [16, 32],
                "mlp_ratio": [2, 3],
                "mlp_groups": [1, 2],
                "share_attention": [False, True],
                "cca": [False, True],
            },
        },
        {
            "width": [64, 96],
            "depth": [1, 2],
            "downsample": ["mean", "max", "dwconv", "conv"],
            "layer": {"mixer": ["attention", "pool", "dwconv"], "head_dim": [32], "mlp_ratio": [2], "mlp_groups": [1]},
        },
    ],
}

# One mixer per layer position; used to run every mixer as a path.
ONE_MIXER = {
    "name": "one",
    "stem": {"patch_size": 8},
    "head": ["cls", "mean"],
    "stages": [
        {
            "width": [32, 64],
            "depth": [1, 2],
            "layer": {"mixer": "attention", "head_dim": [16, 32], "mlp_ratio": [2, 4], "mlp_groups": [1, 2]},
        }
    ],
}

# 32 px input described at 64 px target: patch 8 -> 8x8 tokens -> stride 4 at 32 px.
PROFILE = SupernetProfile(img_size=32, in_chans=3, num_classes=4, target_img_size=64, width_mult=0.5)


def space(data: dict) -> SearchSpace:
    return SearchSpace.from_dict(data)


def one_mixer_space(mixer: str) -> SearchSpace:
    data = {**ONE_MIXER, "stages": [dict(ONE_MIXER["stages"][0])]}
    layer = dict(data["stages"][0]["layer"], mixer=mixer)
    if mixer == "attention":
        layer["share_attention"] = [False, True]
    data["stages"][0]["layer"] = layer
    return SearchSpace.from_dict(data)


def supernet(data_or_space, profile: SupernetProfile = PROFILE, seed: int = 0) -> Supernet:
    sp = data_or_space if isinstance(data_or_space, SearchSpace) else space(data_or_space)
    return Supernet(sp, profile, seed=seed)


def randomize(net: torch.nn.Module, seed: int = 1) -> None:
    """Give every parameter and BatchNorm statistic non-trivial values (init leaves many zeros/ones)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*net.named_parameters(), *net.named_buffers()]:
            if t.dtype.is_floating_point and "features" not in name:
                noise = torch.randn(t.shape, generator=g) * 0.2
                t.copy_(noise.abs() + 0.5 if "running_var" in name else t + noise)


def random_archs(sp: SearchSpace, n: int, seed: int = 0):
    rng = random.Random(seed)
    return [sp.sample_random(rng) for _ in range(n)]
