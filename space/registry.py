"""One generic name registry, and the two of ``space``: token mixers and stage-entry downsamplers.

Every pluggable kind in vitsearch (mixers, downsamples, stems, presets, evaluators, pruners,
samplers, latency backends...) is a ``Registry``: entries register with a decorator, the
built-in ones are found by importing the modules named in ``discover`` on the first lookup
(a package: every module in it, so a new file needs no edit elsewhere), and an unknown name
raises ``UnknownNameError``, which lists the choices.

Adding a mixer is one file in ``space/mixers/`` with ``@register_mixer("name")``: the config
validation, the model builder, the FLOPs counter and the tests find it here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .layers import Downsample, Mixer

T = TypeVar("T")


class UnknownNameError(ValueError, KeyError):
    """A name no registry entry has; the message names the kind and lists the choices.

    A ``ValueError`` (the CLI prints those as one line) and a ``KeyError`` (a failed lookup),
    so callers written against either keep working.
    """

    def __init__(self, kind: str, name: object, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(f"unknown {kind} {name!r} (choose from {', '.join(choices)})")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> entry, filled by ``register`` and by importing ``discover`` lazily.

    Args:
        kind: what an entry is, for messages ("mixer", "latency backend").
        discover: modules to import before the first lookup; a package is walked one level deep.
        tag: attribute set on each registered entry to its name (``NAME``), or ``None``.
    """

    def __init__(self, kind: str, discover: tuple[str, ...] = (), tag: str | None = None):
        self.kind, self.discover, self.tag = kind, discover, tag
        self._entries: dict[str, T] = {}
        self._discovered = not discover

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering an entry as ``name`` (default: its ``__name__``)."""

        def wrap(entry: T) -> T:
            key = name or entry.__name__  # type: ignore[attr-defined]
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            if self.tag:
                setattr(entry, self.tag, key)
            self._entries[key] = entry
            return entry

        return wrap

    def get(self, name: str) -> T:
        self._discover()
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name from a malformed file
            raise UnknownNameError(self.kind, name, self.names()) from None

    __getitem__ = get

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True  # set first: the imported modules register through this registry
        for module_name in self.discover:
            module = importlib.import_module(module_name)
            for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
                importlib.import_module(f"{module_name}.{info.name}")


MIXERS: Registry[type[Mixer]] = Registry("mixer", discover=("vitsearch.space.mixers",), tag="NAME")
DOWNSAMPLES: Registry[type[Downsample]] = Registry("downsample", discover=("vitsearch.space.downsample",), tag="NAME")


def register_mixer(name: str) -> Callable[[T], T]:
    """Class decorator: make a ``Mixer`` subclass selectable as ``mixer.type: name``."""
    return MIXERS.register(name)  # type: ignore[return-value]


def register_downsample(name: str) -> Callable[[T], T]:
    """Class decorator: make a ``Downsample`` subclass selectable as ``stage.downsample: name``."""
    return DOWNSAMPLES.register(name)  # type: ignore[return-value]


def get_mixer(name: str) -> type[Mixer]:
    return MIXERS.get(name)


def list_mixers() -> list[str]:
    return MIXERS.names()


def get_downsample(name: str) -> type[Downsample]:
    return DOWNSAMPLES.get(name)


def list_downsamples() -> list[str]:
    return DOWNSAMPLES.names()
