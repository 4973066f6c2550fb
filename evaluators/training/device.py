"""Device and precision of a training run, resolved once and recorded with its results.

``resolve_device("auto")`` takes the first visible GPU when there is one, the CPU otherwise;
a named CUDA device that this machine does not have is a ``ConfigError`` naming ``--device``.
``resolve_precision`` picks the autocast dtype: ``auto`` is bf16 on a GPU that supports it
and off (float32) on the CPU, where autocast is slower than float32 on most cores.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

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
