"""The batches of ``vitsearch train``: seeded, in memory when the dataset fits, a DataLoader otherwise; mixing."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from vitsearch.evaluators.data import materialize
from vitsearch.evaluators.training import to_device
from vitsearch.evaluators.training.engine import top1
from vitsearch.evaluators.training.fit import FitState, Hook


class Batches:
    """Seeded mini-batches of a dataset: in-memory tensors when possible, a DataLoader otherwise."""

    def __init__(
        self,
        dataset,
        batch_size: int,
        drop_last: bool = False,
        workers: int = 0,
        pin_memory: bool = False,
    ):
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.workers, self.pin_memory = workers, pin_memory
        self.tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        if _in_memory(dataset):
            self.tensors = materialize(dataset)
        n = len(dataset)
        self.steps = n // batch_size if drop_last else math.ceil(n / batch_size)

    def to(self, device: torch.device, channels_last: bool = False) -> Batches:
        """Keep in-memory tensors on ``device`` (moved once; a DataLoader's batches move per step)."""
        if self.tensors is not None:
            x, y = self.tensors
            self.tensors = (to_device(x, device, channels_last), y.to(device))
        return self

    def __call__(self, generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is not None:
            x, y = self.tensors
            order = torch.randperm(len(x), generator=generator) if generator is not None else torch.arange(len(x))
            order = order.to(x.device)
            for step in range(self.steps):
                idx = order[step * self.batch_size : (step + 1) * self.batch_size]
                yield x[idx], y[idx]
            return
        from torch.utils.data import DataLoader

        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=generator is not None,
            generator=generator,
            drop_last=self.drop_last,
            num_workers=self.workers,
            pin_memory=self.pin_memory,
        )
        for x, y in loader:
            yield x, torch.as_tensor(y).long()


def _in_memory(dataset) -> bool:
    from torch.utils.data import Subset, TensorDataset

    return isinstance(dataset, TensorDataset) or (
        isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorDataset)
    )


def evaluate_top1(model: nn.Module, batches: Batches, precision, channels_last: bool = False) -> float:
    """Top-1 of ``model`` over every batch, on the run's device (the engine's ``top1``)."""
    device = precision.device
    return top1(
        model,
        ((to_device(x, device, channels_last), y.to(device)) for x, y in batches()),
        precision,
    )


class Mixing(Hook):
    """Mixup / CutMix of each training batch (timm's ``Mixup``: mixed images, soft targets)."""

    def __init__(self, mixup):
        self.mixup = mixup

    def batch(self, state: FitState, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mixup(x, target)
