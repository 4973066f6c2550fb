"""Building blocks shared by every model: token grid, mixer/downsample bases, norms, MLP, block.

Tokens travel as ``(B, N, C)`` with ``N = prefix + H * W`` (prefix = the cls token, if any),
in every stage, so convolutional (PoolFormer-style) and attention (DeiT-style) stages share
one block. Conv-like layers view the grid part as ``(B, C, H, W)`` when they need it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .config import BlockConfig, ConfigError, MixerConfig
from .mlp import Mlp
from .scheme import make_scheme_mlp


@dataclass(frozen=True)
class TokenGrid:
    height: int
    width: int
    prefix: int = 0  # leading non-spatial tokens (cls)

    @property
    def spatial(self) -> int:
        return self.height * self.width

    @property
    def tokens(self) -> int:
        return self.prefix + self.spatial


@dataclass
class ForwardContext:
    """Per-forward state that blocks hand on: the grid and the last attention map (PSViT sharing).

    Attention-sharing protocol (PSViT, Chen et al. 2021), for every mixer class with
    ``SHARES_ATTENTION = True``:

    - Its constructor accepts the keywords ``share_attention`` and ``keep_attention``
      (``Block`` passes them only when true, so other mixers never see them), and its
      ``flops`` accepts ``share_attention``.
    - ``keep_attention=True`` (set by the builder on the block a sharer reads from): the
      mixer materialises its post-softmax map (no fused kernel) and stores it, shape
      ``(B, heads, N, N)``, in ``ctx.attn`` (a Refiner-style mixer stores its refined map).
    - ``share_attention=True``: the mixer has no query/key weights; it reads the map with
      ``ctx.shared_attention(batch, heads, tokens)`` and computes only V and the projection.
      A sharer does not overwrite ``ctx.attn``, so a chain of sharers reuses one map.
    - ``Stage`` clears ``ctx.attn`` when its downsample changes the grid.
    """

    grid: TokenGrid
    attn: torch.Tensor | None = None  # (B, H, N, N) post-softmax map of the last block with keep_attention
    rope: nn.Module | None = None  # rotary position embedding, when ``position: rope``
    extras: dict[str, Any] = field(default_factory=dict)

    def shared_attention(self, batch: int, heads: int, tokens: int) -> torch.Tensor:
        """The kept map for a sharing mixer, checked against its ``(B, heads, N, N)`` shape."""
        attn = self.attn
        if attn is None:
            raise RuntimeError("share_attention: no attention map was kept by a previous block")
        if tuple(attn.shape) != (batch, heads, tokens, tokens):
            raise RuntimeError(
                f"share_attention: kept map has shape {tuple(attn.shape)}, this block needs "
                f"{(batch, heads, tokens, tokens)}"
            )
        return attn

    def apply_rope(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``(B, H, N, d_h)`` queries and keys when the model uses RoPE; else unchanged."""
        if self.rope is None:
            return q, k
        return self.rope(q, self.grid), self.rope(k, self.grid)


def split_prefix(x: torch.Tensor, grid: TokenGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, N, C)`` -> prefix ``(B, P, C)`` and spatial map ``(B, C, H, W)``."""
    prefix, spatial = x[:, : grid.prefix], x[:, grid.prefix :]
    b, _, c = spatial.shape
    return prefix, spatial.transpose(1, 2).reshape(b, c, grid.height, grid.width)


def join_prefix(prefix: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """Inverse of ``split_prefix``: prefix ``(B, P, C)`` + map ``(B, C, H, W)`` -> ``(B, N, C)``."""
    tokens = spatial.flatten(2).transpose(1, 2)
    return torch.cat([prefix, tokens], dim=1) if prefix.shape[1] else tokens


@dataclass(frozen=True)
class SupernetSizes:
    """The largest sizes one layer of a weight-sharing supernet holds for a mixer candidate.

    ``evaluators/supernet`` fills it in from the search space; ``Mixer.supernet_weights``
    builds the candidate's tensors at these sizes.
    """

    width: int  # the widest path
    heads: int  # the most heads of any path (1 when the space has no head choice)
    head_dims: tuple[int, ...]  # every ``width / heads`` a path can have
    grids: tuple[TokenGrid, ...]  # every token grid a path can see, ascending
    seed: str  # names the layer and candidate, for seeded draws

    @property
    def grid(self) -> TokenGrid:
        return self.grids[-1] if self.grids else TokenGrid(1, 1)


# An fvcore op handle: (traced inputs, traced outputs) -> FLOPs.
FlopHandle = Callable[[list[Any], list[Any]], int]


class Mixer(nn.Module):
    """Base of every token mixer. Subclasses register with ``@register_mixer``.

    A mixer is one file: everything below is declared on its class, and the model builder,
    validation, search space, FLOP counter, supernet and ONNX exporter read it from there.

    - ``OPTIONS`` (option name -> default, the type of the default is enforced),
      ``USES_HEADS`` (takes ``mixer.heads``), ``SHARES_ATTENTION`` (has an attention map that
      a following block may reuse, and can reuse one: such a mixer follows the sharing protocol
      documented on ``ForwardContext``); ``validate`` and ``flops`` (analytic, equal to fvcore).
    - ``FLOP_HANDLES`` (fvcore op name -> handle) and ``FREE_OPS`` (op names that cost nothing
      by the convention) for ops of this mixer that fvcore does not count out of the box.
    - ``ONNX_SYMBOLICS`` (op name -> TorchScript-exporter symbolic) for ops that have none.
    - Weight sharing: ``supernet_weights`` (what a supernet layer holds for the mixer),
      ``supernet_sources`` (where a path-sized mixer's tensors come from in it) and
      ``for_supernet_path``; ``evaluators/supernet`` interprets them (torch only here).
    """

    NAME: ClassVar[str] = ""
    SUMMARY: ClassVar[str] = ""  # one line for `vitsearch mixers`
    OPTIONS: ClassVar[dict[str, Any]] = {}
    USES_HEADS: ClassVar[bool] = False
    SHARES_ATTENTION: ClassVar[bool] = False
    ROTATES_QK: ClassVar[bool] = False  # applies RoPE to its queries and keys (position: rope needs one)
    FLOP_HANDLES: ClassVar[dict[str, FlopHandle]] = {}
    FREE_OPS: ClassVar[frozenset[str]] = frozenset()
    ONNX_SYMBOLICS: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__()
        self.dim = dim
        self.cfg = cfg
        self.opts = {**self.OPTIONS, **dict(cfg.options)}

    @classmethod
    def option(cls, cfg: MixerConfig, key: str) -> Any:
        """The configured value of option ``key``, or its default."""
        return dict(cfg.options).get(key, cls.OPTIONS[key])

    @classmethod
    def require_at_least(cls, cfg: MixerConfig, key: str, path: str, low: int = 1) -> None:
        """Count-like options (windows, landmarks, expansions...) have a floor."""
        value = cls.option(cfg, key)
        if value < low:
            raise ConfigError(f"{path}.{key}", f"must be at least {low}, got {value}")

    @classmethod
    def require_positive_odd(cls, cfg: MixerConfig, key: str, path: str) -> None:
        """Kernel-like options must be odd so the window is centred on its token."""
        value = cls.option(cfg, key)
        if value < 1 or value % 2 == 0:
            raise ConfigError(f"{path}.{key}", f"must be a positive odd number, got {value}")

    @classmethod
    def resolve_heads(cls, cfg: MixerConfig, dim: int) -> int:
        """Head count; when unset, head dim 64 as in ViT/DeiT (at least one head)."""
        return cfg.heads if cfg.heads is not None else max(1, dim // 64)

    @classmethod
    def validate(cls, cfg: MixerConfig, dim: int, path: str) -> None:
        for key, value in cfg.options:
            if key not in cls.OPTIONS:
                allowed = ", ".join(sorted(cls.OPTIONS)) or "none"
                raise ConfigError(f"{path}.{key}", f"unknown option for mixer {cls.NAME!r} (allowed: {allowed})")
            default = cls.OPTIONS[key]
            if default is not None and not _same_kind(value, default):
                raise ConfigError(f"{path}.{key}", f"expected {type(default).__name__}, got {value!r}")
        if cfg.heads is not None and not cls.USES_HEADS:
            raise ConfigError(f"{path}.heads", f"mixer {cls.NAME!r} takes no heads")
        if cls.USES_HEADS:
            heads = cls.resolve_heads(cfg, dim)
            if heads < 1:
                raise ConfigError(f"{path}.heads", f"must be at least 1, got {heads}")
            if dim % heads:
                raise ConfigError(f"{path}.heads", f"{heads} does not divide width {dim}")

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        """Analytic FLOPs of one image through this mixer; must equal fvcore's count."""
        raise TypeError(f"mixer {cls.NAME!r} defines no analytic FLOP formula")

    # Subclasses define ``forward(x, ctx) -> Tensor`` mapping (B, N, C) to (B, N, C).

    # --- weight sharing (AutoFormer's weight entanglement; evaluators/supernet applies it) ---
    @classmethod
    def supernet_weights(cls, cfg: MixerConfig, sizes: SupernetSizes) -> nn.Module:
        """The tensors a supernet layer keeps for this candidate (``cfg.heads`` is ignored).

        Default: the mixer itself at the largest width, head count and grid, so every tensor of
        a path's mixer is the leading slice ``W[:out, :in, ...]`` of the same-named tensor here.
        Override it (and ``supernet_sources``) for tensors kept per size or laid out in blocks.
        """
        heads = sizes.heads if cls.USES_HEADS else None
        return cls(sizes.width, dataclasses.replace(cfg, heads=heads), sizes.grid)

    def supernet_sources(self, weights: nn.Module) -> dict[str, torch.Tensor]:
        """Where this path-sized mixer's tensors come from in ``weights``, where not by name.

        For each tensor name returned, the supernet takes the leading slice of the given tensor
        to this mixer's shape; every other tensor is the leading slice of the same-named tensor
        of ``weights``. Raises ``LookupError`` when ``weights`` holds nothing for this size.
        """
        return {}

    def for_supernet_path(self) -> None:
        """Called on the mixer of a supernet path: its tensors are the supernet's, so it must
        not change them itself (random redraws and the like)."""


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


class Downsample(nn.Module):
    """Base of stage-entry layers: ``forward(x, grid) -> (x, new_grid)``."""

    NAME: ClassVar[str] = ""
    stride: ClassVar[int] = 1
    changes_width: ClassVar[bool] = False

    def __init__(self, in_dim: int, out_dim: int, grid: TokenGrid):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim

    @classmethod
    def out_grid(cls, grid: TokenGrid) -> TokenGrid:
        return grid

    @classmethod
    def flops(cls, in_dim: int, out_dim: int, grid: TokenGrid) -> int:
        """Analytic FLOPs of one image entering the stage from ``grid``."""
        return 0


class GroupNorm1(nn.Module):
    """GroupNorm with one group over all tokens and channels (PoolFormer), on ``(B, N, C)``.

    One group over every token and channel is ``layer_norm`` over the last two dims with the
    per-channel affine broadcast over the tokens: the numbers (and fvcore's 5 FLOPs per element)
    of timm's ``GroupNorm1`` on ``(B, C, H, W)``, without the two transposed copies that
    ``group_norm`` on the ``(B, C, N)`` view needs (measured on the CPU at PoolFormer-S12's first
    stage: 5x faster forward, 3.5x backward).
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():  # the exporter wants a constant normalized shape: the view form
            return F.group_norm(x.transpose(1, 2), 1, self.weight, self.bias, self.eps).transpose(1, 2)
        n = x.shape[1]
        return F.layer_norm(x, x.shape[1:], self.weight.expand(n, -1), self.bias.expand(n, -1), self.eps)


def norm_flops(tokens: int, dim: int) -> int:
    # fvcore's rule for layer_norm / group_norm with affine: 5 per element.
    return 5 * tokens * dim


def make_norm(kind: str, dim: int) -> nn.Module:
    # eps follow timm: 1e-6 for ViT LayerNorm, 1e-5 for PoolFormer GroupNorm.
    return GroupNorm1(dim) if kind == "groupnorm" else nn.LayerNorm(dim, eps=1e-6)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def make_mlp(dim: int, cfg: BlockConfig) -> nn.Module:
    """The block's channel mixer: timm's dense ``Mlp`` unless ``mlp_groups > 1`` or ``cca`` (SCHEME)."""
    hidden = int(dim * cfg.mlp_ratio)
    if cfg.mlp_groups == 1 and not cfg.cca:
        return Mlp(dim, hidden)
    return make_scheme_mlp(dim, hidden, cfg.mlp_groups, cfg.cca)


def sharing_flags(cfg: BlockConfig, keep_attention: bool) -> dict[str, bool]:
    # Only the flags that are set, so mixers outside the sharing protocol never receive them.
    flags = {"share_attention": cfg.share_attention, "keep_attention": keep_attention}
    return {key: True for key, on in flags.items() if on}


class Block(nn.Module):
    """MetaFormer block: ``x + ls1 * mixer(norm1(x))`` then ``x + ls2 * mlp(norm2(x))``."""

    def __init__(
        self,
        dim: int,
        cfg: BlockConfig,
        grid: TokenGrid,
        norm: str,
        layer_scale_init: float | None,
        *,
        keep_attention: bool = False,
    ):
        """``keep_attention``: a later block shares this block's attention map (PSViT); the
        builder sets it, see the sharing protocol on ``ForwardContext``."""
        super().__init__()
        from .registry import get_mixer

        self.cfg = cfg
        self.norm1 = make_norm(norm, dim)
        self.mixer = get_mixer(cfg.mixer.type)(dim, cfg.mixer, grid, **sharing_flags(cfg, keep_attention))
        self.ls1 = LayerScale(dim, layer_scale_init) if layer_scale_init else nn.Identity()
        self.norm2 = make_norm(norm, dim)
        self.mlp = make_mlp(dim, cfg)
        self.ls2 = LayerScale(dim, layer_scale_init) if layer_scale_init else nn.Identity()

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return self.mix_channels(self.mix_tokens(x, ctx))

    # The two residual halves on their own: the latency table times each (evaluators/latency_table.py).
    def mix_tokens(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return x + self.ls1(self.mixer(self.norm1(x), ctx))

    def mix_channels(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ls2(self.mlp(self.norm2(x)))

    def reparameterize(self) -> Block:
        """Deployment form: a mixer with ``fold_into_norm`` (RIFormer) merges into ``norm1``.

        ``fold_into_norm(norm1) -> (new_norm1, pass_through)``; the block then computes
        ``x + ls1 * norm1'(x)``. Called by ``VitModel.reparameterize`` after the children.
        """
        fold = getattr(self.mixer, "fold_into_norm", None)
        if fold is not None:
            self.norm1, self.mixer = fold(self.norm1)
        return self

    @staticmethod
    def flops(dim: int, cfg: BlockConfig, grid: TokenGrid) -> int:
        from .registry import get_mixer

        mixer = get_mixer(cfg.mixer.type).flops(dim, cfg.mixer, grid, **sharing_flags(cfg, False))
        return 2 * norm_flops(grid.tokens, dim) + mixer + Mlp.flops(dim, cfg, grid.tokens)
