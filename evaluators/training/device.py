"""Device and precision of a training run, resolved once and recorded with its results.

``resolve_device("auto")`` takes the first visible GPU when there is one, the CPU otherwise;
a named CUDA device that this machine does not have is a ``ConfigError`` naming ``--device``.
``resolve_precision`` picks the autocast dtype: ``auto`` is bf16 on a GPU that supports it
and off (float32) on the CPU, where autocast is slower than float32 on most cores.
``place_model`` puts a model where it trains: on the device, in ``channels_last`` on a GPU when
it has 2-D convolutions (cuDNN's fast layout; the CPU keeps NCHW so CPU float32 numbers stay as
they were). ``compiled`` is the opt-in ``torch.compile`` wrapper that training forwards go
through; the plain module stays what is saved, copied (EMA) and deployed.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from vitsearch.space import ConfigError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str | None = "auto") -> torch.device:
    """``auto`` / ``None``, ``cpu``, ``cuda`` or ``cuda:N`` as a ``torch.device`` that exists here."""
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError("--device", f"{spec!r} is not a device (expected auto, cpu, cuda or cuda:N)") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError("--device", f"{spec!r}: only auto, cpu, cuda and cuda:N are supported")
    if not torch.cuda.is_available():
        raise ConfigError("--device", f"{spec!r}: this machine has no CUDA GPU (torch.cuda.is_available() is False)")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError("--device", f"{spec!r}: only {count} CUDA device(s) are visible")
    return device


@dataclass(frozen=True)
class Precision:
    """Autocast settings of one run: ``amp`` is ``bf16``, ``fp16`` or ``off``."""

    device: torch.device
    amp: str = "off"

    @property
    def dtype(self) -> torch.dtype | None:
        return AMP_DTYPES.get(self.amp)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward's context: ``torch.autocast`` when mixed precision is on, nothing otherwise."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling (its exponent range underflows small gradients); bf16 does not."""
        if self.amp != "fp16":
            return None
        return torch.amp.GradScaler(self.device.type)

    def to_dict(self) -> dict[str, str]:
        return {"device": str(self.device), "amp": self.amp}


def resolve_precision(amp: str | None, device: torch.device) -> Precision:
    """``auto`` -> bf16 on a bf16-capable GPU, off elsewhere; an explicit choice is kept as asked."""
    text = (amp or "auto").strip().lower()
    if text not in AMP_CHOICES:
        raise ConfigError("--amp", f"{amp!r} is not one of {', '.join(AMP_CHOICES)}")
    if text == "auto":
        text = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"
    return Precision(device, text)


def prefers_channels_last(model: nn.Module, device: torch.device) -> bool:
    """A GPU run of a model with 2-D convolutions (stems, downsamplers, pooling, dwconv mixers)."""
    return device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules())


def place_model(model: nn.Module, device: torch.device) -> bool:
    """Move ``model`` to ``device`` in the layout it runs fastest in; returns whether that is ``channels_last``."""
    model.to(device)
    channels_last = prefers_channels_last(model, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return channels_last


def compiled(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (shares its parameters), else ``model`` itself."""
    return torch.compile(model) if enabled else model


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """A batch on the run's device (and in ``channels_last`` when the model is)."""
    if channels_last and x.dim() == 4:
        return x.to(device, memory_format=torch.channels_last, non_blocking=True)
    return x.to(device, non_blocking=True)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (ids or UUIDs)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [name.strip() for name in listed.split(",") if name.strip()]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def worker_gpus(device: torch.device, workers: int, visible: list[str] | None = None) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` for each of ``workers`` processes (index 0 is the parent), round robin.

    Only a run on ``cuda`` without an index spreads over the GPUs (``cuda:N`` pins every worker to
    N); ``None`` leaves a process's environment as it is (the parent's first visible GPU is its ``cuda``).
    """
    gpus = visible_gpus() if visible is None else visible
    if device.type != "cuda" or device.index is not None or len(gpus) < 2:
        return [None] * workers
    return [None] + [gpus[k % len(gpus)] for k in range(1, workers)]
