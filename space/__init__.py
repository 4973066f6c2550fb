"""vitsearch.space: architecture configs, building blocks, mixers and the model builder."""

from .config import ArchConfig, BlockConfig, ConfigError, MixerConfig, StageConfig, StemConfig, validate
from .layers import Downsample, ForwardContext, Mixer, TokenGrid
from .model import VitModel, build_model
from .presets import get_preset, list_presets, resolve_arch
from .registry import (
    get_downsample,
    get_mixer,
    list_downsamples,
    list_mixers,
    register_downsample,
    register_mixer,
)
from .timm_model import vitsearch as _timm_entrypoint  # noqa: F401  registers timm.create_model("vitsearch")

__all__ = [
    "ArchConfig",
    "BlockConfig",
    "ConfigError",
    "Downsample",
    "ForwardContext",
    "Mixer",
    "MixerConfig",
    "StageConfig",
    "StemConfig",
    "TokenGrid",
    "VitModel",
    "build_model",
    "get_downsample",
    "get_mixer",
    "get_preset",
    "list_downsamples",
    "list_mixers",
    "list_presets",
    "register_downsample",
    "register_mixer",
    "resolve_arch",
    "validate",
]
