"""Budgets as people write them: ``2GFLOPs``, ``2G``, ``1.5e9``, ``750MFLOPs``, ``750M``, ``10M`` params."""

from __future__ import annotations

import math
import re

_SCALE = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
# A sign is read so that "-1G" is refused as not positive rather than as unreadable.
_PATTERN = re.compile(
    r"^\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+))\s*(?P<scale>[kKmMgGtT]?)\s*(?P<unit>\w*)\s*$"
)


def parse_amount(text: str | float | int, field: str, units: tuple[str, ...], examples: str) -> int:
    """``'2GFLOPs'`` -> 2_000_000_000. ``units`` are the accepted suffixes after the scale letter.

    Raises:
        ValueError: one line naming ``field`` and what was wrong.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _PATTERN.match(str(text))
        unit = match["unit"].lower() if match else ""
        if match is None or (unit and unit not in units):
            raise ValueError(f"{field}: cannot read {text!r} (examples: {examples})")
        value = float(match["num"]) * _SCALE[match["scale"].upper()]
    if not value > 0:
        raise ValueError(f"{field}: must be positive, got {text!r}")
    if not math.isfinite(value):  # 1e400 reads as inf, which int() cannot take
        raise ValueError(f"{field}: {text!r} is too large")
    return int(round(value))


def parse_flops(text: str | float | int, field: str = "--budget") -> int:
    return parse_amount(text, field, ("flops", "flop"), "2GFLOPs, 2G, 1.5e9, 750MFLOPs, 750M")


def parse_params(text: str | float | int, field: str = "--max-params") -> int:
    return parse_amount(text, field, ("params", "param", "p"), "10M, 5.5M, 2e6")


_TIME = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)\s*(?P<unit>ms|s|us|µs)?\s*$")
_TIME_SCALE = {None: 1.0, "ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3}


def parse_latency_ms(text: str | float | int, field: str = "--max-latency") -> float:
    """``'15ms'`` -> 15.0; a bare number is milliseconds; ``s`` and ``us`` are accepted too."""
    match = _TIME.match(str(text))
    if match is None:
        raise ValueError(f"{field}: cannot read {text!r} (examples: 15ms, 15, 0.015s, 1500us)")
    value = float(match["num"]) * _TIME_SCALE[match["unit"]]
    if not value > 0:
        raise ValueError(f"{field}: must be positive, got {text!r}")
    return value


def format_flops(flops: float) -> str:
    return f"{flops / 1e9:.3f} GFLOPs" if flops >= 1e8 else f"{flops / 1e6:.1f} MFLOPs"


def format_params(params: float) -> str:
    return f"{params / 1e6:.2f}M" if params >= 1e5 else f"{params / 1e3:.1f}K"
