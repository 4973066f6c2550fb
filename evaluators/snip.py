"""SNIP connection sensitivity, summed over the network, as a zero-cost score.

Lee, Ajanthan, Torr, "SNIP: Single-shot Network Pruning based on Connection Sensitivity",
ICLR 2019; used as a NAS proxy by Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS", ICLR 2021.

With ``L`` the cross-entropy of one labelled batch at initialisation::

    snip = sum over Linear / Conv weights W of  sum |W * dL/dW|
"""

from __future__ import annotations

import torch
from torch import nn

from .base import register_evaluator
from .zero_cost import ZeroCostEvaluator, classification_loss, float64_zero, weight_layers


def snip_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """``sum |W * dL/dW|`` over Linear / Conv weights for the batch's cross-entropy ``L``."""
    model.zero_grad(set_to_none=True)
    classification_loss(model, images, labels).backward()
    total = float64_zero(model)
    for layer in weight_layers(model):
        if layer.weight.grad is not None:
            total += (layer.weight.detach() * layer.weight.grad).abs().sum().double()
    model.zero_grad(set_to_none=True)
    return float(total)


@register_evaluator("snip")
class SnipEvaluator(ZeroCostEvaluator):
    """SNIP saliency (Lee et al. 2019; Abdelfattah et al. 2021); higher is better."""

    score_fn = staticmethod(snip_score)
