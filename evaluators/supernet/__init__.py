"""Weight-sharing supernet: train once over a search space, then score its architectures as paths."""

from .dims import PathError, SupernetProfile, space_dims
from .model import Supernet

__all__ = ["PathError", "Supernet", "SupernetProfile", "space_dims"]
