"""The shipped search spaces (``space/spaces/*.yaml``, package data of ``vitsearch.space``) and how a
``--space`` value names one."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vitsearch.space.search_space import SearchSpace


def spaces_dir() -> Path:
    """The shipped space files: ``spaces/`` of the installed ``vitsearch.space`` package (a wheel ships them)."""
    # Located, not imported: `vitsearch --help` imports this module, and the space package imports torch.
    spec = importlib.util.find_spec("vitsearch.space")
    assert spec is not None and spec.submodule_search_locations, "vitsearch.space is not installed"
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "spaces"


def resolve_space(name_or_path: str) -> SearchSpace:
    """A space file (``.yaml``, or any existing path) or the name of a shipped space."""
    # Imported here: `vitsearch --help` imports this module, and the space package imports torch.
    from vitsearch.space import ConfigError
    from vitsearch.space.search_space import SearchSpace

    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return SearchSpace.load(path)
    shipped = spaces_dir() / f"{name_or_path}.yaml"
    if shipped.exists():
        return SearchSpace.load(shipped)
    names = ", ".join(p.stem for p in sorted(spaces_dir().glob("*.yaml")))
    raise ConfigError("--space", f"{name_or_path!r} is neither a space file nor a shipped space ({names})")
