"""Gradient norm at initialisation, as a zero-cost score.

Abdelfattah, Mehrotra, Dudziak, Lane, "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.

With ``L`` the cross-entropy of one labelled batch::

    grad_norm = sum over Linear / Conv weights W of  ||dL/dW||_2

(the per-layer Euclidean norms, summed, as in the paper's code).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import register_evaluator
from .zero_cost import ZeroCostEvaluator, classification_loss, float64_zero, weight_layers


def grad_norm_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum of the per-layer L2 norms of the weight gradients of the batch's cross-entropy."""
    model.zero_grad(set_to_none=True)
    classification_loss(model, images, labels).backward()
    total = float64_zero(model)
    for layer in weight_layers(model):
        if layer.weight.grad is not None:
            total += layer.weight.grad.norm().double()
    model.zero_grad(set_to_none=True)
    return float(total)


@register_evaluator("grad_norm")
class GradNormEvaluator(ZeroCostEvaluator):
    """Gradient norm (Abdelfattah et al. 2021); higher is better."""

    score_fn = staticmethod(grad_norm_score)
