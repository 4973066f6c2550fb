"""The CLI's one rich console (stdout) and its stderr twin for errors: every command prints through these."""

from __future__ import annotations

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
