"""One optimizer update and one top-1, shared by the proxy, ``vitsearch train`` and the supernet.

``Engine.update(loss_fn, where)`` runs, in this order (the order the proxy always had, so CPU
float32 scores are unchanged): the caller's forward and loss under the run's autocast, the
divergence check (a non-finite loss, or one above ``diverge_factor`` times
``max(first loss, ln classes)``), ``zero_grad``, backward (through a grad scaler for fp16),
global grad-norm clipping (a non-finite norm is divergence), the optimizer step, the
per-update schedule step and the EMA update. The caller's ``loss_fn`` is where each path is
its own: mixup and distillation for ``train``, the sandwich rule for the supernet.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from vitsearch.evaluators.base import DivergedError

from .device import Precision

EVAL_BATCH = 256


class Engine:
    """The update step of one training run.

    Args:
        model: what is trained (its parameters are clipped).
        optimizer, scheduler: from ``optim.make_optimizer`` / ``make_scheduler``.
        precision: device and autocast of the run.
        grad_clip: max global grad norm; ``None`` = no clipping.
        ema: a timm ``ModelEmaV3`` (or ``None``), updated after every step.
        diverge_factor: a loss above this times ``max(first loss, diverge_floor)`` is divergence;
            ``None`` = only a non-finite loss is.
        updates: updates already taken (a resumed run).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer,
        scheduler,
        precision: Precision,
        grad_clip: float | None = None,
        ema=None,
        diverge_factor: float | None = None,
        diverge_floor: float = 0.0,
        updates: int = 0,
    ):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.precision, self.grad_clip, self.ema = precision, grad_clip, ema
        self.diverge_factor, self.limit = diverge_factor, diverge_floor
        self.scaler = precision.grad_scaler()
        self.updates = updates
        self._first_seen = updates > 0

    def update(self, loss_fn: Callable[[], torch.Tensor], where: str) -> float:
        """One optimizer update on the loss ``loss_fn`` computes; returns the loss value."""
        with self.precision.autocast():
            loss = loss_fn()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergedError(f"non-finite training loss ({value}) at {where}")
        if self.diverge_factor is not None:
            if not self._first_seen:
                self.limit, self._first_seen = max(self.limit, value), True
            if value > self.diverge_factor * self.limit:
                raise DivergedError(f"training loss exploded to {value:.3g} (first {self.limit:.3g}) at {where}")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.grad_clip is not None:
            norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip))
            if not math.isfinite(norm) and self.scaler is None:  # fp16's scaler skips such a step itself
                raise DivergedError(f"non-finite gradient norm at {where}")
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.updates += 1
        self.scheduler.step_update(num_updates=self.updates)
        if self.ema is not None:
            self.ema.update(self.model, step=self.updates)
        return value

    def end_epoch(self, epoch: int) -> None:
        """The epoch-level schedule step (timm's per-update cosine ignores it; kept for other schedules)."""
        self.scheduler.step(epoch)


@torch.no_grad()
def top1(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    precision: Precision | None = None,
    check_finite: bool = False,
) -> float:
    """Top-1 accuracy of ``model`` in eval mode over ``(images, labels)`` batches (restores the mode).

    With ``check_finite`` a non-finite logit raises ``DivergedError``.
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    context = precision.autocast if precision is not None else contextlib.nullcontext
    try:
        for x, y in batches:
            with context():
                logits = model(x)
            if check_finite and not torch.isfinite(logits).all():
                raise DivergedError("non-finite logits on the validation set")
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
    finally:
        model.train(was_training)
    return correct / max(total, 1)


def tensor_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int = EVAL_BATCH):
    """In-order batches of two tensors (validation)."""
    for i in range(0, len(images), batch_size):
        yield images[i : i + batch_size], labels[i : i + batch_size]
