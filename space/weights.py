"""Weight files: safetensors with the architecture in their metadata, and weights-only torch checkpoints.

A weights file written here is self-describing: its safetensors header carries the
architecture (JSON), the profile it was built for (``img_size``, ``in_chans``,
``num_classes``, ``mean``, ``std``) and its ``form``: ``train`` (as ``build_model`` builds it)
or ``deployed`` (after ``reparameterize()``: training-only branches removed, affines folded),
so ``model_from_weights(path)`` rebuilds the exact module with no other input.

Loading never unpickles untrusted data: safetensors, or ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers. Every problem is a ``ConfigError``
naming the file and what is wrong, for the CLI to print as one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ArchConfig, ConfigError
from .files import atomic_path

FORMS = ("train", "deployed")
_PROFILE_KEYS = ("img_size", "in_chans", "num_classes")


def weights_metadata(model: nn.Module, form: str, **extra: Any) -> dict[str, str]:
    """The safetensors header of ``model``: architecture, profile, form (strings only, as the format asks)."""
    assert form in FORMS, f"form must be one of {FORMS}"
    arch: ArchConfig = model.arch  # type: ignore[assignment]
    meta = {
        "format": "vitsearch-weights-1",
        "arch": arch.to_json(),
        "digest": arch.digest(),
        "form": form,
        **{key: str(getattr(model, key)) for key in _PROFILE_KEYS},
    }
    meta.update({key: json.dumps(value) for key, value in extra.items()})
    return meta


def save_weights(model: nn.Module, path: str | Path, form: str, **extra: Any) -> Path:
    """Write ``model``'s state dict as safetensors with its metadata, atomically.

    Args:
        model: a ``VitModel`` (train form) or what its ``reparameterize()`` returned.
        path: the ``.safetensors`` file to write.
        form: ``train`` or ``deployed``, what ``model`` is.
        extra: JSON-able values stored beside (``mean``, ``std``, ``source``...).
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared or non-contiguous storage; clones are cheap at these sizes.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path, mode=0o644) as tmp:
        save_file(tensors, tmp, metadata=weights_metadata(model, form, **extra))
    return path


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, metadata)`` from a safetensors file or a weights-only torch checkpoint.

    Torch checkpoints may be a bare state dict, a ``vitsearch train`` checkpoint (``model``,
    ``ema``, ``meta``; the weights ``meta["weights"]`` names are taken, default ``model``) or a
    timm-style ``{"state_dict": ...}``. Metadata values are decoded from JSON where they are JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "no such weights file" if not path.exists() else "not a file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle refused (weights_only), truncated file, not a zip...
        problem = describe_load_error(err)
        raise ConfigError(str(path), f"not a safetensors file or a weights-only torch checkpoint ({problem})") from None
    if not isinstance(blob, Mapping):
        raise ConfigError(str(path), f"expected a state dict or a checkpoint dict, found {type(blob).__name__}")
    meta: dict[str, Any] = dict(blob.get("meta", {})) if isinstance(blob.get("meta"), Mapping) else {}
    if "model" in blob and isinstance(blob["model"], Mapping):
        which = meta.get("weights", "model")
        if not isinstance(blob.get(which), Mapping):
            raise ConfigError(str(path), f"checkpoint names weights {which!r} but holds none")
        state = blob[which]
    elif "state_dict" in blob and isinstance(blob["state_dict"], Mapping):
        state = blob["state_dict"]
    else:
        state = blob
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConfigError(str(path), f"entry {bad[0]!r} is not a tensor: not a state dict")
    return dict(state), meta


def describe_load_error(err: Exception) -> str:
    """The informative part of torch.load's error: its WeightsUnpickler line, else its first line."""
    text = " ".join(str(err).replace("\x1b[1m", "").replace("\x1b[0m", "").split())
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = text.split(marker, 1)[1]
        for cut in (" Please use", " Check the documentation"):
            detail = detail.split(cut, 1)[0]
        return "weights_only refused it: " + detail.strip()[:160]
    # torch's zip reader appends a long hint after its first sentence ("This is an internal miniz error...")
    return (text.split(". ", 1)[0] or type(err).__name__)[:160]


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            raw_meta = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ConfigError(str(path), f"not a readable safetensors file ({first})") from None
    meta: dict[str, Any] = {}
    for key, value in raw_meta.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    if isinstance(meta.get("arch"), Mapping):
        meta["arch"] = dict(meta["arch"])
    return state, meta


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming the first mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise ConfigError(
            source, f"{k} has shape {tuple(state[k].shape)}, the model needs {tuple(own[k].shape)} (other profile?)"
        )
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (first {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (first {unexpected[0]})")
        raise ConfigError(source, f"weights do not fit this architecture: {', '.join(parts)}")
    model.load_state_dict(state, strict=True)


def model_from_weights(
    path: str | Path,
    arch: Any = None,
    img_size: int | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
    form: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a weights file holds and load it; ``(model, metadata)``, model in eval mode.

    Args:
        path: safetensors or weights-only torch file.
        arch: the architecture (anything ``resolve_arch`` takes); default the one in the file.
            When both are known they must have the same digest.
        img_size, in_chans, num_classes: the profile; default the file's, else 224 / 3 / 1000.
        form: ``train`` or ``deployed``; default the file's, else whichever the keys fit.
    """
    from .model import build_model
    from .presets import resolve_arch

    state, meta = read_weights(path)
    source = str(path)
    stored = ArchConfig.from_dict(meta["arch"]) if isinstance(meta.get("arch"), Mapping) else None
    config = resolve_arch(arch) if arch is not None else stored
    if config is None:
        raise ConfigError(source, "holds no architecture: give the architecture it was trained for")
    if stored is not None and stored.digest() != config.digest():
        raise ConfigError(
            source, f"holds weights of architecture {stored.digest()}, not of the given one ({config.digest()})"
        )
    profile = {}
    for key, given, default in zip(_PROFILE_KEYS, (img_size, in_chans, num_classes), (224, 3, 1000), strict=True):
        recorded = int(meta[key]) if key in meta else None
        if given is not None and recorded is not None and given != recorded:
            option = f"--{key.replace('_', '-')}"
            raise ConfigError(option, f"{given} differs from the {recorded} the weights were built for")
        profile[key] = given if given is not None else recorded if recorded is not None else default
    model = build_model(config, **profile)
    wanted = form or meta.get("form")
    if wanted is not None and wanted not in FORMS:
        raise ConfigError(source, f"unknown form {wanted!r} (choose from {', '.join(FORMS)})")
    errors: list[ConfigError] = []
    for candidate in [wanted] if wanted else list(FORMS):
        target = model if candidate == "train" else model.reparameterize()
        try:
            load_state(target, state, source)
        except ConfigError as err:
            errors.append(err)
            continue
        return target.eval(), {**meta, "form": candidate, **profile}
    raise errors[0]
