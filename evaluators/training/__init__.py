"""The one training engine behind every training path (proxy, ``vitsearch train``, the supernet).

- ``device``: where training runs (``auto|cpu|cuda|cuda:N``) and in which precision
  (``bf16|fp16|off`` autocast, a grad scaler for fp16).
- ``optim``: timm's optimizer and scheduler factories, configured one way for every caller.
- ``engine``: one optimizer update (loss, divergence check, backward, clip, step, schedule,
  EMA) and one ``top1``.

Callers keep only what is theirs: the proxy its pruning and wall-clock cap, ``train`` its
mixup, distillation and checkpoints, the supernet its sandwich rule (the loss closure).
"""

from .device import Precision, compiled, place_model, resolve_device, resolve_precision, to_device
from .engine import Engine, top1
from .optim import make_optimizer, make_scheduler

__all__ = [
    "Engine",
    "Precision",
    "compiled",
    "make_optimizer",
    "make_scheduler",
    "place_model",
    "resolve_device",
    "resolve_precision",
    "to_device",
    "top1",
]
