"""Name-keyed registries for token mixers and stage-entry downsamplers.

Adding a mixer is one file in ``space/mixers/`` with ``@register_mixer("name")``: the config
validation, the model builder, the FLOPs counter and the tests find it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .layers import Downsample, Mixer

_MIXERS: dict[str, type[Mixer]] = {}
_DOWNSAMPLES: dict[str, type[Downsample]] = {}

M = TypeVar("M")


def register_mixer(name: str):
    """Class decorator: make a ``Mixer`` subclass selectable as ``mixer.type: name``."""

    def wrap(cls: M) -> M:
        assert name not in _MIXERS, f"mixer {name!r} is registered twice"
        cls.NAME = name  # type: ignore[attr-defined]
        _MIXERS[name] = cls  # type: ignore[assignment]
        return cls

    return wrap


def register_downsample(name: str):
    """Class decorator: make a ``Downsample`` subclass selectable as ``stage.downsample: name``."""

    def wrap(cls: M) -> M:
        assert name not in _DOWNSAMPLES, f"downsample {name!r} is registered twice"
        cls.NAME = name  # type: ignore[attr-defined]
        _DOWNSAMPLES[name] = cls  # type: ignore[assignment]
        return cls

    return wrap


def _load_builtins() -> None:
    # Importing the packages runs their decorators; cheap after the first call.
    from . import downsample, mixers  # noqa: F401


def get_mixer(name: str) -> type[Mixer]:
    _load_builtins()
    try:
        return _MIXERS[name]
    except KeyError:
        raise KeyError(f"unknown mixer {name!r} (registered: {', '.join(list_mixers())})") from None


def list_mixers() -> list[str]:
    _load_builtins()
    return sorted(_MIXERS)


def get_downsample(name: str) -> type[Downsample]:
    _load_builtins()
    try:
        return _DOWNSAMPLES[name]
    except KeyError:
        raise KeyError(f"unknown downsample {name!r} (registered: {', '.join(list_downsamples())})") from None


def list_downsamples() -> list[str]:
    _load_builtins()
    return sorted(_DOWNSAMPLES)
