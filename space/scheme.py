"""SCHEME channel mixer: block-diagonal MLP and the training-only channel covariance attention.

Sridhar, Li and Vasconcelos, "SCHEME: Scalable Channel Mixer for Vision Transformers"
(arXiv 2312.00412), official code ``mlp_heads.GroupLiteAttMlp`` / ``metaformer_hybrid.py``.

- **BD-MLP**: fc1 ``d -> E*d`` and fc2 ``E*d -> d`` are both block-diagonal with ``G`` groups,
  ``2*d*E*d/G`` FLOPs per token. Group ``g`` of the input feeds only group ``g`` of the hidden
  layer, which feeds only group ``g`` of the output. As in the official code there is **no
  channel shuffle** between the two layers (the repo's ``ShuffleGroupLiteAttMlp`` is an
  ablation, not SCHEMEformer): channels of different groups mix only through the token mixer,
  the norms and, during training, the CCA branch below.
- **CCA**: ``A = softmax(X^T X / tau)`` over channels (``C x C``, one matrix per image, rows
  normalised), ``CCA(X) = X A^T`` so every output channel is a convex combination of the
  input channels; ``tau = sqrt(E*d)`` (the official ``scale = hidden_features ** -0.5``). The
  block's channel mixer outputs ``a*BDMLP(x) + (1-a)*CCA(x)`` with ``[a, 1-a] =
  softmax(theta)``; in eval the branch is skipped and the output is ``a*BDMLP(x)``, which
  ``reparameterize()`` folds into fc2 so the deployed model is a plain MLP.

Deviations from the official code, all deliberate:

- theta starts at ``[0, 0]`` (``a = 0.5``); the official code draws ``torch.randn(2)``, whose
  expected start is the same ``a = 0.5`` but differs per layer and per seed.
- The official eval path returns ``BDMLP(x)`` without the factor ``a`` (it relies on ``a``
  having reached ~1); here eval returns ``a*BDMLP(x)`` so the train and eval functions agree
  and the fold is exact, as docs/design.md ("The mechanisms", SCHEME) asks.
- The official code forms ``X^T`` with ``reshape`` on a ``(B, C, H, W)`` tensor, which is not a
  transpose (it scrambles channels and positions); here it is the true transpose, i.e. the
  covariance the paper writes. The cls token, where the model has one, is one more row of X.
- Weights are stored once, as ``(out, in/G)`` (the grouped-conv layout without the kernel
  dims), and the MLP runs as grouped 1x1 convolutions, one batched matmul over the groups, or
  ``G`` separate linears on the channel groups (``split``); all are the same function and the
  same FLOPs. Training uses ``DEFAULT_FORM`` (``studies/bench_block_diagonal_mlp.py``,
  forward+backward); the deployed model (``reparameterize()``) uses ``auto``, which picks per
  shape and backend what ``studies/bench_flops_to_time.py`` measured fastest for inference:
  ``split`` in the ONNX export (onnxruntime ran it 1.2-4x faster than the batched ``MatMul`` and
  the grouped ``Conv`` at G = 2-8, 197 and 785 tokens) and in torch from ``G >= 8`` (1.3-2x
  faster at 197 and 785 tokens), ``bmm`` below (a tie with ``split`` within the noise).
  A dense matmul on the zero-filled block-diagonal weight was never faster: it does ``G``
  times the multiply-adds, and even at ``G = 2`` the grouped kernels ran at more than half
  of dense GFLOP/s; it is measured, not offered.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import Mlp

FORMS = ("conv", "bmm", "split", "auto")
# Chosen by studies/bench_block_diagonal_mlp.py (CPU, fp32, forward+backward and inference,
# d in {64, 128, 320, 512}, G in {2, 4, 8}, 49..3136 tokens): see the table in that script's docstring.
DEFAULT_FORM = "bmm"
# The deployed form's rule (``auto``), from studies/bench_flops_to_time.py's kernel table.
SPLIT_FROM_GROUPS = 8  # torch: G separate linears from this many groups, one bmm below


class BlockDiagonalLinear(nn.Module):
    """Parameters of one block-diagonal linear map ``in -> out`` with ``groups`` diagonal blocks.

    ``weight`` is ``(out, in // groups)``: rows ``g*out/G ... (g+1)*out/G`` read input channels
    ``g*in/G ... (g+1)*in/G`` only (the layout of ``nn.Conv1d(in, out, 1, groups=G)`` without
    its kernel dim). ``forward`` applies the map to the last dim of ``(..., in)``.
    """

    def __init__(self, in_features: int, out_features: int, groups: int):
        super().__init__()
        assert in_features % groups == 0 and out_features % groups == 0, "groups must divide both widths"
        self.in_features, self.out_features, self.groups = in_features, out_features, groups
        self.weight = nn.Parameter(torch.empty(out_features, in_features // groups))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.trunc_normal_(self.weight, std=0.02)  # timm / SCHEME init (trunc_normal_ std .02, zero bias)

    def grouped_weight(self) -> torch.Tensor:
        """``(G, in/G, out/G)``: the diagonal blocks, ready for ``bmm`` on group-major input."""
        g = self.groups
        return self.weight.view(g, self.out_features // g, self.in_features // g).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead, g = x.shape[:-1], self.groups
        h = x.reshape(-1, g, self.in_features // g).transpose(0, 1)  # (G, M, in/G)
        h = torch.bmm(h, self.grouped_weight())  # (G, M, out/G)
        return (h.transpose(0, 1).reshape(*lead, self.out_features)) + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, groups={self.groups}"


class BlockDiagonalMlp(nn.Module):
    """SCHEME BD-MLP: ``fc2(gelu(fc1(x)))`` with both layers block-diagonal (``groups > 1``).

    Args:
        dim: input and output width ``d``.
        hidden: hidden width ``E*d``.
        groups: diagonal blocks ``G``; must divide ``dim`` and ``hidden``.
        form: ``"conv"`` (grouped 1x1 ``conv1d`` on the ``(B, C, N)`` view), ``"bmm"`` (one
            batched matmul over the groups, group-major ``(G, B*N, d/G)`` between the layers),
            ``"split"`` (``G`` linears on the channel groups, concatenated) or ``"auto"`` (the
            deployed form's per-shape choice, ``kernel()``). Same parameters, same function;
            ``form`` may be changed at any time.
    """

    def __init__(self, dim: int, hidden: int, groups: int, form: str = DEFAULT_FORM):
        super().__init__()
        assert groups > 1, "groups == 1 is the dense timm Mlp"
        assert form in FORMS, f"form must be one of {FORMS}"
        self.dim, self.hidden, self.groups, self.form = dim, hidden, groups, form
        self.fc1 = BlockDiagonalLinear(dim, hidden, groups)
        self.act = nn.GELU()
        self.fc2 = BlockDiagonalLinear(hidden, dim, groups)

    def kernel(self) -> str:
        """The form that runs now: ``form``, or for ``auto`` the measured choice for this shape and backend."""
        if self.form != "auto":
            return self.form
        if torch.onnx.is_in_onnx_export() or self.groups >= SPLIT_FROM_GROUPS:
            return "split"
        return "bmm"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel()
        if kernel == "conv":
            return self._forward_conv(x)
        return self._forward_split(x) if kernel == "split" else self._forward_bmm(x)

    def reparameterize(self) -> BlockDiagonalMlp:
        """The deployed form: the same module and weights, kernel chosen per shape (``auto``)."""
        self.form = "auto"
        return self

    def _forward_split(self, x: torch.Tensor) -> torch.Tensor:
        g = self.groups
        w1, b1 = self.fc1.weight.chunk(g), self.fc1.bias.chunk(g)  # row blocks: contiguous views
        w2, b2 = self.fc2.weight.chunk(g), self.fc2.bias.chunk(g)
        parts = x.chunk(g, dim=-1)
        return torch.cat([F.linear(self.act(F.linear(parts[i], w1[i], b1[i])), w2[i], b2[i]) for i in range(g)], -1)

    def _forward_conv(self, x: torch.Tensor) -> torch.Tensor:
        g = self.groups
        h = x.transpose(1, 2)  # (B, d, N)
        h = F.conv1d(h, self.fc1.weight.unsqueeze(-1), self.fc1.bias, groups=g)  # (B, E*d, N)
        h = F.conv1d(self.act(h), self.fc2.weight.unsqueeze(-1), self.fc2.bias, groups=g)  # (B, d, N)
        return h.transpose(1, 2)

    def _forward_bmm(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        g = self.groups
        h = x.reshape(b * n, g, d // g).transpose(0, 1)  # (G, B*N, d/G)
        h = torch.bmm(h, self.fc1.grouped_weight()) + self.fc1.bias.view(g, 1, -1)  # (G, B*N, E*d/G)
        h = torch.bmm(self.act(h), self.fc2.grouped_weight()) + self.fc2.bias.view(g, 1, -1)  # (G, B*N, d/G)
        return h.transpose(0, 1).reshape(b, n, d)

    def extra_repr(self) -> str:
        return f"form={self.form!r}"


def channel_covariance_attention(x: torch.Tensor, tau: float) -> torch.Tensor:
    """SCHEME CCA of ``(B, N, C)`` tokens: ``X softmax_rows(X^T X / tau)^T``, one ``C x C`` map per image."""
    attn = (x.transpose(1, 2) @ x / tau).softmax(dim=-1)  # (B, C, C), rows sum to one
    return x @ attn.transpose(1, 2)  # (B, N, C)


class CcaMlp(nn.Module):
    """A channel mixer with SCHEME's training-only CCA branch: ``a*mlp(x) + (1-a)*CCA(x)``.

    ``[a, 1-a] = softmax(theta)`` with ``theta`` two learned numbers (start ``[0, 0]``, a = 0.5).
    In eval mode the branch is not computed and the output is ``a*mlp(x)``;
    ``reparameterize()`` returns ``mlp`` with ``a`` folded into ``fc2`` (the deployed form).

    Args:
        mlp: the wrapped MLP (dense ``Mlp`` or ``BlockDiagonalMlp``; anything with ``fc2.weight``
            and ``fc2.bias`` as its last, linear step).
        hidden: the MLP's hidden width ``E*d``; ``tau = sqrt(hidden)`` as in the official code.
    """

    def __init__(self, mlp: nn.Module, hidden: int):
        super().__init__()
        self.mlp = mlp
        self.tau = math.sqrt(hidden)
        self.theta = nn.Parameter(torch.zeros(2))

    def mix_weight(self) -> torch.Tensor:
        """``a``, the weight of the MLP branch; ``1 - a`` is the CCA weight that decays in training."""
        return self.theta.softmax(dim=0)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.theta.softmax(dim=0)
        if not self.training:
            return w[0] * self.mlp(x)
        return w[0] * self.mlp(x) + w[1] * channel_covariance_attention(x, self.tau)

    @torch.no_grad()
    def reparameterize(self) -> nn.Module:
        """Drop the CCA branch and fold ``a`` into fc2: returns the plain MLP of the deployed model."""
        a = self.mix_weight()
        self.mlp.fc2.weight.mul_(a)
        self.mlp.fc2.bias.mul_(a)
        return self.mlp


def make_scheme_mlp(dim: int, hidden: int, groups: int, cca: bool, form: str = DEFAULT_FORM) -> nn.Module:
    """The block's channel mixer for ``mlp_groups`` / ``cca``; ``groups == 1`` keeps timm's dense ``Mlp``."""
    mlp: nn.Module = Mlp(dim, hidden) if groups == 1 else BlockDiagonalMlp(dim, hidden, groups, form)
    return CcaMlp(mlp, hidden) if cca else mlp
