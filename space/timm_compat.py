"""Load timm's DeiT / ViT and PoolFormer (MetaFormer) weights into vitsearch models.

The mapping is by key renaming only (plus squeezing PoolFormer's 1x1-conv MLP weights into
linear weights), so a converted state dict gives the same logits as the timm model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

_VIT_RULES: list[tuple[str, str]] = [
    (r"^patch_embed\.proj\.", "stem.proj."),
    (r"^blocks\.(\d+)\.attn\.", r"stages.0.blocks.\1.mixer."),
    (r"^blocks\.(\d+)\.", r"stages.0.blocks.\1."),
]

_METAFORMER_RULES: list[tuple[str, str]] = [
    (r"^stem\.conv\.", "stem.proj."),
    (r"^stages\.(\d+)\.downsample\.conv\.", r"stages.\1.downsample.proj."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.token_mixer\.", r"stages.\1.blocks.\2.mixer."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.layer_scale(\d)\.scale$", r"stages.\1.blocks.\2.ls\3.gamma"),
    (r"^head\.norm\.", "norm."),
    (r"^head\.fc\.", "head."),
]


def _rename(state_dict: Mapping[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in rules:
            new, hits = re.subn(pattern, repl, new)
            if hits:
                break
        out[new] = value
    return out


def convert_vit(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ``VisionTransformer`` (DeiT, ViT with cls token) -> single-stage vitsearch model."""
    return _rename(state_dict, _VIT_RULES)


def convert_metaformer(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ``MetaFormer`` (PoolFormer v1) -> four-stage vitsearch model."""
    out = _rename(state_dict, _METAFORMER_RULES)
    # timm's PoolFormer MLP is a pair of 1x1 convs; ours are linears on (B, N, C) tokens.
    return {k: v.flatten(1) if k.endswith(("fc1.weight", "fc2.weight")) and v.dim() == 4 else v for k, v in out.items()}


CONVERTERS: dict[str, Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "vit": convert_vit,
    "metaformer": convert_metaformer,
}


def load_timm_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], family: str) -> None:
    """Load a timm state dict of ``family`` (``vit`` or ``metaformer``) strictly into ``model``."""
    try:
        convert = CONVERTERS[family]
    except KeyError:
        raise ValueError(f"family: unknown {family!r} (choose from {', '.join(CONVERTERS)})") from None
    model.load_state_dict(convert(state_dict), strict=True)
