"""``vitsearch export --deploy``: one folder with the deployed model as config, safetensors and ONNX.

The folder holds ``arch.yaml`` (the architecture), ``model.safetensors`` (the state dict of
the reparameterised model: training-only branches removed, affines folded; its metadata
names the architecture and profile), ``model.onnx`` (opset 17, dynamic batch) and
``export.json`` (profile, normalisation, where the weights came from, and the two parity
figures). Before anything is written the export checks, on seeded random images, that the
deployed model reproduces the training form in eval mode and that onnxruntime reproduces
the deployed model, both to ``PARITY_TOL``; ``export.json`` is written last, so a folder with
it is complete. ``timm.create_model("vitsearch", arch=DIR / "arch.yaml")`` builds the same model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vitsearch.space import ArchConfig, ConfigError, build_model, resolve_arch
from vitsearch.space.files import atomic_write_text
from vitsearch.space.onnx_export import OPSET, export_onnx, onnx_max_abs_diff, random_images
from vitsearch.space.timm_model import DEPLOY_INFO, DEPLOY_WEIGHTS
from vitsearch.space.weights import model_from_weights, read_weights, save_weights

PARITY_TOL = 1e-4  # max |difference| of logits allowed between training form, deployed form and onnxruntime
TRAIN_SUBDIR = "train"  # where `vitsearch train` puts its outputs inside a run directory
ARCH_FILE, ONNX_FILE = "arch.yaml", "model.onnx"


class ParityError(ValueError):
    """The deployed model or its ONNX file does not reproduce the model it came from."""


@dataclass
class ExportSource:
    """What to export: the architecture, its profile, and weights found beside it (if any)."""

    arch: ArchConfig
    label: str  # for messages: "trial 7 of study x" or the file name
    profile: dict[str, int] = field(default_factory=dict)  # img_size / num_classes recorded by a study
    weights: Path | None = None


@dataclass
class DeployResult:
    out_dir: Path
    info: dict[str, Any]

    @property
    def files(self) -> list[Path]:
        return [self.out_dir / name for name in (ARCH_FILE, DEPLOY_WEIGHTS, ONNX_FILE, DEPLOY_INFO)]


def resolve_source(target: str, study: str | None = None, trial: int | None = None) -> ExportSource:
    """A run directory / storage URL (a trial, default the best), or an architecture file or preset.

    For a run directory, the weights ``vitsearch train`` left in ``<run>/train/`` are used when
    they belong to the exported architecture.
    """
    from .driver import load_study
    from .results import arch_of

    path = Path(target)
    is_run = "://" in target or (path.is_dir() and (path / "study.db").exists())
    if not is_run:
        if trial is not None or study is not None:
            raise ConfigError("--trial", f"{target} is not a run directory; --trial and --study need one")
        if path.is_dir():
            raise ConfigError(target, "no study.db here (is it a vitsearch run directory?)")
        return ExportSource(arch=resolve_arch(target), label=path.name)
    loaded = load_study(target, study)
    arch, frozen = arch_of(loaded, trial)
    search = loaded.user_attrs.get("search", {})
    profile = {key: int(search[key]) for key in ("img_size", "num_classes") if key in search}
    weights = None
    if "://" not in target:
        candidate = path / TRAIN_SUBDIR / DEPLOY_WEIGHTS
        if candidate.is_file() and read_weights(candidate)[1].get("digest") == arch.digest():
            weights = candidate
    return ExportSource(arch, f"trial {frozen.number} of {loaded.study_name}", profile, weights)


@torch.no_grad()
def export_deployed(
    arch: Any,
    out_dir: str | Path,
    weights: str | Path | None = None,
    img_size: int | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    opset: int = OPSET,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> DeployResult:
    """Write the deployment folder of ``arch`` (see the module docstring).

    Args:
        arch: anything ``resolve_arch`` takes.
        out_dir: the folder to write (created; files in it are replaced atomically).
        weights: a weights file (safetensors or a weights-only torch checkpoint, e.g. what
            ``vitsearch train`` wrote); ``None`` exports the model initialised with ``seed``.
        img_size, in_chans, num_classes: the profile; default the weights', else 224 / 3 / 1000.
        seed: initialisation seed when there are no weights.
        opset: ONNX opset (17 to 19).
        mean, std: input normalisation to record (default: the weights', else ImageNet's).

    Raises:
        ConfigError: unreadable or mismatched weights, bad profile.
        ParityError: a parity check failed (nothing is written then).
    """
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from vitsearch.evaluators.complexity import count_flops

    config = resolve_arch(arch)
    meta: dict[str, Any] = {}
    if weights is not None:
        model, meta = model_from_weights(weights, config, img_size, in_chans, num_classes)
        source = str(weights)
    else:
        torch.manual_seed(seed)
        profile = {"img_size": img_size or 224, "in_chans": in_chans or 3, "num_classes": num_classes or 1000}
        model = build_model(config, **profile).eval()
        meta = {"form": "train"}
        source = f"initialised with seed {seed} (no weights given)"
    deployed = model.reparameterize() if meta["form"] == "train" else model
    profile = {"img_size": deployed.img_size, "in_chans": deployed.in_chans, "num_classes": deployed.num_classes}

    x = random_images(2, profile["in_chans"], profile["img_size"], seed=seed)
    reparam_diff = None
    if meta["form"] == "train":  # deployed weights have no training form left to compare with
        reparam_diff = float((model.eval()(x) - deployed(x)).abs().max())
        if not reparam_diff <= PARITY_TOL:
            raise ParityError(f"reparameterisation changed the outputs by {reparam_diff:.3g} (> {PARITY_TOL:g})")

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError("-o", f"{out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEPLOY_INFO).unlink(missing_ok=True)  # the folder is complete again only when this is back
    onnx_path = export_onnx(deployed, out_dir / ONNX_FILE, profile["img_size"], profile["in_chans"], opset)
    onnx_diff = onnx_max_abs_diff(onnx_path, deployed, profile["img_size"], profile["in_chans"], seed=seed)
    if not onnx_diff <= PARITY_TOL:
        onnx_path.unlink(missing_ok=True)
        raise ParityError(f"onnxruntime differs from torch by {onnx_diff:.3g} (> {PARITY_TOL:g}) on {config.digest()}")

    norm = {
        "mean": list(mean or meta.get("mean") or IMAGENET_DEFAULT_MEAN),
        "std": list(std or meta.get("std") or IMAGENET_DEFAULT_STD),
    }
    save_weights(deployed, out_dir / DEPLOY_WEIGHTS, "deployed", source=source, **norm)
    atomic_write_text(out_dir / ARCH_FILE, config.to_yaml())
    import onnxruntime

    info = {
        "arch_file": ARCH_FILE,
        "weights": DEPLOY_WEIGHTS,
        "onnx": ONNX_FILE,
        "digest": config.digest(),
        **profile,
        **norm,
        "weights_source": source,
        "flops": count_flops(deployed, profile["img_size"], profile["in_chans"]),
        "params": sum(p.numel() for p in deployed.parameters()),
        "opset": opset,
        "parity": {
            "inputs": f"2 images drawn N(0, 1) with seed {seed}",
            "tolerance": PARITY_TOL,
            "reparameterized_vs_train_form": reparam_diff,
            "onnxruntime_vs_torch": onnx_diff,
        },
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    atomic_write_text(out_dir / DEPLOY_INFO, json.dumps(info, indent=2) + "\n")
    return DeployResult(out_dir, info)
