"""Shared machinery of the zero-cost evaluators (one forward/backward, no training).

Each score lives in its own module (``naswot``, ``synflow``, ``snip``, ``grad_norm``,
``jacob_cov``, ``dss``) as a pure function ``score(model, images, labels) -> float`` plus a
registered ``ZeroCostEvaluator`` subclass. The evaluator builds the architecture with the
same stem / width adaptation as the proxy trainer (``profile.adapt_arch``), seeded, in
train mode, takes ``num_batches`` seeded batches of the training split and averages the
score over them. A non-finite score fails the trial (``EvaluationFailed``).

At the *target* profile (224 px, 1000 classes) call the score functions on a model from
``build_model`` directly (``studies/bench_zero_cost.py`` does).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from .base import BaseEvaluator, EvaluationFailed
from .data import DatasetInfo, check_data_spec, load_dataset, materialize, stratified_subset
from .profile import adapt_arch
from .training import resolve_device

if TYPE_CHECKING:
    import optuna

    from vitsearch.space import ArchConfig

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)  # the "layers" of the zero-cost literature


def weight_layers(model: nn.Module) -> Iterator[nn.Module]:
    """Linear and convolution modules with a weight, in module order."""
    for m in model.modules():
        if isinstance(m, WEIGHT_LAYERS) and m.weight is not None:
            yield m


def blocks_of(model: nn.Module) -> Iterator[nn.Module]:
    """MetaFormer blocks found by shape: modules with both a ``mixer`` and an ``mlp`` attribute."""
    for m in model.modules():
        if isinstance(getattr(m, "mixer", None), nn.Module) and isinstance(getattr(m, "mlp", None), nn.Module):
            yield m


def is_attention_family(mixer: nn.Module) -> bool:
    """A mixer with multi-head attention weights: its registered class takes ``heads``."""
    return bool(getattr(type(mixer), "USES_HEADS", False)) and any(True for _ in weight_layers(mixer))


def float64_zero(module: nn.Module) -> torch.Tensor:
    """A float64 accumulator on the module's device (scores sum per-layer terms into it)."""
    first = next(module.parameters(), None)
    return torch.zeros((), dtype=torch.float64, device=first.device if first is not None else None)


def classification_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(images), labels)


class ZeroCostEvaluator(BaseEvaluator):
    """Base of the zero-cost evaluators; subclasses set ``score_fn`` (a staticmethod).

    Args:
        data: dataset spec (``load_dataset``).
        img_size: input side; None = the dataset's native size.
        grid: stem token grid side; None = the arch's grid at ``target_img_size``.
        target_img_size: resolution the arch is described at.
        width_mult: stage width multiplier (see ``profile.scale_widths``); 1 scores the arch as is.
        batch_size: images per batch (NASWOT's kernel is batch x batch).
        num_batches: batches to average the score over.
        seed: model init and batch choice.
        device: where the model and batches live (``auto``: a GPU when there is one). Scores
            accumulate in float64 on that device; the model is initialised on the CPU first, so
            a seed gives the same weights everywhere.
    """

    score_fn: ClassVar[Any] = None

    def __init__(
        self,
        data: str = "mnist5k",
        img_size: int | None = None,
        grid: int | None = None,
        target_img_size: int = 224,
        width_mult: float = 1.0,
        batch_size: int = 64,
        num_batches: int = 1,
        seed: int = 0,
        device: str = "auto",
    ):
        if batch_size < 2:
            raise ValueError(f"{self.name}: batch_size must be at least 2, got {batch_size}")
        if num_batches < 1:
            raise ValueError(f"{self.name}: num_batches must be at least 1, got {num_batches}")
        check_data_spec(data)  # the data load waits for the first architecture; a bad path should not
        self.data, self.img_size, self.grid = data, img_size, grid
        self.target_img_size, self.width_mult = target_img_size, width_mult
        self.batch_size, self.num_batches, self.seed = batch_size, num_batches, seed
        self._batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._info: DatasetInfo | None = None
        self.device = resolve_device(device)

    def settings(self) -> dict[str, Any]:
        out = {
            "data": self.data,
            "img_size": self.img_size,
            "grid": self.grid,
            "target_img_size": self.target_img_size,
            "width_mult": self.width_mult,
            "batch_size": self.batch_size,
            "num_batches": self.num_batches,
            "seed": self.seed,
        }
        if self.device.type != "cpu":  # CPU results keep the settings (and cache keys) they always had
            out["device"] = str(self.device)
        return out

    def batches(self) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], DatasetInfo]:
        """The seeded batches every architecture is scored on (loaded once)."""
        if self._batches is None or self._info is None:
            split = load_dataset(self.data, img_size=self.img_size, seed=self.seed)
            n = self.batch_size * self.num_batches
            images, labels = materialize(stratified_subset(split.train, n, self.seed))
            if len(images) < n:
                raise ValueError(f"data {self.data!r}: {len(images)} training images, {self.name} needs {n}")
            g = torch.Generator().manual_seed(self.seed)
            order = torch.randperm(len(images), generator=g)[:n]
            images, labels = images[order], labels[order]
            images, labels = images.to(self.device), labels.to(self.device)
            self._batches = [
                (images[i : i + self.batch_size], labels[i : i + self.batch_size]) for i in range(0, n, self.batch_size)
            ]
            self._info = split.info
        return self._batches, self._info

    def build(self, arch: ArchConfig) -> nn.Module:
        """The seeded model this evaluator scores (train mode)."""
        from vitsearch.space import build_model, resolve_arch

        _, info = self.batches()
        proxy = adapt_arch(resolve_arch(arch), info.img_size, self.target_img_size, self.grid, self.width_mult)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = build_model(proxy, img_size=info.img_size, in_chans=info.in_chans, num_classes=info.num_classes)
        return model.to(self.device).train()

    def evaluate(self, arch: ArchConfig, trial: optuna.Trial | None = None) -> dict[str, float]:
        batches, _ = self.batches()
        start = time.perf_counter()
        model = self.build(arch)
        fn = type(self).score_fn
        scores = [float(fn(model, images, labels)) for images, labels in batches]
        score = sum(scores) / len(scores)
        if score != score or score in (float("inf"), float("-inf")):
            raise EvaluationFailed(f"{self.name}: non-finite score {score}")
        return {
            "score": score,
            self.name: score,
            "seconds": time.perf_counter() - start,
            "params": float(sum(p.numel() for p in model.parameters())),
        }
