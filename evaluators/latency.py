"""Latency: the wall-clock time of one forward pass on this machine, with torch or onnxruntime.

``measure_latency`` runs a few warm-up passes (allocator, kernel selection, onnxruntime's
first-run graph work), then times ``repeats`` passes one by one and reports their median;
the quartiles say how noisy the machine was. Threads are pinned for the measurement (torch's
intra-op pool, or onnxruntime's session options) and restored after, so a figure always
names its thread count. Backends live in a name-keyed registry.

Latency is a property of the machine that measures it: a search that constrains latency
(``vitsearch run --max-latency``) measures on the machine that runs it.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitsearch.space.registry import Registry

Runner = Callable[[], Any]
BackendFactory = Callable[[nn.Module, torch.Tensor, int], Runner]

BACKENDS: Registry[BackendFactory] = Registry("latency backend")


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    """Decorator: ``factory(model, images, threads) -> run()`` doing one forward pass per call."""
    return BACKENDS.register(name)


def list_backends() -> list[str]:
    return BACKENDS.names()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block (``None``: left as they are)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@register_backend("torch")
def _torch_backend(model: nn.Module, images: torch.Tensor, threads: int) -> Runner:
    def run() -> Any:
        with torch.inference_mode():
            return model(images)

    return run


@register_backend("onnxruntime")
def _onnxruntime_backend(model: nn.Module, images: torch.Tensor, threads: int) -> Runner:
    from vitsearch.space.onnx_export import INPUT, export_onnx_module, onnx_session

    with tempfile.TemporaryDirectory(prefix="vitsearch-latency-") as tmp:
        path = export_onnx_module(model, images[:1], Path(tmp) / "model.onnx")
        session = onnx_session(path, threads)  # the session holds the graph; the file can go
    feed = {INPUT: images.numpy()}
    return lambda: session.run(None, feed)


@dataclass(frozen=True)
class Latency:
    """Milliseconds per forward pass of ``batch`` images: median and spread of ``repeats`` timed runs."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    backend: str
    batch: int
    threads: int
    img_size: int
    repeats: int
    warmup: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_latency(
    model: Any,
    img_size: int | None = None,
    batch: int = 1,
    threads: int = 1,
    backend: str = "torch",
    *,
    in_chans: int | None = None,
    num_classes: int = 1000,
    warmup: int = 5,
    repeats: int = 20,
) -> Latency:
    """Median wall-clock latency of one forward pass, after warm-up.

    Args:
        model: an ``nn.Module`` (timed as given, in eval mode), or anything ``build_model``
            takes (built at ``img_size`` and timed in its deployed form).
        img_size: input side; default the model's ``img_size``, else 224.
        batch: images per forward pass.
        threads: intra-op threads of the backend.
        backend: ``torch`` or ``onnxruntime`` (``list_backends()``).
        in_chans: input channels; default the model's ``in_chans``, else 3.
        num_classes: classifier outputs when building from an architecture.
        warmup: untimed passes first.
        repeats: timed passes; the median is reported.
    """
    limits = (("batch", batch, 1), ("threads", threads, 1), ("repeats", repeats, 1), ("warmup", warmup, 0))
    for name, value, low in limits:
        if value < low:
            raise ValueError(f"measure_latency: {name} must be at least {low}, got {value}")
    BACKENDS.get(backend)  # an unknown name fails before the model is built
    if not isinstance(model, nn.Module):
        from vitsearch.space import build_model

        model = build_model(model, img_size=img_size or 224, in_chans=in_chans or 3, num_classes=num_classes)
        model = model.reparameterize()
    img_size = img_size or getattr(model, "img_size", 224)
    in_chans = in_chans or getattr(model, "in_chans", 3)
    images = torch.randn(batch, in_chans, img_size, img_size, generator=torch.Generator().manual_seed(0))
    return measure_module_latency(model, images, threads, backend, warmup=warmup, repeats=repeats)


def measure_module_latency(
    module: nn.Module,
    inputs: torch.Tensor,
    threads: int = 1,
    backend: str = "torch",
    warmup: int = 5,
    repeats: int = 20,
) -> Latency:
    """``measure_latency`` for any one-input module and a given input (its first axis is the batch).

    ``img_size`` of the result is the input's last axis (the image side, or the width of tokens).
    """
    factory = BACKENDS.get(backend)
    was_training = module.training
    module.eval()
    try:
        with torch_threads(threads):
            run = factory(module, inputs, threads)
            for _ in range(warmup):
                run()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        module.train(was_training)
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return Latency(
        median_ms=statistics.median(times),
        q1_ms=q1,
        q3_ms=q3,
        min_ms=min(times),
        backend=backend,
        batch=inputs.shape[0],
        threads=threads,
        img_size=inputs.shape[-1],
        repeats=repeats,
        warmup=warmup,
    )


@dataclass(frozen=True)
class LatencySettings:
    """How a search measures latency: one setting for every candidate, recorded with the study."""

    backend: str = "torch"
    threads: int = 1
    batch: int = 1
    warmup: int = 3
    repeats: int = 10
    method: str = "measured"  # "measured": each model timed whole; "table": summed per-part timings

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.method == "measured":  # as recorded before the table existed, so older studies match
            out.pop("method")
        return out

    def timing_only(self) -> LatencySettings:
        """These settings as a per-part table uses them (the method is the table's own business)."""
        return replace(self, method="measured")


def arch_latency_ms(arch: Any, img_size: int, in_chans: int, num_classes: int, settings: LatencySettings) -> float:
    """Median latency in ms of an architecture's deployed model at the given profile."""
    return measure_latency(
        arch,
        img_size,
        settings.batch,
        settings.threads,
        settings.backend,
        in_chans=in_chans,
        num_classes=num_classes,
        warmup=settings.warmup,
        repeats=settings.repeats,
    ).median_ms


LATENCY_METHODS = ("measured", "table")
