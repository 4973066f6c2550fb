"""Named architectures; each comment gives params and GFLOPs at 224x224, 1000 classes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import ArchConfig, BlockConfig, ConfigError, MixerConfig, StageConfig, StemConfig
from .registry import Registry

PRESETS: Registry[Callable[[], ArchConfig]] = Registry("preset")


def register_preset(fn: Callable[[], ArchConfig]) -> Callable[[], ArchConfig]:
    """Decorator: the function's name is the preset's name."""
    return PRESETS.register()(fn)


def list_presets() -> list[str]:
    return PRESETS.names()


def get_preset(name: str) -> ArchConfig:
    return PRESETS.get(name)()


def resolve_arch(arch: ArchConfig | str | Path | Mapping[str, Any]) -> ArchConfig:
    """An ``ArchConfig`` from itself, a preset name, a YAML/JSON path or a dict."""
    if isinstance(arch, ArchConfig):
        return arch
    if isinstance(arch, Mapping):
        return ArchConfig.from_dict(arch)
    text = str(arch)
    if text in PRESETS:
        return get_preset(text)
    if Path(text).suffix in (".yaml", ".yml", ".json") or Path(text).exists():
        return ArchConfig.load(text)
    raise ConfigError("", f"{text!r} is neither a preset ({', '.join(list_presets())}) nor a config file")


def uniform_stage(width: int, depth: int, downsample: str = "none", **block: Any) -> StageConfig:
    mixer = block.pop("mixer", MixerConfig())
    return StageConfig(width=width, blocks=(BlockConfig(mixer=mixer, **block),) * depth, downsample=downsample)


def vit(width: int, depth: int, heads: int, patch_size: int = 16, mlp_ratio: float = 4.0) -> ArchConfig:
    """A single-stage DeiT / ViT: patch stem, cls token, learned positions."""
    mixer = MixerConfig(type="attention", heads=heads)
    return ArchConfig(
        stages=(uniform_stage(width, depth, mixer=mixer, mlp_ratio=mlp_ratio),),
        stem=StemConfig(type="patch", patch_size=patch_size),
    )


def metaformer(
    depths: tuple[int, ...],
    widths: tuple[int, ...],
    mixers: tuple[MixerConfig, ...],
    mlp_ratio: float = 4.0,
    **block: Any,
) -> ArchConfig:
    """A four-stage MetaFormer: PoolFormer's 7x7/4 stem, 3x3/2 conv downsampling, GroupNorm, layer scale."""
    stages = tuple(
        uniform_stage(w, d, "none" if i == 0 else "conv", mixer=m, mlp_ratio=mlp_ratio, **block)
        for i, (d, w, m) in enumerate(zip(depths, widths, mixers, strict=True))
    )
    return ArchConfig(
        stages=stages,
        stem=StemConfig(type="patch", patch_size=4, kernel_size=7),
        position="none",
        head="mean",
        norm="groupnorm",
        layer_scale_init=1e-5,
    )


POOL = MixerConfig(type="pool")


@register_preset
def deit_tiny() -> ArchConfig:  # 5,717,416 params, 1.2584 GFLOPs
    return vit(192, 12, 3)


@register_preset
def deit_small() -> ArchConfig:  # 22,050,664 params, 4.6083 GFLOPs
    return vit(384, 12, 6)


@register_preset
def poolformer_s12() -> ArchConfig:  # 11,915,176 params, 1.8226 GFLOPs
    return metaformer((2, 2, 6, 2), (64, 128, 320, 512), (POOL,) * 4)


@register_preset
def test_vit() -> ArchConfig:  # tiny, for tests: width 64, depth 2, 2 heads
    return vit(64, 2, 2, patch_size=8)


@register_preset
def test_metaformer() -> ArchConfig:  # tiny, for tests: two stages, pool then attention
    return metaformer((1, 1), (32, 64), (POOL, MixerConfig(type="attention", heads=2)))


# SCHEMEformer-PPAA-S12 (Sridhar et al., SCHEME; official metaformer_hybrid.py): PoolFormer-S12
# macro design, attention (head dim 32, no qkv bias, as the official Attention) in stages 3-4,
# block-diagonal MLP E=8, G=4, CCA in training. Deviation: the official model adds a learned
# position embedding before stage 3 (62,720 params, 0 FLOPs); this space has no per-stage one.
@register_preset
def schemeformer_ppaa_s12() -> ArchConfig:  # deployed: 11,767,592 params, 1.7695 GFLOPs (paper: 1.77)
    attention = (MixerConfig(type="attention", heads=10, options=(("qkv_bias", False),)),)
    attention += (MixerConfig(type="attention", heads=16, options=(("qkv_bias", False),)),)
    return metaformer((2, 2, 6, 2), (64, 128, 320, 512), (POOL, POOL) + attention, 8.0, mlp_groups=4, cca=True)


# RIFormer-S12 (Wang et al., RIFormer; mmpretrain riformer.py 's12'): PoolFormer-S12 with the
# RIFormer affine as every token mixer; deployed, the affine folds into norm1 and no mixer is left.
@register_preset
def riformer_s12() -> ArchConfig:  # deployed: 11,915,176 params, 1.8226 GFLOPs
    return metaformer((2, 2, 6, 2), (64, 128, 320, 512), (MixerConfig(type="identity"),) * 4)


# ViX (Jeevan & Sethi, "Vision Xformers", 2021; the official CIFAR-10 scripts ViP.py, ViL.py,
# ViN.py, FNet.py): patch size 1 on 32x32 input (1,024 tokens + cls), width 128, depth 4, 4 heads
# of 32, MLP 256, Linformer k 64, Nystromformer 64 landmarks with a 33-tap value conv. Comments give
# params and GFLOPs at 32x32, 10 classes. Stem and positions as the paper's hybrid variants
# (HybridViPRoPE.py, HybridViLRoPE.py, HybridViNRoPE.py, HybridFNet.py): its conv stem, and RoPE
# instead of learned positions for the attention mixers; FNet has no queries or keys to rotate
# and keeps its learned position embedding, as ViX's HybridFNet does.
def vix(mixer: MixerConfig) -> ArchConfig:
    return ArchConfig(
        stages=(uniform_stage(128, 4, mixer=mixer, mlp_ratio=2.0),),
        stem=StemConfig(type="conv", patch_size=1),
        position="learned" if mixer.type == "fnet" else "rope",
    )


@register_preset
def vix_performer() -> ArchConfig:  # 624,842 params, 0.8713 GFLOPs (m = 110 random features)
    return vix(MixerConfig(type="performer", heads=4))


@register_preset
def vix_linformer() -> ArchConfig:  # 887,242 params, 0.7729 GFLOPs
    return vix(MixerConfig(type="linformer", heads=4))


@register_preset
def vix_nystrom() -> ArchConfig:  # 625,370 params, 0.8749 GFLOPs (61 landmarks of 17 tokens)
    return vix(MixerConfig(type="nystrom", heads=4))


@register_preset
def vix_fnet() -> ArchConfig:  # 491,850 params, 0.3788 GFLOPs
    return vix(MixerConfig(type="fnet"))


# PSViT (Chen et al., "PSViT: Better Vision Transformer via Token Pooling and Attention
# Sharing", 2021): a single-width DeiT-Tiny body (width 192, 3 heads, 12 layers) that starts
# from more tokens (patch 8: 28x28) and pools them 2x2 at two depths, after layer 1 (to 14x14)
# and after layer 6 (to 7x7), with attention sharing in every second layer after a pooling
# point. PSViT searches where to pool and share; this is one hand-picked point of that space
# at about DeiT-Tiny's cost, not a published PSViT model.
@register_preset
def psvit_tiny() -> ArchConfig:  # 5,349,160 params, 1.2093 GFLOPs
    attn = MixerConfig(type="attention", heads=3)

    def stage(depth: int, shared: tuple[int, ...], downsample: str) -> StageConfig:
        blocks = tuple(BlockConfig(mixer=attn, share_attention=i in shared) for i in range(depth))
        return StageConfig(width=192, blocks=blocks, downsample=downsample)

    return ArchConfig(
        stages=(stage(1, (), "none"), stage(5, (1, 3), "mean"), stage(6, (1, 3, 5), "mean")),
        stem=StemConfig(type="patch", patch_size=8),
    )
