"""The model builder: ArchConfig -> plain ``nn.Module`` in the MetaFormer general form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ArchConfig, ConfigError, StageConfig, validate
from .layers import Block, ForwardContext, TokenGrid
from .registry import get_downsample
from .rope import AxialRoPE
from .stems import build_stem, stem_grid_size


class Stage(nn.Module):
    def __init__(
        self,
        cfg: StageConfig,
        in_dim: int,
        grid: TokenGrid,
        norm: str,
        layer_scale_init: float | None,
        keep_attention: frozenset[int] = frozenset(),
    ):
        """``keep_attention``: indices of this stage's blocks whose attention map a later block shares."""
        super().__init__()
        self.downsample = get_downsample(cfg.downsample)(in_dim, cfg.width, grid)
        self.grid_in = grid
        self.grid = self.downsample.out_grid(grid)
        self.blocks = nn.ModuleList(
            Block(cfg.width, b, self.grid, norm, layer_scale_init, keep_attention=i in keep_attention)
            for i, b in enumerate(cfg.blocks)
        )

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        grid_in = ctx.grid
        x, ctx.grid = self.downsample(x, ctx.grid)
        if ctx.grid != grid_in:
            ctx.attn = None  # a kept attention map does not survive token pooling
        for block in self.blocks:
            x = block(x, ctx)
        return x


def attention_sources(arch: ArchConfig) -> set[tuple[int, int]]:
    """``(stage, block)`` of every block whose attention map a later block shares (PSViT).

    A sharer reads the map of the nearest earlier block that does not share itself, so a run
    of sharers all reuse the map of the block before the run.
    """
    sources: set[tuple[int, int]] = set()
    last_computed: tuple[int, int] | None = None
    for si, bi, _, block in arch.blocks():
        if not block.share_attention:
            last_computed = (si, bi)
        elif last_computed is not None:
            sources.add(last_computed)
    return sources


class VitModel(nn.Module):
    """``stem -> stages -> norm -> head``; tokens are ``(B, N, C)`` throughout.

    Heads: ``cls`` applies the final norm to every token and classifies the cls token (timm
    ViT); ``mean`` average-pools the grid, then norms and classifies (timm MetaFormer).
    """

    def __init__(self, arch: ArchConfig, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000):
        super().__init__()
        self.arch, self.img_size, self.in_chans, self.num_classes = arch, img_size, in_chans, num_classes
        width0 = arch.stages[0].width
        self.stem = build_stem(arch.stem, in_chans, width0)
        side = stem_grid_size(arch.stem, img_size)
        prefix = 1 if arch.head == "cls" else 0
        grid = TokenGrid(side, side, prefix)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width0)) if prefix else None
        self.pos_embed = (
            nn.Parameter(torch.randn(1, grid.tokens, width0) * 0.02) if arch.position == "learned" else None
        )
        # RoPE (ViX) replaces the learned position embedding; parameter-free, see space/rope.py.
        self.rope = AxialRoPE() if arch.position == "rope" else None
        keep = attention_sources(arch)
        self.stages = nn.ModuleList()
        in_dim = width0
        for si, stage_cfg in enumerate(arch.stages):
            stage_keep = frozenset(bi for s, bi in keep if s == si)
            stage = Stage(stage_cfg, in_dim, grid, arch.norm, arch.layer_scale_init, stage_keep)
            self.stages.append(stage)
            grid, in_dim = stage.grid, stage_cfg.width
        self.grid = grid
        self.num_features = in_dim
        self.norm = nn.LayerNorm(in_dim, eps=1e-6)
        self.head = nn.Linear(in_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's ViT init: truncated-normal linear weights, zero biases.
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = stem_tokens(self.stem(x), self.cls_token, self.pos_embed)
        ctx = ForwardContext(grid=self.stages[0].grid_in, rope=self.rope)
        for stage in self.stages:
            x = stage(x, ctx)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = head_features(x, self.grid, self.arch.head, self.norm)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reparameterize(self) -> VitModel:
        """A new model in deployment form, in eval mode; this model is left as it is (it keeps training).

        Deep-copies the model, then calls ``reparameterize()`` on every submodule that defines
        one, children before parents, and puts what it returns in that module's place: the
        SCHEME CCA branch goes with its weight folded into fc2, a RIFormer affine folds into its
        block's norm1 (no mixer left), a mixer with random features freezes them. Eval outputs
        of the two models agree; FLOPs and parameters are reported for the deployed one.
        """
        import copy

        deployed = copy.deepcopy(self).eval()
        reparameterize_children(deployed)
        return deployed

    def cca_weights(self) -> dict[str, float]:
        """Current CCA weight ``1 - a`` of every block with SCHEME's CCA branch, by block name."""
        from .scheme import CcaMlp

        return {
            name.removesuffix(".mlp"): 1.0 - module.mix_weight().item()
            for name, module in self.named_modules()
            if isinstance(module, CcaMlp)
        }


def stem_tokens(x: torch.Tensor, cls_token: torch.Tensor | None, pos_embed: torch.Tensor | None) -> torch.Tensor:
    """The stem's ``(B, C, H, W)`` map as ``(B, N, C)`` tokens, the cls token first, positions added."""
    x = x.flatten(2).transpose(1, 2)
    if cls_token is not None:
        x = torch.cat([cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    return x + pos_embed if pos_embed is not None else x


def head_features(x: torch.Tensor, grid: TokenGrid, head: str, norm: nn.Module) -> torch.Tensor:
    """``cls``: the final norm on every token (timm ViT), then the cls token; ``mean``: the grid
    average-pooled, then the norm (timm MetaFormer)."""
    if head == "cls":
        return norm(x)[:, 0]
    b, _, c = x.shape
    spatial = x[:, grid.prefix :].transpose(1, 2).reshape(b, c, grid.height, grid.width)
    return norm(F.adaptive_avg_pool2d(spatial, 1).flatten(1))


def reparameterize_children(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        reparameterize_children(child)
        reparam = getattr(child, "reparameterize", None)
        if callable(reparam):
            replacement = reparam()
            if replacement is not None and replacement is not child:
                setattr(module, name, replacement)


def build_model(arch: ArchConfig | str, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> VitModel:
    """Build the plain ``nn.Module`` an architecture describes.

    Args:
        arch: an ``ArchConfig``, a preset name or a path to a YAML/JSON config.
        img_size: square input resolution; the token grid is ``img_size // patch_size``.
        in_chans: input channels.
        num_classes: classifier outputs (0: no classifier, features only).
    """
    from .presets import resolve_arch

    arch = validate(resolve_arch(arch))
    if img_size < arch.stem.patch_size:
        raise ConfigError("img_size", f"{img_size} is smaller than the stem's patch size {arch.stem.patch_size}")
    return VitModel(arch, img_size=img_size, in_chans=in_chans, num_classes=num_classes)
