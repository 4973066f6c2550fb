"""NASWOT: the log-determinant of the activation-code kernel (training-free).

Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without Training", ICML 2021.

Each image ``i`` of a batch of ``N`` gets a binary code ``c_i`` over all ``N_A`` units of
the network's activation layers (1 where the unit is active). With the Hamming distance
``d_H``, the kernel is ``K_H[i, j] = N_A - d_H(c_i, c_j)`` and the score is
``log |det K_H|`` (``slogdet``): networks whose inputs light up distinct codes score high.

ReLU's code is ``x > 0``. vitsearch's blocks use GELU, which is never exactly zero, so the
code is the sign of the *pre-activation* (the input of the activation module), ``x > 0``:
the same rule as for ReLU, applied to GELU's input. Every activation module (``nn.GELU``,
``nn.ReLU``, ``nn.SiLU``...) is hooked, whatever block it sits in; per image the code
covers all tokens and channels. ``K_H = c c^T + (1 - c)(1 - c)^T`` is accumulated in
float64, one matmul per layer (``(1-c)(1-c)^T = N_A - r_i - r_j + c c^T`` with row sums r).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import EvaluationFailed, register_evaluator
from .zero_cost import ZeroCostEvaluator

ACTIVATIONS = (nn.GELU, nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.ELU, nn.Mish)


def naswot_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """``log |det K_H|`` of the batch's activation-code kernel; labels are not used."""
    n = images.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=images.device)

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        code = (inputs[0].detach() > 0).reshape(n, -1).float()  # (N, units)
        units = code.shape[1]
        same_on = (code @ code.T).double()  # exact: 0/1 products, sums < 2^24 per layer
        rows = code.sum(1).double()
        kernel.add_(2 * same_on - rows[:, None] - rows[None, :] + units)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    if not handles:
        raise EvaluationFailed("naswot: the model has no activation modules to read codes from")
    try:
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign != 0 else float("-inf")


@register_evaluator("naswot")
class NaswotEvaluator(ZeroCostEvaluator):
    """NASWOT (Mellor et al. 2021); higher is better. See ``naswot_score``."""

    score_fn = staticmethod(naswot_score)
