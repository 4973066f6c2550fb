"""The reference recipe run through ``vitsearch.search.train``, which can distil from a teacher.

``ReferenceEvaluator`` (``evaluators.reference``) has no teacher; ``ReferenceTrainer`` trains what
it trains (``ReferenceEvaluator.proxy_arch``: the adapted stem, the scaled widths) on the same data,
image size, subsets and seed (so the same initial weights) with ``train``'s ``TrainRecipe`` matched
field by field: epochs, batch, learning rate, weight decay, warm-up (from ``lr / 100``, as the
proxy), cosine floor, label smoothing and grad clipping; mixup, cutmix, EMA and augmentation off, as
the reference has none. What differs from the reference evaluator: each epoch's data order is drawn
from another seeded stream (same distribution, other draws), the loss-explosion check is the
non-finite one only, and the score is read from ``train``'s report (the last epoch's validation
accuracy, as the reference's). With one batch per epoch (so the order cannot matter) the two give the
same per-epoch accuracies (``tests/search/test_reference_train.py``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

from vitsearch.evaluators.base import BaseEvaluator

# train.py's soft knowledge distillation; module imitation (RIFormer's) off.
DISTILL = {"distill_weight": 0.5, "distill_temperature": 1.0, "imitation_weight": 0.0}


class ReferenceTrainer(BaseEvaluator):
    """The reference recipe of ``reference`` run through ``vitsearch.search.train`` (which has a teacher).

    Args:
        reference: the ``ReferenceEvaluator`` whose recipe, data, seed and device to match.
        teacher_weights: the teacher's ``model.safetensors``; ``None`` trains without one.
        teacher_key: what identifies the teacher (its row's evaluator key), recorded in ``settings``.
        distill: ``TrainRecipe``'s distillation fields, used with a teacher (default ``DISTILL``).
        keep: a folder to train in and keep (a teacher's); default a temporary one.
    """

    name: ClassVar[str] = "reference-train"

    def __init__(
        self,
        reference: Any,
        teacher_weights: Path | None = None,
        teacher_key: str | None = None,
        distill: dict[str, Any] | None = None,
        keep: Path | None = None,
    ):
        if reference.profile.max_seconds is not None:
            raise ValueError("vitsearch train has no wall-clock cap; the reference recipe must be uncapped")
        self.reference, self.teacher_weights, self.teacher_key = reference, teacher_weights, teacher_key
        self.distill = dict(distill or DISTILL) if teacher_weights is not None else None
        self.keep = keep
        self.profile, self.precision, self.device = reference.profile, reference.precision, reference.device

    def settings(self) -> dict[str, Any]:
        out = {**self.reference.settings(), "trainer": "vitsearch.search.train"}
        if self.distill is not None:
            out.update(teacher=self.teacher_key, distill=self.distill)
        return out

    def recipe(self):
        """The ``TrainRecipe`` of the reference's profile (with the distillation fields, given a teacher)."""
        from vitsearch.search.train import TrainRecipe

        p = self.profile
        return TrainRecipe(
            epochs=p.epochs,
            batch_size=p.batch_size,
            lr=p.lr,
            weight_decay=p.weight_decay,
            warmup_epochs=p.warmup_epochs,
            warmup_lr=p.lr * 0.01,  # the proxy's warm-up start
            min_lr=p.min_lr,
            label_smoothing=p.label_smoothing,
            mixup=0.0,
            cutmix=0.0,
            ema_decay=None,
            grad_clip=p.grad_clip,
            train_subset=p.train_subset,
            val_subset=p.val_subset,
            augment=False,
            auto_augment=None,
            re_prob=0.0,
            seed=p.seed,
            **(self.distill or {"distill_weight": 0.0}),
        )

    def evaluate(self, arch: Any, trial: Any = None) -> dict[str, float]:
        from vitsearch.evaluators.reference import EPOCH_KEY
        from vitsearch.search.train import TrainJob, train

        proxy = self.reference.proxy_arch(arch)  # the architecture the reference trains
        _, info = self.reference.tensors()
        with tempfile.TemporaryDirectory(prefix="reference-train-") as tmp:
            job = TrainJob(
                arch=proxy,
                out=self.keep or Path(tmp),
                data=self.reference.data,
                img_size=self.profile.img_size or info.img_size,
                recipe=self.recipe(),
                teacher_weights=self.teacher_weights,
                resume=True,  # a kept folder (a teacher's) continues a killed run
                threads=self.profile.threads,
                device=str(self.device),
                amp=self.precision.amp,
                workers=0,
            )
            report = train(job)
        history = report["history"]
        return {
            "score": report["val_acc"],
            "val_acc": report["val_acc"],
            "best_val_acc": max(h["val_acc"] for h in history),
            "train_loss": history[-1]["train_loss"],
            "epochs_done": float(len(history)),
            "capped": 0.0,
            "params": float(report["params"]),
            "proxy_patch_size": float(proxy.stem.patch_size),
            "proxy_width0": float(proxy.stages[0].width),
            "seconds": report["seconds"],
            **{f"{EPOCH_KEY}{k}": h["val_acc"] for k, h in enumerate(history, start=1)},
        }
