"""Synflow: iterative-magnitude-free synaptic flow, as a zero-cost score.

Tanaka, Kunin, Yamins, Ganguli, "Pruning neural networks without any data by iteratively
conserving synaptic flow", NeurIPS 2020; used as a NAS proxy by Abdelfattah, Mehrotra,
Dudziak, Lane, "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.

Linearise the network (every parameter replaced by its absolute value), feed one all-ones
image ``1``, and with ``R = sum(f(1))``::

    synflow = sum over Linear / Conv weights W of  sum |W * dR/dW|

No data or labels are used. vitsearch computes on a float64 copy of the model (the sums
overflow float32 on deep nets) and reports ``ln(synflow)``, rank-equivalent and of a
printable size; the model passed in is not modified.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .base import EvaluationFailed, register_evaluator
from .zero_cost import ZeroCostEvaluator, float64_zero, weight_layers


def linearized_copy(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` with every parameter and buffer replaced by its absolute value."""
    twin = copy.deepcopy(model).double()
    with torch.no_grad():
        for tensor in twin.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    twin.zero_grad(set_to_none=True)
    return twin


def ones_backward(twin: nn.Module, images: torch.Tensor) -> None:
    """``sum(f(1)).backward()`` for one all-ones image shaped like ``images[0]``."""
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    twin(ones).sum().backward()


def synflow_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """``ln sum |W * dR/dW|`` over Linear / Conv weights of the linearised float64 model."""
    twin = linearized_copy(model)
    ones_backward(twin, images)
    total = float64_zero(twin)
    with torch.no_grad():
        for layer in weight_layers(twin):
            if layer.weight.grad is not None:
                total += (layer.weight * layer.weight.grad).abs().sum()
    value = float(total)
    if not math.isfinite(value):
        raise EvaluationFailed(f"synflow: the synaptic flow overflowed float64 ({value})")
    if value <= 0:
        raise EvaluationFailed("synflow: zero synaptic flow (no weight gets a gradient)")
    return math.log(value)


@register_evaluator("synflow")
class SynflowEvaluator(ZeroCostEvaluator):
    """Synflow (Tanaka et al. 2020; Abdelfattah et al. 2021), reported as its natural log."""

    score_fn = staticmethod(synflow_score)
