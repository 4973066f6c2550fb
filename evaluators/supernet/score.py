"""Accuracy of one path with inherited weights, with its own BatchNorm statistics.

The BatchNorm running statistics of a supernet are shared by every path that used them in
training, so they describe a mix of paths, not the one being scored. As OFA (Cai et al. 2020)
does, ``path_accuracy`` re-estimates them for the path first: fresh statistics, cumulative
averaging (``momentum=None``) over a few training batches in train mode, no gradients; the
supernet's own statistics are left untouched. Paths without BatchNorm skip this step.
"""

from __future__ import annotations

import math

import torch
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from vitsearch.space import ArchConfig

from .model import Supernet

EVAL_BATCH = 250


def _fresh_statistics(state: dict[str, torch.Tensor], template: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` with new running statistics for every BatchNorm of ``template``."""
    out = dict(state)
    for name, module in template.named_modules():
        if isinstance(module, _BatchNorm):
            for buffer, fill in (("running_mean", 0.0), ("running_var", 1.0), ("num_batches_tracked", 0)):
                key = f"{name}.{buffer}"
                out[key] = torch.full_like(state[key], fill)
    return out


@torch.no_grad()
def path_accuracy(
    supernet: Supernet,
    path: ArchConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    calibration: torch.Tensor | None = None,
    batch_size: int = EVAL_BATCH,
    calibration_batch: int = 64,
) -> float:
    """Top-1 accuracy of ``path`` (an adapted architecture) on ``images``; NaN if a logit is not finite.

    Args:
        supernet: the trained supernet (its mode is restored afterwards).
        path: the architecture as the supernet's profile builds it (``supernet.adapt``).
        images, labels: the validation set, on the supernet's device.
        calibration: training images to re-estimate the path's BatchNorm statistics on
            (``None``: use the shared statistics).
        batch_size: evaluation batch.
        calibration_batch: batch of the statistics pass.
    """
    was_training = supernet.training
    supernet.eval()
    try:
        template = supernet.template(path)
        state = supernet.path_state(path, template)
        norms = [m for m in template.modules() if isinstance(m, _BatchNorm)]
        if norms and calibration is not None and len(calibration):
            state = _fresh_statistics(state, template)
            saved = [(m, m.momentum) for m in norms]
            try:
                for m in norms:
                    m.momentum = None  # cumulative average over the calibration batches
                    m.train()
                for i in range(0, len(calibration), calibration_batch):
                    functional_call(template, state, (calibration[i : i + calibration_batch],), tie_weights=False)
            finally:
                for m, momentum in saved:
                    m.momentum = momentum
                    m.eval()
        correct = 0
        for i in range(0, len(images), batch_size):
            logits = functional_call(template, state, (images[i : i + batch_size],), tie_weights=False)
            if not torch.isfinite(logits).all():
                return math.nan
            correct += int((logits.argmax(1) == labels[i : i + batch_size]).sum())
        return correct / len(images)
    finally:
        supernet.train(was_training)
