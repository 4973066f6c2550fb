"""Token mixers, one per file; importing this package registers them all."""

from . import attention, pool  # noqa: F401
