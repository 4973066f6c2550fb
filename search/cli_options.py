"""Options shared by several commands (``cli.py`` and ``supernet_cli.py`` both import them; no cycle)."""

from __future__ import annotations

from typing import Annotated

import typer

DeviceOption = Annotated[str, typer.Option("--device", help="auto (a GPU when there is one), cpu, cuda or cuda:N.")]
AmpOption = Annotated[
    str, typer.Option("--amp", help="Mixed precision: auto (bf16 on a capable GPU, off on the CPU), bf16, fp16, off.")
]

CompileOption = Annotated[
    bool, typer.Option("--compile", help="torch.compile the training forward (opt-in; pays off on long GPU runs).")
]


def check_device(device: str, amp: str) -> None:
    """Refuse an unknown or missing device, or an unknown precision, before anything is written."""
    from vitsearch.evaluators.training import resolve_device, resolve_precision

    resolve_precision(amp, resolve_device(device))
