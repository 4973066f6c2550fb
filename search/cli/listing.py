"""What there is to search: ``flops`` of one architecture, and the mixers, evaluators, presets and spaces."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .console import console
from .errors import user_errors
from .options import ArchArg, ImgSize, InChans, NumClasses


@user_errors
def flops(
    arch: ArchArg,
    img_size: ImgSize = 224,
    num_classes: NumClasses = 1000,
    in_chans: InChans = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    train_form: Annotated[
        bool, typer.Option("--train-form", help="Count the training form (before reparameterisation).")
    ] = False,
) -> None:
    """Parameters and FLOPs (fused multiply-adds) of an architecture, with a per-stage breakdown."""
    from vitsearch.search.report import complexity_report

    report = complexity_report(arch, img_size, in_chans, num_classes, deployed=not train_form)
    if as_json:
        print(json.dumps(report))
        return
    table = Table(
        title=f"{report['arch']} at {img_size}x{img_size}x{in_chans}, {num_classes} classes ({report['form']})"
    )
    table.add_column("part")
    table.add_column("params", justify="right")
    table.add_column("GFLOPs", justify="right")
    table.add_column("share", justify="right")
    for part in report["parts"]:
        share = part["flops"] / report["flops"] if report["flops"] else 0.0
        table.add_row(part["name"], f"{part['params']:,}", f"{part['flops'] / 1e9:.4f}", f"{share:.1%}")
    table.add_section()
    table.add_row("total", f"{report['params']:,}", f"{report['flops'] / 1e9:.4f}", "100.0%", style="bold")
    console.print(table)


def mixers() -> None:
    """List the registered token mixers."""
    from vitsearch.space import get_mixer, list_mixers

    table = Table(title="token mixers")
    for column in ("name", "heads", "options", "description"):
        table.add_column(column)
    for name in list_mixers():
        cls = get_mixer(name)
        summary = cls.SUMMARY or " ".join((cls.__doc__ or "").split())[:80]
        options = ", ".join(f"{k}={v}" for k, v in cls.OPTIONS.items())
        table.add_row(name, "yes" if cls.USES_HEADS else "", options, summary)
    console.print(table)


def evaluators() -> None:
    """List the accuracy evaluators and their settings (pass them with --set KEY=VALUE)."""
    from vitsearch.evaluators.base import get_evaluator_class, list_evaluators

    table = Table(title="evaluators")
    for column in ("name", "description"):
        table.add_column(column)
    for name in list_evaluators():
        lines = (get_evaluator_class(name).__doc__ or "").strip().splitlines()
        table.add_row(name, lines[0] if lines else "")
    console.print(table)


def presets() -> None:
    """List the named architectures."""
    from vitsearch.space.presets import PRESETS, list_presets

    table = Table(title="presets")
    table.add_column("name")
    table.add_column("stages")
    for name in list_presets():
        arch = PRESETS[name]()
        stages = " | ".join(f"{s.depth}x{s.width} {s.blocks[0].mixer.type}" for s in arch.stages)
        table.add_row(name, stages)
    console.print(table)


@user_errors
def spaces(
    img_size: ImgSize = 224,
    num_classes: NumClasses = 1000,
) -> None:
    """List the shipped search spaces with their size and FLOPs range at the target profile."""
    from vitsearch.evaluators.complexity import analytic_flops
    from vitsearch.search.spaces import spaces_dir
    from vitsearch.space.search_space import SearchSpace

    table = Table(title=f"search spaces (FLOPs at {img_size}px, {num_classes} classes)")
    for column in ("name", "architectures", "min GFLOPs", "max GFLOPs", "description"):
        table.add_column(column, justify="right" if "FLOPs" in column or column == "architectures" else "left")
    for path in sorted(spaces_dir().glob("*.yaml")):
        space = SearchSpace.load(path)
        low = analytic_flops(space.smallest(img_size, num_classes), img_size, num_classes=num_classes)
        high = analytic_flops(space.largest(img_size, num_classes), img_size, num_classes=num_classes)
        size = space.size()
        table.add_row(
            space.name,
            f"{size:.2e}" if size > 1e6 else f"{size:,}",
            f"{low / 1e9:.3f}",
            f"{high / 1e9:.3f}",
            space.description,
        )
    console.print(table)


COMMANDS = {"flops": flops, "mixers": mixers, "evaluators": evaluators, "presets": presets, "spaces": spaces}
