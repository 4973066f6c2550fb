"""The ``vitsearch`` typer app: every command group mounted, and ``main``, the console entry point.

torch, timm and fvcore are imported inside the commands so ``vitsearch --help`` is instant.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings

import typer

from .console import err_console
from .listing import COMMANDS as LISTING
from .run import COMMANDS as RUN
from .study import COMMANDS as STUDY
from .supernet import app as supernet_app
from .training import COMMANDS as TRAINING

app = typer.Typer(
    name="vitsearch",
    help="Neural architecture search for efficient Vision Transformers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One module per command group, each naming its commands; the order is the order of `vitsearch --help`.
for group in (LISTING, RUN, STUDY, TRAINING):
    for name, command in group.items():
        app.command(name)(command)
app.add_typer(supernet_app, name="supernet")


def main() -> None:
    # OpenMP's default busy-waiting collapses when another process holds a core: measured on this
    # 2-core machine with one other busy process, a proxy training step took 8.0 s with 2 spinning
    # threads, 1.35 s with passive waiting and 0.58 s on 1 thread. Must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # torch.jit (used by fvcore's tracer) announces its deprecation on every run; not the user's concern.
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Optuna's experimental-feature notices and per-study INFO lines drown the progress display.
    warnings.filterwarnings("ignore", module="optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # `kill` (SIGTERM) unwinds like Ctrl-C: the running trial is failed and re-queued, outputs written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
