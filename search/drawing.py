"""An architecture as the papers draw it: stages as boxes, each layer coloured by its token mixer.

``arch_view`` turns an ``ArchConfig`` into plain data (stages with their width, token grid,
entry and share of FLOPs and params; layers with mixer, heads, MLP ratio and groups, sharing
and CCA); ``arch_svg`` draws that as a self-contained SVG for ``report.html``. The terminal
drawing of ``vitsearch show`` (``search/cli/drawing.py``) reads the same view.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from html import escape

from vitsearch.space import ArchConfig
from vitsearch.space.analytic import analytic_parts, stage_steps
from vitsearch.space.model import attention_sources

# One colour per mixer family, shared by the SVG and the terminal: the attention family in warm
# colours, the linear approximations in purples and browns, the attention-free mixers in greens
# and blues, identity grey. A mixer registered later gets a stable colour from its name.
MIXER_COLOURS = {
    "attention": "#d62728",
    "refined": "#ff7f0e",
    "window": "#e6a100",
    "performer": "#9467bd",
    "linformer": "#8c564b",
    "nystrom": "#e377c2",
    "fnet": "#17becf",
    "pool": "#2ca02c",
    "dwconv": "#1f77b4",
    "identity": "#7f7f7f",
}

# Stage entries that pool the token grid between layers (PSViT), as opposed to a strided convolution.
POOLING_ENTRIES = {"mean", "max", "dwconv"}


def mixer_colour(mixer: str) -> str:
    """The mixer's colour; an unlisted mixer gets one derived from its name, the same on every run."""
    if mixer in MIXER_COLOURS:
        return MIXER_COLOURS[mixer]
    return "#" + hashlib.sha1(mixer.encode()).hexdigest()[:6]


@dataclass(frozen=True)
class LayerView:
    number: int  # 0-based across the whole model
    mixer: str
    heads: int | None
    mlp_ratio: float
    mlp_groups: int
    shares_map: bool  # reuses the attention map of the nearest earlier non-sharing block (PSViT)
    lends_map: bool  # a later block reuses this block's attention map
    cca: bool  # SCHEME channel-covariance branch (training only; folded away when deployed)

    @property
    def colour(self) -> str:
        return mixer_colour(self.mixer)

    @property
    def mixer_label(self) -> str:
        return self.mixer + (f" {self.heads}h" if self.heads else "")

    @property
    def mlp_label(self) -> str:
        return f"MLP x{self.mlp_ratio:g}" + (f" g{self.mlp_groups}" if self.mlp_groups > 1 else "")

    @property
    def marks(self) -> list[str]:
        """Short words for what the colour does not show: sharing and CCA."""
        flags = (("reuses map", self.shares_map), ("map reused", self.lends_map), ("+cca", self.cca))
        return [word for word, on in flags if on]


@dataclass(frozen=True)
class StageView:
    index: int
    width: int
    grid: tuple[int, int]  # token grid its layers see (height, width)
    prefix_tokens: int  # cls token(s) beside the grid
    entry: str  # the stage's downsample: none | conv | mean | max | dwconv ...
    in_grid: tuple[int, int]
    layers: tuple[LayerView, ...]
    flops: int
    params: int
    flops_share: float  # of the whole model's
    params_share: float

    @property
    def pools_tokens(self) -> bool:
        return self.entry in POOLING_ENTRIES

    @property
    def entry_kind(self) -> str:
        """How the stage is entered (``conv``, ``mean pool``...); empty when the grid passes through."""
        if self.entry == "none":
            return ""
        return f"{self.entry} pool" if self.pools_tokens else self.entry

    @property
    def grid_change(self) -> str:
        return f"{self.in_grid[0]}x{self.in_grid[1]} -> {self.grid[0]}x{self.grid[1]}"

    @property
    def entry_label(self) -> str:
        """E.g. ``conv 56x56 -> 28x28``; empty when the grid passes through."""
        return f"{self.entry_kind} {self.grid_change}" if self.entry_kind else ""

    @property
    def title(self) -> str:
        tokens = f"{self.grid[0]}x{self.grid[1]}" + (f"+{self.prefix_tokens}" if self.prefix_tokens else "")
        count = f"{len(self.layers)} layer" + ("" if len(self.layers) == 1 else "s")
        return f"stage {self.index}: width {self.width}, {tokens} tokens, {count}"

    @property
    def share_label(self) -> str:
        return f"{self.flops_share:.0%} of FLOPs, {self.params_share:.0%} of params"


@dataclass(frozen=True)
class ArchView:
    img_size: int
    stem: str  # e.g. ``patch16``
    head: str  # cls | mean
    position: str
    stages: tuple[StageView, ...]
    flops: int
    params: int
    stem_share: float  # of FLOPs
    head_share: float

    @property
    def mixers(self) -> list[str]:
        """The mixers used, in order of first appearance (the legend)."""
        seen: dict[str, None] = {}
        for stage in self.stages:
            for layer in stage.layers:
                seen.setdefault(layer.mixer, None)
        return list(seen)


def arch_view(arch: ArchConfig, img_size: int = 224, num_classes: int = 1000) -> ArchView:
    """The drawing's data: stages, layers, token grids and each stage's share of the analytic counts."""
    parts = {p.name: p for p in analytic_parts(arch, img_size=img_size, num_classes=num_classes)}
    flops = sum(p.flops for p in parts.values()) or 1
    params = sum(p.params for p in parts.values()) or 1
    lenders = attention_sources(arch)
    stages, number = [], 0
    for step in stage_steps(arch, img_size):
        layers = []
        for bi, block in enumerate(step.stage.blocks):
            layers.append(
                LayerView(
                    number,
                    block.mixer.type,
                    block.mixer.heads,
                    block.mlp_ratio,
                    block.mlp_groups,
                    block.share_attention,
                    (step.index, bi) in lenders,
                    block.cca,
                )
            )
            number += 1
        part = parts[f"stages.{step.index}"]
        stages.append(
            StageView(
                step.index,
                step.stage.width,
                (step.grid.height, step.grid.width),
                step.grid.prefix,
                step.stage.downsample,
                (step.in_grid.height, step.in_grid.width),
                tuple(layers),
                part.flops,
                part.params,
                part.flops / flops,
                part.params / params,
            )
        )
    return ArchView(
        img_size,
        f"{arch.stem.type}{arch.stem.patch_size}",
        arch.head,
        arch.position,
        tuple(stages),
        flops,
        params,
        parts["stem"].flops / flops,
        parts["head"].flops / flops,
    )


# --- SVG ----------------------------------------------------------------------------------------

_COLUMN, _GAP, _LAYER_H, _HEADER_H, _PAD = 210, 64, 30, 58, 10
_LEGEND_PER_ROW = 6


def arch_svg(view: ArchView) -> str:
    """The view as one SVG: stem, the stages left to right (a box each, a bar per layer), head, legend."""
    tallest = max(len(s.layers) for s in view.stages)
    body_h = _HEADER_H + tallest * _LAYER_H + _PAD
    boxes_w = (len(view.stages) + 2) * (_COLUMN + _GAP)
    legend_h = 28 * -(-len(view.mixers) // _LEGEND_PER_ROW) + 10
    height = body_h + 40 + legend_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="arch-drawing" viewBox="0 0 {boxes_w} {height}" '
        f'width="100%" font-family="sans-serif" font-size="12" role="img" aria-label="chosen architecture">'
    ]
    x = 0
    out += _end_box(x, "stem", [view.stem, f"{view.img_size}px input", f"{view.stem_share:.0%} of FLOPs"])
    x += _COLUMN + _GAP
    for stage in view.stages:
        out += _arrow(x - _GAP, stage.entry_kind, stage.grid_change, stage.pools_tokens)
        out += _stage_box(x, stage, body_h)
        x += _COLUMN + _GAP
    out += _arrow(x - _GAP, "", "", False)
    out += _end_box(
        x,
        "head",
        [
            f"{view.head} token" if view.head == "cls" else "mean pool",
            "norm, linear",
            f"{view.head_share:.0%} of FLOPs",
        ],
    )
    out += _legend(view.mixers, body_h + 30)
    out.append("</svg>")
    return "\n".join(out)


def _end_box(x: int, title: str, lines: list[str]) -> list[str]:
    out = [
        f'<rect x="{x}" y="0" width="{_COLUMN}" height="{_HEADER_H + 20}" rx="8" fill="#f4f4f4" stroke="#999"/>',
        f'<text x="{x + 10}" y="20" font-weight="bold">{escape(title)}</text>',
    ]
    out += [f'<text x="{x + 10}" y="{38 + 16 * i}">{escape(line)}</text>' for i, line in enumerate(lines)]
    return out


def _arrow(x: int, kind: str, grids: str, pooling: bool) -> list[str]:
    y = 40
    colour = "#2ca02c" if pooling else "#555"
    out = [
        f'<line x1="{x + 4}" y1="{y}" x2="{x + _GAP - 6}" y2="{y}" stroke="{colour}" stroke-width="2"/>',
        f'<polygon points="{x + _GAP - 6},{y - 5} {x + _GAP},{y} {x + _GAP - 6},{y + 5}" fill="{colour}"/>',
    ]
    if kind:  # the entry, under the arrow on two lines: what it is, then the grid change
        out.append(
            f'<text x="{x + _GAP / 2}" y="{y + 18}" text-anchor="middle" font-size="10" fill="{colour}">'
            f"{escape(kind)}</text>"
        )
        out.append(
            f'<text x="{x + _GAP / 2}" y="{y + 30}" text-anchor="middle" font-size="9" fill="{colour}">'
            f"{escape(grids.replace(' -> ', ' → '))}</text>"
        )
    return out


def _stage_box(x: int, stage: StageView, body_h: int) -> list[str]:
    h = _HEADER_H + len(stage.layers) * _LAYER_H + _PAD
    tokens = f"{stage.grid[0]}x{stage.grid[1]}" + (f" +{stage.prefix_tokens} cls" if stage.prefix_tokens else "")
    out = [
        f'<g class="stage" data-stage="{stage.index}">',
        f'<rect x="{x}" y="0" width="{_COLUMN}" height="{h}" rx="8" fill="#fafafa" stroke="#666"/>',
        f'<text x="{x + 10}" y="18" font-weight="bold">stage {stage.index} · width {stage.width}</text>',
        f'<text x="{x + 10}" y="34">{escape(tokens)} tokens</text>',
        f'<text x="{x + 10}" y="50" fill="#444">{escape(stage.share_label)}</text>',
    ]
    for i, layer in enumerate(stage.layers):
        y = _HEADER_H + i * _LAYER_H
        dash = ' stroke-dasharray="4 2"' if layer.shares_map else ""
        tip = f"layer {layer.number}: {layer.mixer_label}, {layer.mlp_label}" + "".join(f", {m}" for m in layer.marks)
        out += [
            f'<g class="layer" data-mixer="{escape(layer.mixer)}"><title>{escape(tip)}</title>',
            f'<rect x="{x + 8}" y="{y}" width="{_COLUMN - 16}" height="{_LAYER_H - 4}" rx="4" '
            f'fill="{layer.colour}" fill-opacity="0.85" stroke="#333"{dash}/>',
            f'<text x="{x + 14}" y="{y + 17}" fill="white" font-weight="bold">{escape(layer.mixer_label)}</text>',
            f'<text x="{x + _COLUMN - 14}" y="{y + 17}" fill="white" text-anchor="end" font-size="10">'
            f"{escape(' '.join([layer.mlp_label.replace('MLP ', ''), *layer.marks]))}</text>",
            "</g>",
        ]
    out.append("</g>")
    return out


def _legend(mixers: list[str], y: int) -> list[str]:
    out = []
    for i, mixer in enumerate(mixers):
        lx, ly = (i % _LEGEND_PER_ROW) * 150, y + 28 * (i // _LEGEND_PER_ROW)
        out += [
            f'<rect x="{lx}" y="{ly}" width="16" height="16" rx="3" fill="{mixer_colour(mixer)}"/>',
            f'<text x="{lx + 22}" y="{ly + 13}">{escape(mixer)}</text>',
        ]
    note_y = y + 28 * -(-len(mixers) // _LEGEND_PER_ROW) + 4
    out.append(
        f'<text x="0" y="{note_y}" font-size="10" fill="#555">dashed: reuses an earlier attention map '
        "(PSViT); MLP xR gG: expansion ratio and block-diagonal groups (SCHEME); green arrows pool "
        "tokens</text>"
    )
    return out
