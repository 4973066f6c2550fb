"""The ``vitsearch`` command line: a thin layer over functions a notebook can call too.

torch, timm and fvcore are imported inside the commands so ``vitsearch --help`` is instant.
Bad input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="vitsearch",
    help="Neural architecture search for efficient Vision Transformers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

USAGE_ERROR = 2


def fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(USAGE_ERROR)


def user_errors(fn: F) -> F:
    """Turn the errors a user can cause (bad names, files, configs) into one line and exit 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vitsearch.space import ConfigError

        try:
            return fn(*args, **kwargs)
        except ConfigError as err:
            raise fail(str(err)) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
            raise fail(f"{err.filename}: {err.strerror}") from None

    return wrapper  # type: ignore[return-value]


ArchArg = Annotated[str, typer.Argument(help="A preset name (see `vitsearch presets`) or a YAML/JSON config file.")]
ImgSize = Annotated[int, typer.Option("--img-size", min=1, help="Square input resolution of the target profile.")]
NumClasses = Annotated[int, typer.Option("--num-classes", min=0, help="Classifier outputs of the target profile.")]
InChans = Annotated[int, typer.Option("--in-chans", min=1, help="Input channels.")]


@app.command()
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


@app.command()
def mixers() -> None:
    """List the registered token mixers."""
    from vitsearch.space import get_mixer, list_mixers

    table = Table(title="token mixers")
    for column in ("name", "heads", "options", "description"):
        table.add_column(column)
    for name in list_mixers():
        cls = get_mixer(name)
        summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        options = ", ".join(f"{k}={v}" for k, v in cls.OPTIONS.items())
        table.add_row(name, "yes" if cls.USES_HEADS else "", options, summary)
    console.print(table)


@app.command()
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


def main() -> None:
    # torch.jit (used by fvcore's tracer) announces its deprecation on every run; not the user's concern.
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
