"""Complexity reports shared by the CLI and notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _part_of(name: str) -> str:
    """Which row of the breakdown a module or parameter name belongs to."""
    top = name.split(".")[0]
    if top == "stages":
        return ".".join(name.split(".")[:2])
    if top in ("stem", "cls_token", "pos_embed"):
        return "stem"
    return "head"


def complexity_report(
    arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000, deployed: bool = True
) -> dict[str, Any]:
    """Params and FLOPs of an architecture, in total and per part (stem, each stage, head).

    Args:
        arch: preset name, config path, dict or ``ArchConfig``.
        deployed: count the reparameterised inference form (training-only branches removed).
    """
    from vitsearch.evaluators.complexity import flop_analysis
    from vitsearch.space import build_model, resolve_arch

    config = resolve_arch(arch)
    model = build_model(config, img_size=img_size, in_chans=in_chans, num_classes=num_classes)
    reparameterize = getattr(model, "reparameterize", None)
    if deployed and reparameterize is not None:
        model = reparameterize()
    model.eval()
    analysis = flop_analysis(model, img_size, in_chans)
    by_module = analysis.by_module()
    names = ["stem"] + [f"stages.{i}" for i in range(len(config.stages))] + ["head"]
    parts = {n: {"name": n, "params": 0, "flops": 0} for n in names}
    for pname, p in model.named_parameters():
        parts[_part_of(pname)]["params"] += p.numel()
    for top in ("stem", "norm", "head"):
        parts[_part_of(top)]["flops"] += int(by_module.get(top, 0))
    for i in range(len(config.stages)):
        parts[f"stages.{i}"]["flops"] = int(by_module.get(f"stages.{i}", 0))
    label = arch if isinstance(arch, str) else (str(arch) if isinstance(arch, Path) else "architecture")
    return {
        "arch": label,
        "digest": config.digest(),
        "form": "deployed" if deployed else "train",
        "img_size": img_size,
        "in_chans": in_chans,
        "num_classes": num_classes,
        "params": sum(p.numel() for p in model.parameters()),
        "flops": int(analysis.total()),
        "parts": list(parts.values()),
    }
