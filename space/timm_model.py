"""timm registration: ``timm.create_model("vitsearch", arch=...)`` builds a vitsearch model.

Importing ``vitsearch.space`` runs ``@register_model`` below (``vitsearch`` itself is a
namespace package, so ``import vitsearch.space`` is the import that registers). Then::

    model = timm.create_model("vitsearch", arch="best.yaml", num_classes=10)   # path, dict or preset

``arch`` may point into a deployment folder written by ``vitsearch export --deploy``: its
``export.json`` supplies the profile (image size, channels, classes, mean and std) as defaults,
and ``pretrained=True`` loads that folder's ``model.safetensors`` (the deployed form). Elsewhere
``pretrained=True`` loads ``pretrained_cfg_overlay=dict(file=PATH)``, a safetensors file or a
weights-only torch checkpoint; nothing is ever downloaded.

``model.pretrained_cfg`` (timm's ``resolve_data_config`` reads it) gives the model's fixed
input size, mean and std, so timm's ``train.py`` / ``validate.py`` set up their transforms
from it. timm's generic options the model has no use for are accepted at their off values
(``drop_rate=0``...) and refused otherwise, so a requested regulariser is never silently dropped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import generate_default_cfgs, register_model
from torch import nn

from .config import ArchConfig, ConfigError
from .model import build_model
from .presets import resolve_arch

DEPLOY_INFO = "export.json"  # beside arch.yaml in a `vitsearch export --deploy` folder
DEPLOY_WEIGHTS = "model.safetensors"

default_cfgs = generate_default_cfgs(
    {
        "vitsearch": {
            "input_size": (3, 224, 224),
            "fixed_input_size": True,  # positions and Linformer's projection fix the token grid
            "interpolation": "bicubic",
            "crop_pct": 0.9,
            "mean": IMAGENET_DEFAULT_MEAN,
            "std": IMAGENET_DEFAULT_STD,
            "num_classes": 1000,
            "first_conv": "stem.proj",
            "classifier": "head",
            "license": "apache-2.0",
            "description": "a vitsearch architecture (arch=PATH, dict or preset)",
        }
    }
)

# timm's generic factory options, accepted only at the value that means "off".
_OFF_OPTIONS = ("drop_rate", "drop_path_rate", "drop_block_rate", "global_pool", "cache_dir")


def deploy_info(arch: Any) -> dict[str, Any]:
    """The ``export.json`` beside an architecture file of a deployment folder, else ``{}``."""
    if not isinstance(arch, (str, Path)):
        return {}
    path = Path(arch)
    info_path = path.parent / DEPLOY_INFO
    if not path.is_file() or not info_path.is_file():
        return {}
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(str(info_path), "not a readable JSON file") from None
    return info if isinstance(info, Mapping) and info.get("arch_file") == path.name else {}


def _cfg_dict(cfg: Any) -> dict[str, Any]:
    if cfg is None or isinstance(cfg, str):
        return {}
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)  # type: ignore[arg-type]
    return dict(cfg)


def _per_channel(values: Any, in_chans: int, what: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if len(values) == in_chans:
        return values
    if len(values) in (1, 3) and in_chans in (1, 3):  # grey <-> RGB: one value for every channel
        return (sum(values) / len(values),) * in_chans
    raise ConfigError(what, f"{len(values)} values for {in_chans} input channels")


def _first_conv(arch: ArchConfig) -> str:
    return "stem.proj" if arch.stem.type == "patch" else "stem.convs.0"


@register_model
def vitsearch(
    pretrained: bool = False,
    arch: Any = None,
    img_size: int | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
    deploy: bool = False,
    mean: Any = None,
    std: Any = None,
    pretrained_cfg: Any = None,
    pretrained_cfg_overlay: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A vitsearch architecture as a timm model.

    Args:
        pretrained: load weights: the deployment folder's ``model.safetensors`` when ``arch``
            is its ``arch.yaml``, else ``pretrained_cfg_overlay["file"]``.
        arch: a YAML/JSON path, a dict, an ``ArchConfig`` or a preset name (required).
        img_size, in_chans, num_classes: the profile (default: the deployment folder's or the
            weights', else 224, 3, 1000).
        deploy: build the deployed form (``reparameterize()``: no training-only branches).
        mean, std: normalisation recorded in ``pretrained_cfg`` (default: the folder's, else ImageNet).
    """
    for key in _OFF_OPTIONS:
        if kwargs.pop(key, None):
            raise ValueError(f"vitsearch: {key} is not supported by vitsearch models (leave it unset or 0)")
    if kwargs:
        raise TypeError(f"vitsearch() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
    if arch is None:
        raise ValueError('vitsearch: give the architecture, e.g. timm.create_model("vitsearch", arch="best.yaml")')
    info = deploy_info(arch)
    config = resolve_arch(arch)
    overlay = dict(pretrained_cfg_overlay or {})
    profile = {"img_size": img_size, "in_chans": in_chans, "num_classes": num_classes}
    for key in profile:
        if profile[key] is None and key in info:
            profile[key] = int(info[key])
    norm = {"mean": mean, "std": std}
    for key in norm:
        if norm[key] is None:
            norm[key] = overlay.get(key)

    if pretrained:
        from .weights import model_from_weights

        file = overlay.get("file") or _cfg_dict(pretrained_cfg).get("file")
        if not file and info:
            file = Path(arch).parent / info.get("weights", DEPLOY_WEIGHTS)
        if not file:
            raise ValueError(
                "vitsearch: pretrained=True needs weights: pass pretrained_cfg_overlay=dict(file=PATH) "
                "or arch=<deployment folder>/arch.yaml"
            )
        model, meta = model_from_weights(file, arch=config, **profile)
        profile = {key: meta[key] for key in profile}
        for key in norm:
            if norm[key] is None:
                norm[key] = meta.get(key)
        if deploy and meta["form"] == "train":
            model = model.reparameterize()
    else:
        profile = {key: value for key, value in profile.items() if value is not None}
        model = build_model(config, **profile)
        if deploy:
            model = model.reparameterize()
    for key in norm:
        if norm[key] is None:
            norm[key] = info.get(key)

    chans = model.in_chans
    cfg = {**_cfg_dict(default_cfgs["vitsearch"].default), **_cfg_dict(pretrained_cfg), **overlay}
    cfg.update(
        architecture="vitsearch",
        input_size=(chans, model.img_size, model.img_size),
        num_classes=model.num_classes,
        mean=_per_channel(norm["mean"] if norm["mean"] is not None else IMAGENET_DEFAULT_MEAN, chans, "mean"),
        std=_per_channel(norm["std"] if norm["std"] is not None else IMAGENET_DEFAULT_STD, chans, "std"),
        first_conv=_first_conv(config),
    )
    model.pretrained_cfg = cfg
    model.default_cfg = cfg  # timm's older name for the same dict
    return model
