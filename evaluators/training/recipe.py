"""Training recipes: frozen dataclasses validated once, by rules, with one error style.

Every training path keeps its settings in a recipe (``ProxyProfile``, ``TrainRecipe``,
``SupernetTrainConfig``). Each inherits ``Recipe``, lists its own ``rules()`` on top of the
rules every recipe shares (``epochs``, ``batch_size``, ``lr``, ``weight_decay``,
``label_smoothing``, ``grad_clip``, ``warmup_epochs`` where present), and the first broken rule
raises ``ConfigError(<field as the user names it>, "<problem>, got <value>")``. ``FIELD_NAME``
is how the user names a field: a CLI flag (``--batch-size``) or a settings key
(``ProxyProfile.epochs``, set with ``--set epochs=...``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from vitsearch.space import ConfigError

Rule = tuple[bool, str, str]  # (holds, field, problem)

_SHARED: tuple[tuple[str, Any, str], ...] = (
    ("epochs", lambda v: v >= 1, "must be at least 1"),
    ("batch_size", lambda v: v >= 1, "must be at least 1"),
    ("lr", lambda v: v > 0, "must be positive"),
    ("weight_decay", lambda v: v >= 0, "must be 0 or more"),
    ("warmup_epochs", lambda v: v >= 0, "must be 0 or more"),
    ("min_lr", lambda v: v >= 0, "must be 0 or more"),
    ("label_smoothing", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("grad_clip", lambda v: v is None or v > 0, "must be positive (or None: no clipping)"),
)


def positive_or_none(value: float | None) -> bool:
    return value is None or value >= 1


class Recipe:
    """Mixin of a frozen recipe dataclass: ``__post_init__`` checks the shared rules, then ``rules()``."""

    FIELD_NAME: ClassVar[str] = "--{flag}"  # formatted with name=, flag= (dashed) and cls=

    def rules(self) -> list[Rule]:
        """The recipe's own rules (the shared ones are checked first)."""
        return []

    def field_name(self, name: str) -> str:
        return self.FIELD_NAME.format(name=name, flag=name.replace("_", "-"), cls=type(self).__name__)

    def __post_init__(self) -> None:
        shared = [
            (check(getattr(self, name)), name, problem) for name, check, problem in _SHARED if hasattr(self, name)
        ]
        for ok, name, problem in [*shared, *self.rules()]:
            if not ok:
                raise ConfigError(self.field_name(name), f"{problem}, got {getattr(self, name)!r}")
