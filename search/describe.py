"""An architecture in one line of words, for tables, plots and logs."""

from __future__ import annotations

from vitsearch.space import ArchConfig


def describe(arch: ArchConfig) -> str:
    """The architecture in words: ``4x192 attention(3h) r4 | 2x384 pool r4 ... [patch16, cls, learned]``."""
    parts = []
    for stage in arch.stages:
        runs: list[tuple[str, int]] = []
        for block in stage.blocks:
            word = block.mixer.type
            if block.mixer.heads:
                word += f"({block.mixer.heads}h{'/shared' if block.share_attention else ''})"
            word += f" r{block.mlp_ratio:g}" + (f"/g{block.mlp_groups}" if block.mlp_groups > 1 else "")
            word += " +cca" if block.cca else ""
            if runs and runs[-1][0] == word:
                runs[-1] = (word, runs[-1][1] + 1)
            else:
                runs.append((word, 1))
        entry = "" if stage.downsample == "none" else f"{stage.downsample}-> "
        parts.append(entry + f"w{stage.width}: " + ", ".join(f"{n}x {w}" for w, n in runs))
    return " | ".join(parts) + f" [{arch.stem.type}{arch.stem.patch_size}, {arch.head}, {arch.position}]"
