"""Weight-sharing supernet: train once over a search space, then score its architectures as paths.

``load_supernet(ckpt).extract(arch)`` is the standalone model of ``arch`` with the weights it
inherits; ``vitsearch supernet train`` / ``eval`` and the ``supernet`` evaluator use the rest.
"""

from .checkpoint import CheckpointError, load_supernet, read_meta, save_checkpoint
from .dims import PathError, SupernetProfile, space_dims
from .evaluator import SupernetEvaluator
from .model import Supernet
from .score import path_accuracy
from .train import SupernetTrainConfig, SupernetTrainingError, train_supernet

__all__ = [
    "CheckpointError",
    "PathError",
    "Supernet",
    "SupernetEvaluator",
    "SupernetProfile",
    "SupernetTrainConfig",
    "SupernetTrainingError",
    "load_supernet",
    "path_accuracy",
    "read_meta",
    "save_checkpoint",
    "space_dims",
    "train_supernet",
]
