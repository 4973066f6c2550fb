"""Performer self-attention: FAVOR+ positive random features for the softmax kernel."""

from __future__ import annotations

import math
import zlib

import torch
from torch import nn

from ..config import ConfigError, MixerConfig
from ..layers import ForwardContext, SupernetSizes, TokenGrid
from ..registry import register_mixer
from .qkv import QkvMixer

# Added to every feature after the exponential, as ``softmax_kernel_transformation`` in the
# paper's code (google-research/performer fast_attention): keeps the denominator positive.
_FEATURE_EPS = 1e-6


def default_features(head_dim: int) -> int:
    """The paper's ``m = int(d_h * ln d_h)``, at least 1 (``d_h = 1`` would give 0)."""
    return max(1, int(head_dim * math.log(head_dim)))


def orthogonal_gaussian(rows: int, cols: int, device=None, dtype=None) -> torch.Tensor:
    """``(rows, cols)`` orthogonal random features (Choromanski et al. 2021, ORF).

    Stacks blocks of ``cols`` orthonormal rows (QR of a Gaussian matrix), so rows within a
    block are exactly orthogonal, then scales each row by the norm of an independent
    Gaussian vector so every row has the marginal distribution of an i.i.d. Gaussian row
    (``GaussianOrthogonalRandomMatrix(scaling=0)`` of the paper's code).

    Deviation from the paper's code: Householder QR returns ``R`` with a sign convention
    that tilts the ``i``-th row of ``Q^T`` towards ``-e_i`` (mean about ``-0.29 e_i`` at
    ``d = 8``), so the rows are not isotropic and the softmax-kernel estimate is biased (a
    ~0.6% error floor that more features do not remove). Multiplying the columns of ``Q``
    by ``sign(diag(R))`` makes ``Q`` Haar-distributed (Mezzadri 2007), as the ORF theory assumes.
    """
    blocks = []
    for start in range(0, rows, cols):
        gaussian = torch.randn(cols, cols, device=device, dtype=torch.float32)
        q, r = torch.linalg.qr(gaussian)
        q = q * torch.sign(torch.diagonal(r))  # Haar-distributed Q (see the docstring)
        blocks.append(q.T[: rows - start])
    w = torch.cat(blocks, dim=0)
    norms = torch.randn(rows, cols, device=device, dtype=torch.float32).norm(dim=1, keepdim=True)
    return (norms * w).to(dtype or torch.float32)


def stable_seed(*parts: object) -> int:
    """A seed from names (the same in every process, unlike ``hash``)."""
    return zlib.crc32(":".join(map(str, parts)).encode())


@register_mixer("performer")
class Performer(QkvMixer):
    """Performer attention with FAVOR+ (Choromanski et al., "Rethinking Attention with Performers", ICLR 2021).

    ``softmax(q k^T / sqrt(d_h)) v`` is approximated with positive random features
    ``phi(x) = exp(w_i^T x' - |x'|^2 / 2) / sqrt(m)`` with ``x' = x / d_h^(1/4)`` and ``m``
    orthogonal Gaussian rows ``w_i``, so ``out = phi(q) (phi(k)^T v) / (phi(q) phi(k)^T 1)``
    in ``O(N m d_h)`` instead of ``O(N^2 d_h)``. As in the paper's code, the exponent is
    stabilised by subtracting its maximum (per query over features; per key set over keys
    and features, a constant that cancels between numerator and denominator) and ``1e-6``
    is added to each feature.

    The features live in the ``features`` buffer ``(m, d_h)``, one draw shared by all heads,
    saved with the state dict. They never change in eval mode. Redrawing during training is
    off by default (``redraw_interval: 0``); ``redraw_interval: n`` draws new features every
    ``n`` training forwards (ViX, through performer-pytorch, redraws every 1000).

    Options:
        features: number of random features ``m``; 0 (default) = ``int(d_h * ln d_h)``, at least 1.
        redraw_interval: training forwards between redraws; 0 = never.
        qkv_bias: bias in the fused qkv projection.

    Deviations: the stabiliser of the key features is taken over the whole key set of each
    head (as the paper's code), so a key's features depend on the other keys only through a
    constant that cancels; ``reparameterize`` only switches redrawing off (the buffer already
    holds the deployed features).

    Weight sharing: random features are not sliceable (a slice of an orthogonal draw is not an
    orthogonal draw of the smaller head dim), so a supernet layer holds one fixed draw per
    possible head dim (``features_<d_h>_<m>``, seeded by the layer's name, never redrawn).
    """

    SUMMARY = "Performer: FAVOR+ random-feature softmax kernel (ViX)"
    OPTIONS = {"features": 0, "redraw_interval": 0, "qkv_bias": True}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)
        self.num_features = self.resolve_features(cfg, dim)
        self.redraw_interval = self.opts["redraw_interval"]
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("features", orthogonal_gaussian(self.num_features, self.head_dim))
        self._calls = 0  # training forwards since the last draw

    @classmethod
    def resolve_features(cls, cfg: MixerConfig, dim: int) -> int:
        m = cfg.option("features", cls.OPTIONS["features"])
        return m if m > 0 else default_features(dim // cls.resolve_heads(cfg, dim))

    @classmethod
    def validate(cls, cfg: MixerConfig, dim: int, path: str) -> None:
        super().validate(cfg, dim, path)
        for key in ("features", "redraw_interval"):
            value = cfg.option(key, cls.OPTIONS[key])
            if value < 0:
                raise ConfigError(f"{path}.{key}", f"must be 0 or positive, got {value}")

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        n, m, h = grid.tokens, cls.resolve_features(cfg, dim), cls.resolve_heads(cfg, dim)
        # qkv and proj; phi(q), phi(k) projections; phi(k)^T v; phi(q) (.); denominator phi(q) k_sum
        return 4 * n * dim * dim + 2 * n * dim * m + 2 * n * m * dim + h * n * m

    @classmethod
    def supernet_weights(cls, cfg: MixerConfig, sizes: SupernetSizes) -> nn.Module:
        weights = cls.qkv_supernet_weights(cfg, sizes)
        for head_dim in sizes.head_dims:
            m = cls.option(cfg, "features") or default_features(head_dim)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(stable_seed(sizes.seed, head_dim, m))
                weights.register_buffer(f"features_{head_dim}_{m}", orthogonal_gaussian(m, head_dim))
        return weights

    def supernet_sources(self, weights: nn.Module) -> dict[str, torch.Tensor]:
        name = f"features_{self.head_dim}_{self.num_features}"
        if not hasattr(weights, name):
            raise LookupError(f"no Performer features for head dim {self.head_dim} in the supernet")
        return {**super().supernet_sources(weights), "features": getattr(weights, name)}

    def for_supernet_path(self) -> None:
        self.redraw_interval = 0  # the features are the supernet's fixed draw

    @torch.no_grad()
    def redraw(self) -> None:
        """Draw new orthogonal random features in place (same shape, device and dtype)."""
        self.features.copy_(orthogonal_gaussian(*self.features.shape, device=self.features.device))
        self._calls = 0

    def reparameterize(self) -> nn.Module:
        """The deployed module: this one with redrawing switched off (features stay as they are)."""
        self.redraw_interval = 0
        return self

    def feature_map(self, x: torch.Tensor, is_query: bool) -> torch.Tensor:
        """Positive softmax-kernel features ``(B, H, N, d_h) -> (B, H, N, m)``."""
        scale = self.head_dim**-0.25
        proj = (x * scale) @ self.features.transpose(0, 1)  # (B, H, N, m)
        sq_norm = x.square().sum(dim=-1, keepdim=True) * (scale * scale / 2)  # (B, H, N, 1)
        dims = -1 if is_query else (-2, -1)
        stabiliser = proj.amax(dim=dims, keepdim=True).detach()
        return (torch.exp(proj - sq_norm - stabiliser) + _FEATURE_EPS) * self.num_features**-0.5

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        if self.training and self.redraw_interval:
            if self._calls >= self.redraw_interval:
                self.redraw()
            self._calls += 1
        q, k, v = self.project_qkv(x, ctx)  # each (B, H, N, d_h)
        q_feat = self.feature_map(q, is_query=True)  # (B, H, N, m)
        k_feat = self.feature_map(k, is_query=False)  # (B, H, N, m)
        kv = k_feat.transpose(-2, -1) @ v  # (B, H, m, d_h)
        k_sum = k_feat.sum(dim=-2).unsqueeze(-1)  # (B, H, m, 1)
        out = (q_feat @ kv) / (q_feat @ k_sum)  # (B, H, N, d_h)
        return self.merge_heads(out)
