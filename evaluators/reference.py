"""The ``reference`` evaluator: the proxy's recipe trained long enough to mean "better once trained".

It is ``ProxyEvaluator`` with another default profile (``REFERENCE_PROFILE``), the ground
truth that every cheaper estimate's Kendall tau is measured against (DESIGN.md):

- **All training images** (``train_subset=None``: mnist5k's 4,500) for **18 epochs**:
  81,000 images seen, 20.25x the default proxy's 1,000 x 4 = 4,000. Measured on one CPU
  thread (x0.25, batch 32, a second process on the other core): one epoch of DeiT-Tiny 154 s,
  so 18 epochs are about 46 minutes, and the median architecture of ``studies/fidelity`` is
  about as long (a20, 1.13 GFLOPs: 2,382 s). Batch 64 was no faster per image on that median
  architecture (33 s vs 32 s per 1,000 images), so the batch stays the proxy's 32.
- **Linear warm-up (2 epochs) then cosine** to ``min_lr``, stepped per update by timm's
  scheduler through the training engine, as the proxy does.
- **The proxy's width (x0.25) and token grid**: the reference trains the very architecture the
  proxy trains, so a proxy-vs-reference tau measures what training length (and images, grid,
  learning rate...) costs in ranking, not a width change on top; and a full-width reference of
  36+ architectures would not fit a 2-core CPU (x0.5 already doubles DeiT-Tiny's proxy time,
  47 s -> 97 s in ``ProxyProfile``'s measurements, and x0.25 is already ~40 CPU-minutes here).
- **No wall-clock cap** (``max_seconds=None``): a capped run ranks machines, not architectures.

Per-epoch validation accuracy is returned as ``val_acc_epoch_<k>`` (k = 1..epochs), so a study
can show whether the curves flatten; ``curve(result)`` reads them back as a list. Keyword
overrides, ``device=`` and ``amp=`` are the proxy's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import register_evaluator
from .profile import ProxyProfile
from .proxy import ProxyEvaluator

if TYPE_CHECKING:
    import optuna

    from vitsearch.space import ArchConfig

REFERENCE_PROFILE = ProxyProfile(
    epochs=18,
    train_subset=None,
    warmup_epochs=2,
    max_seconds=None,
    width_mult=0.25,
)
EPOCH_KEY = "val_acc_epoch_"


class _CurveRecorder:
    """Stands in for the Optuna trial: records each epoch's accuracy, forwards to a real trial if any."""

    def __init__(self, trial: optuna.Trial | None):
        self.trial = trial
        self.accs: list[float] = []

    def report(self, value: float, step: int) -> None:
        self.accs.append(float(value))
        if self.trial is not None:
            self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.trial.should_prune() if self.trial is not None else False


@register_evaluator("reference")
class ReferenceEvaluator(ProxyEvaluator):
    """Validation accuracy after the long reference training (``REFERENCE_PROFILE``).

    Args:
        data: dataset spec; default the offline ``mnist5k``.
        profile: a ``ProxyProfile``; default ``REFERENCE_PROFILE``.
        kwargs: ``ProxyEvaluator``'s (``device=``, ``amp=``...) and fields of the profile to
            replace (``ReferenceEvaluator(seed=1)``).
    """

    def __init__(self, data: str = "mnist5k", profile: ProxyProfile | None = None, **kwargs: Any):
        super().__init__(data, profile or REFERENCE_PROFILE, **kwargs)

    def evaluate(self, arch: ArchConfig | str, trial: optuna.Trial | None = None) -> dict[str, float]:
        recorder = _CurveRecorder(trial)
        result = super().evaluate(arch, recorder)  # type: ignore[arg-type]
        result.update({f"{EPOCH_KEY}{k}": acc for k, acc in enumerate(recorder.accs, start=1)})
        return result


def curve(result: dict[str, float]) -> list[float]:
    """The per-epoch validation accuracies of a reference result, epoch 1 first."""
    out: list[float] = []
    while f"{EPOCH_KEY}{len(out) + 1}" in result:
        out.append(result[f"{EPOCH_KEY}{len(out) + 1}"])
    return out
