"""The ``vitsearch`` command line as a package: the app, shared options and errors, one module per command group.

- ``app``: the typer app and ``main`` (the console entry point)
- ``console``, ``errors``, ``options``: the one console, one-line errors and folder checks, shared options
- ``progress``, ``tables``: the one progress display and the result tables
- ``listing``, ``run``, ``study``, ``training``, ``supernet``: the commands
"""

from vitsearch.search.spaces import resolve_space

from .app import app, main
from .options import DEFAULT_EVALUATOR, DEFAULT_PRUNER, DEFAULT_SPACE

__all__ = ["DEFAULT_EVALUATOR", "DEFAULT_PRUNER", "DEFAULT_SPACE", "app", "main", "resolve_space"]
