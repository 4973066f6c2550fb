"""Latency from a per-part lookup table: each distinct part timed once per machine, summed per architecture.

Timing every candidate of a search costs a model build and ``warmup + repeats`` forward passes
each; HAT (Wang et al. 2020) and OFA (Cai et al. 2020) instead time each *layer* kind once and
add the entries up, which is exact up to the overhead between layers and makes latency as
cheap as FLOPs over thousands of candidates. An architecture splits into parts keyed by
everything that shapes their cost:

- **embed**: the stem, flattening, cls token and learned positions (stem config, channels,
  width, image side, head, position);
- **downsample**: a stage's entry (its kind, widths in and out, the grid it receives);
- **mixer**: the token half of a block in its deployed form, ``Block.mix_tokens``
  (width, grid, norm, layer scale, the mixer config, whether it keeps or shares an attention
  map, RoPE);
- **mlp**: the channel half, ``Block.mix_channels`` (width, grid, norm, layer scale, MLP
  ratio, groups, CCA). Halves rather than whole blocks: a half recurs far more often across a
  space's architectures than its pairing with the other half does, so the table fills sooner.
- **head**: final norm, pooling or cls selection, classifier (width, grid, head, classes).

A sharing block is timed with a kept map of the right shape already in its context, as the
model runs it. ``LatencyTable.predict_ms`` sums the parts' medians; entries persist as JSON
(``path``), keyed with the settings and the torch version, so a table is reused across runs on
one machine. ``studies/bench_latency_table.py`` measures how well the sum ranks and matches
whole-model latency.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitsearch.space import ArchConfig, MixerConfig, TokenGrid, get_downsample, resolve_arch, validate
from vitsearch.space.files import atomic_write_text
from vitsearch.space.layers import Block, ForwardContext
from vitsearch.space.model import attention_sources, head_features, stem_tokens
from vitsearch.space.rope import AxialRoPE
from vitsearch.space.stems import build_stem, stem_grid_size

from .latency import LatencySettings, measure_module_latency

TABLE_VERSION = 1


class _Embed(nn.Module):
    """``VitModel.forward_features`` up to the first stage: stem, tokens, cls, positions."""

    def __init__(self, arch: ArchConfig, in_chans: int, width: int, tokens: int):
        super().__init__()
        self.stem = build_stem(arch.stem, in_chans, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width)) if arch.head == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, width)) if arch.position == "learned" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stem_tokens(self.stem(x), self.cls_token, self.pos_embed)


class _Head(nn.Module):
    """``VitModel.forward_head``: norm and classifier, on the cls token or the pooled grid."""

    def __init__(self, width: int, grid: TokenGrid, head: str, num_classes: int):
        super().__init__()
        self.grid, self.kind = grid, head
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(head_features(x, self.grid, self.kind, self.norm))


class _Downsample(nn.Module):
    def __init__(self, name: str, in_dim: int, out_dim: int, grid: TokenGrid):
        super().__init__()
        self.inner, self.grid = get_downsample(name)(in_dim, out_dim, grid), grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x, self.grid)[0]


class _TokenHalf(nn.Module):
    """``Block.mix_tokens`` of a deployed block, with the context the model gives it (grid, RoPE,
    a kept map of the right shape for a block that shares one)."""

    def __init__(self, block: Block, grid: TokenGrid, rope: bool, shared_map: tuple[int, ...] | None):
        super().__init__()
        self.block, self.grid = block.reparameterize(), grid
        self.rope = AxialRoPE() if rope else None
        self.shared = torch.softmax(torch.randn(shared_map), -1) if shared_map else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.mix_tokens(x, ForwardContext(grid=self.grid, attn=self.shared, rope=self.rope))


class _ChannelHalf(nn.Module):
    """``Block.mix_channels`` of a deployed block."""

    def __init__(self, block: Block):
        super().__init__()
        self.block = block.reparameterize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.mix_channels(x)


def arch_parts(arch: Any, img_size: int, in_chans: int, num_classes: int) -> Iterator[tuple[str, Any]]:
    """``(key, builder)`` per part of the architecture, in model order; ``builder(batch)`` gives
    ``(module, input)``. Keys are JSON strings of what shapes the part's cost."""
    arch = validate(resolve_arch(arch))
    width = arch.stages[0].width
    side = stem_grid_size(arch.stem, img_size)
    grid = TokenGrid(side, side, 1 if arch.head == "cls" else 0)
    stem = dataclasses.asdict(arch.stem)
    yield (
        _key("embed", stem, in_chans, width, img_size, arch.head, arch.position),
        lambda b, w=width, g=grid: (
            _Embed(arch, in_chans, w, g.tokens),
            torch.randn(b, in_chans, img_size, img_size),
        ),
    )
    keep = attention_sources(arch)
    rope = arch.position == "rope"
    for si, stage in enumerate(arch.stages):
        in_dim, grid_in = width, grid
        grid, width = get_downsample(stage.downsample).out_grid(grid), stage.width
        if stage.downsample != "none":
            yield (
                _key("downsample", stage.downsample, in_dim, width, _grid(grid_in)),
                (
                    lambda b, d=stage.downsample, i=in_dim, o=width, g=grid_in: (
                        _Downsample(d, i, o, g),
                        _tokens(b, g, i),
                    )
                ),
            )
        for bi, block in enumerate(stage.blocks):
            kept = (si, bi) in keep
            mixer = dataclasses.asdict(block.mixer)
            common = (width, _grid(grid), arch.norm, arch.layer_scale_init)
            yield (
                _key("mixer", *common, mixer, block.share_attention, kept, rope),
                (
                    lambda b, w=width, c=block, g=grid, k=kept: (
                        _TokenHalf(
                            Block(w, c, g, arch.norm, arch.layer_scale_init, keep_attention=k),
                            g,
                            rope,
                            (b, c.mixer.heads or 0, g.tokens, g.tokens) if c.share_attention else None,
                        ),
                        _tokens(b, g, w),
                    )
                ),
            )
            mlp = dataclasses.replace(block, mixer=MixerConfig("identity"), share_attention=False)
            yield (
                _key("mlp", *common, block.mlp_ratio, block.mlp_groups, block.cca),
                (
                    lambda b, w=width, c=mlp, g=grid: (
                        _ChannelHalf(Block(w, c, g, arch.norm, arch.layer_scale_init)),
                        _tokens(b, g, w),
                    )
                ),
            )
    yield (
        _key("head", width, _grid(grid), arch.head, num_classes),
        lambda b, w=width, g=grid: (
            _Head(w, g, arch.head, num_classes),
            _tokens(b, g, w),
        ),
    )


class LatencyTable:
    """Per-part median latencies on this machine; ``predict_ms(arch)`` sums an architecture's parts.

    Args:
        settings: backend, threads, batch, warm-up and repeats of every part's timing.
        img_size, in_chans, num_classes: the profile the architectures are timed at.
        path: JSON file to load entries from and save new ones to (``None``: memory only).
    """

    def __init__(
        self,
        settings: LatencySettings | None = None,
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        path: str | Path | None = None,
    ):
        self.settings = (settings or LatencySettings()).timing_only()
        self.img_size, self.in_chans, self.num_classes = img_size, in_chans, num_classes
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, float] = {}
        self.scale = 1.0  # whole-model / sum-of-parts latency, from ``calibrate``
        self.measured = 0  # parts timed by this instance (the rest came from the file)
        if self.path is not None and self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("identity") == self.identity():
                self.entries = {k: float(v) for k, v in data["entries"].items()}
                self.scale = float(data.get("scale", 1.0))

    def identity(self) -> dict[str, Any]:
        """What a stored table must match to be reused: the settings, profile, torch and machine."""
        return {
            "version": TABLE_VERSION,
            "settings": self.settings.to_dict(),
            "profile": [self.img_size, self.in_chans, self.num_classes],
            "torch": torch.__version__,
            "machine": platform.machine(),
            "processor": platform.processor(),
        }

    def calibrate(self, archs: list[Any]) -> float:
        """Time ``archs`` whole and set ``scale`` to the median of whole / sum of parts.

        A part timed alone in a loop keeps its weights in cache; in the model the next layer's
        weights evict them, so the plain sum runs low (about 15-20% on the full space,
        ``studies/bench_latency_table.py``). The scale fixes the level, not the ranking.
        """
        from .latency import arch_latency_ms

        self.scale = 1.0
        profile = (self.img_size, self.in_chans, self.num_classes, self.settings)
        arch_latency_ms(archs[0], *profile)  # discarded: a process's first timings run slow (measured 1.46 vs 1.19)
        ratios = []
        for arch in archs:
            parts = self.predict_ms(arch)
            ratios.append(arch_latency_ms(arch, *profile) / parts)
        self.scale = statistics.median(ratios)
        self.save()
        return self.scale

    def predict_ms(self, arch: Any) -> float:
        """The sum of the architecture's part latencies times ``scale``, timing new parts first."""
        total, fresh = 0.0, False
        for key, build in arch_parts(arch, self.img_size, self.in_chans, self.num_classes):
            if key not in self.entries:
                self.entries[key] = self._time(build)
                self.measured, fresh = self.measured + 1, True
            total += self.entries[key]
        if fresh:
            self.save()
        return total * self.scale

    def _time(self, build) -> float:
        s = self.settings
        with torch.no_grad():
            module, inputs = build(s.batch)
            result = measure_module_latency(module, inputs, s.threads, s.backend, warmup=s.warmup, repeats=s.repeats)
        return result.median_ms

    def save(self) -> None:
        if self.path is not None:
            payload = {"identity": self.identity(), "scale": self.scale, "entries": self.entries}
            atomic_write_text(self.path, json.dumps(payload, indent=1, sort_keys=True))


def _grid(grid: TokenGrid) -> list[int]:
    return [grid.height, grid.width, grid.prefix]


def _tokens(batch: int, grid: TokenGrid, width: int) -> torch.Tensor:
    return torch.randn(batch, grid.tokens, width)


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))


def default_table_path(settings: LatencySettings, img_size: int, in_chans: int, num_classes: int) -> Path:
    """Where this machine keeps its table for these settings: ``$XDG_CACHE_HOME/vitsearch`` (or ``~/.cache``)."""
    import hashlib
    import os

    identity = LatencyTable(settings, img_size, in_chans, num_classes).identity()
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "vitsearch" / f"latency-table-{digest}.json"
