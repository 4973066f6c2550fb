"""The one training engine behind every training path (proxy, ``vitsearch train``, the supernet).

- ``device``: where training runs (``auto|cpu|cuda|cuda:N``) and in which precision
  (``bf16|fp16|off`` autocast, a grad scaler for fp16).
- ``optim``: timm's optimizer and scheduler factories, configured one way for every caller.
- ``engine``: one optimizer update (loss, divergence check, backward, clip, step, schedule,
  EMA) and one ``top1``.
- ``fit``: the one epoch loop around the engine (batches, updates, the epoch's loss, the
  epoch-level schedule step, resuming mid-epoch, early stops).

Callers keep only what is theirs, as ``fit`` hooks: the proxy its validation, pruning and
wall-clock cap; ``train`` its reseeding, mixup, distillation and checkpoints; the supernet
its sandwich rule and checkpoints.
"""

from .device import Precision, compiled, place_model, resolve_device, resolve_precision, to_device
from .engine import Engine, top1
from .fit import FitState, Hook, fit
from .optim import make_optimizer, make_scheduler

__all__ = [
    "Engine",
    "FitState",
    "Hook",
    "Precision",
    "compiled",
    "fit",
    "make_optimizer",
    "make_scheduler",
    "place_model",
    "resolve_device",
    "resolve_precision",
    "to_device",
    "top1",
]
