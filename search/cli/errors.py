"""Bad input as one line on stderr and exit code 2, never a traceback; output folders checked before any write."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer

from .console import err_console

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
        except OSError as err:  # a file or folder the user named: missing, a file, not writable...
            raise fail(f"{err.filename}: {err.strerror}" if err.filename else str(err) or type(err).__name__) from None
        except ValueError as err:  # our ValueErrors are one-line messages naming the field
            raise fail(str(err).splitlines()[0] if str(err) else type(err).__name__) from None

    return wrapper  # type: ignore[return-value]


def writable_folder(path: Path, option: str) -> Path:
    """Refuse an output folder that cannot be created or written, before anything is read or written.

    Checks the folder, or the nearest part of its path that exists: a file there, or a folder
    without write permission, is one line naming ``option``. (Root writes through permissions,
    so there only a file in the way is caught early; ``user_errors`` still catches the rest.)
    """
    from vitsearch.space import ConfigError

    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(option, f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(option, f"{existing} is not writable")
    return path
