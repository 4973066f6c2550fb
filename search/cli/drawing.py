"""The chosen architecture drawn in the terminal: a panel per stage, a coloured bar per layer.

It reads the same ``ArchView`` as the SVG of ``report.html`` (``search/drawing.py``), with the same colours.
"""

from __future__ import annotations

from itertools import groupby

from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from vitsearch.search.drawing import ArchView, LayerView, StageView, mixer_colour


def arch_panels(view: ArchView, title: str) -> Group:
    """Title, stem, then each stage's entry arrow and panel, then the head and the mixer legend."""
    parts: list = [Text(title, style="bold")]
    parts.append(Text(f"stem {view.stem} at {view.img_size}px ({view.stem_share:.0%} of FLOPs)"))
    for stage in view.stages:
        if stage.entry_label:
            style = "green" if stage.pools_tokens else "bright_black"
            parts.append(Text(f"  ↓ {stage.entry_label}", style=style))
        parts.append(_stage_panel(stage))
    head = "cls token" if view.head == "cls" else "mean pool"
    parts.append(Text(f"head: {head}, norm, linear ({view.head_share:.0%} of FLOPs)"))
    parts.append(_legend(view))
    return Group(*parts)


def _stage_panel(stage: StageView) -> Panel:
    lines = Text()
    # Consecutive identical layers print once with a count: a 12-layer DeiT stage is one line.
    for i, (_, run) in enumerate(groupby(stage.layers, key=_layer_key)):
        layers = list(run)
        if i:
            lines.append("\n")
        lines.append(_layer_line(layers[0], len(layers)))
    return Panel(lines, title=stage.title, subtitle=stage.share_label, title_align="left", expand=False)


def _layer_key(layer: LayerView) -> tuple:
    return (layer.mixer, layer.heads, layer.mlp_ratio, layer.mlp_groups, layer.shares_map, layer.lends_map, layer.cca)


def _layer_line(layer: LayerView, count: int) -> Text:
    line = Text(f"{count}x " if count > 1 else "   ")
    line.append("██ ", style=layer.colour)
    line.append(f"{layer.mixer_label:<14}", style=f"bold {layer.colour}")
    line.append(f" {layer.mlp_label:<11}")
    if layer.marks:
        line.append(" " + " ".join(layer.marks), style="italic")
    return line


def _legend(view: ArchView) -> Text:
    legend = Text("mixers: ")
    for mixer in view.mixers:
        legend.append("██", style=mixer_colour(mixer))
        legend.append(f" {mixer}  ")
    return legend
