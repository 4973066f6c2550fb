"""timm's optimizer and scheduler factories, set up one way for every training path.

AdamW with no weight decay on biases, norms and other 1-D tensors (``create_optimizer_v2``);
a cosine schedule stepped per update after a linear warm-up from ``warmup_lr``
(``create_scheduler_v2`` with ``step_on_epochs=False``). Fractional warm-up epochs are
allowed (the supernet's): timm counts warm-up in updates here.
"""

from __future__ import annotations

from torch import nn


def make_optimizer(model: nn.Module, lr: float, weight_decay: float):
    from timm.optim import create_optimizer_v2

    return create_optimizer_v2(model, opt="adamw", lr=lr, weight_decay=weight_decay)


def make_scheduler(
    optimizer,
    epochs: int,
    updates_per_epoch: int,
    warmup_epochs: float = 0,
    warmup_lr: float = 1e-6,
    min_lr: float = 1e-5,
):
    """Cosine to ``min_lr`` over ``epochs`` with linear warm-up; call ``step_update`` after every update."""
    from timm.scheduler import create_scheduler_v2

    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched="cosine",
        num_epochs=epochs,
        warmup_epochs=warmup_epochs,
        warmup_lr=warmup_lr,
        min_lr=min_lr,
        step_on_epochs=False,
        updates_per_epoch=updates_per_epoch,
    )
    return scheduler
