"""Jacobian covariance, as a zero-cost score.

Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without Training" (arXiv v1,
2020, the version before the NASWOT kernel); used as a NAS proxy by Abdelfattah et al.,
"Zero-Cost Proxies for Lightweight NAS", ICLR 2021.

For a batch of ``N`` images, ``J_i = d(sum_k f_k(x_i)) / d x_i`` flattened; ``Sigma`` is the
``N x N`` correlation matrix of the rows ``J_i`` with eigenvalues ``lambda_1..lambda_N``::

    jacob_cov = - sum_i [ log(lambda_i + k) + 1 / (lambda_i + k) ],   k = 1e-5

A network whose input gradients are decorrelated across images scores high.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import EvaluationFailed, register_evaluator
from .zero_cost import ZeroCostEvaluator

K = 1e-5


def jacob_cov_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """``-sum(log(lambda + k) + 1 / (lambda + k))`` over the eigenvalues of corr(J); labels unused."""
    model.zero_grad(set_to_none=True)
    x = images.detach().clone().requires_grad_(True)
    out = model(x)
    out.backward(torch.ones_like(out))
    jac = x.grad.reshape(x.shape[0], -1).double().cpu().numpy()
    model.zero_grad(set_to_none=True)
    if not np.isfinite(jac).all() or (jac.std(axis=1) == 0).any():
        raise EvaluationFailed("jacob_cov: an input Jacobian is constant or non-finite")
    corr = np.corrcoef(jac)
    eig = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(eig + K) + 1.0 / (eig + K)))


@register_evaluator("jacob_cov")
class JacobCovEvaluator(ZeroCostEvaluator):
    """Jacobian covariance (Mellor et al. 2020 v1; Abdelfattah et al. 2021); higher is better."""

    score_fn = staticmethod(jacob_cov_score)
