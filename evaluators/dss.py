"""DSS: the transformer-specific zero-cost score of TF-TAS.

Zhou, Li, Li, Liu, Zhang, Wang, Ji, "Training-free Transformer Architecture Search", CVPR
2022 (TF-TAS). DSS-indicator = synaptic **D**iversity of the multi-head self-attention
weights + synaptic **S**aliency of the MLP weights. Like synflow, it is data-free: the
network is linearised (parameters replaced by their absolute values), one all-ones image
goes through, and with ``R = sum(f(1))``::

    S_D = sum over MHSA weight matrices W_m of  ||W_m||_nuc * ||dR/dW_m||_nuc
    S_S = sum over MLP weight matrices W    of  sum |W * dR/dW|
    DSS = S_D + S_S

(the nuclear norm ``||.||_nuc`` is the sum of singular values; a low-rank, collapsed
attention projection scores low). As in the TF-TAS code, the classifier head's weight also
counts towards the saliency term; the stem and the stage downsamplers do not count.

Mapping to vitsearch modules, by type, not by name: a *block* is any module with both a
``mixer`` and an ``mlp`` attribute. The block's ``mlp`` (whatever module it holds: dense,
block-diagonal...) gives ``S_S`` over its Linear / Conv weights. Its ``mixer`` gives
``S_D`` over its weight matrices when it is attention-family (its registered class takes
``heads``: softmax attention, and the linear attentions); a Conv weight is flattened to
``(out, in * k * k)`` first.

Mixers without attention weights: parameter-free mixers (``pool``, ``identity``, ``fnet``)
contribute nothing, so such a block scores by its MLP alone, as TF-TAS scores only MHSA and
MLP. Parametric non-attention mixers (e.g. a depth-wise conv) contribute synaptic
*saliency* of their weights, as TF-TAS treats every non-MHSA weight matrix. DSS therefore
compares attention and attention-free blocks on partly different terms; read cross-family
rankings with that in mind.

Computed in float64 on a copy (the model passed in is not modified).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import EvaluationFailed, register_evaluator
from .synflow import linearized_copy, ones_backward
from .zero_cost import ZeroCostEvaluator, blocks_of, float64_zero, is_attention_family, weight_layers


@torch.no_grad()
def _saliency(module: nn.Module) -> torch.Tensor:
    total = float64_zero(module)
    for layer in weight_layers(module):
        if layer.weight.grad is not None:
            total += (layer.weight * layer.weight.grad).abs().sum()
    return total


@torch.no_grad()
def _diversity(module: nn.Module) -> torch.Tensor:
    total = float64_zero(module)
    for layer in weight_layers(module):
        if layer.weight.grad is not None:
            w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
            g = layer.weight.grad.reshape(w.shape)
            total += torch.linalg.matrix_norm(w, "nuc") * torch.linalg.matrix_norm(g, "nuc")
    return total


def dss_terms(model: nn.Module, images: torch.Tensor) -> tuple[float, float]:
    """``(S_D, S_S)`` of the linearised float64 copy of ``model`` (images give the input shape)."""
    twin = linearized_copy(model)
    ones_backward(twin, images)
    diversity = float64_zero(twin)
    saliency = float64_zero(twin)
    for block in blocks_of(twin):
        if is_attention_family(block.mixer):
            diversity += _diversity(block.mixer)
        else:
            saliency += _saliency(block.mixer)
        saliency += _saliency(block.mlp)
    head = getattr(twin, "head", None)
    if isinstance(head, nn.Module):
        saliency += _saliency(head)
    return float(diversity), float(saliency)


def dss_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """``S_D + S_S`` (TF-TAS); labels are not used."""
    diversity, saliency = dss_terms(model, images)
    value = diversity + saliency
    if not math.isfinite(value):
        raise EvaluationFailed(f"dss: the score overflowed float64 ({value})")
    return value


@register_evaluator("dss")
class DssEvaluator(ZeroCostEvaluator):
    """DSS-indicator of TF-TAS (Zhou et al., CVPR 2022); higher is better."""

    score_fn = staticmethod(dss_score)
