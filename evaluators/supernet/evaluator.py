"""The ``supernet`` evaluator: an architecture's accuracy as a path of a trained supernet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vitsearch.space import ConfigError

from ..base import BaseEvaluator, EvaluationFailed, register_evaluator
from ..data import check_data_spec, load_dataset, materialize, stratified_subset
from ..latency import torch_threads
from ..training import resolve_device
from .checkpoint import load_supernet
from .dims import PathError
from .score import path_accuracy

if TYPE_CHECKING:
    import optuna

    from vitsearch.space import ArchConfig


@register_evaluator("supernet")
class SupernetEvaluator(BaseEvaluator):
    """Validation accuracy of the architecture as a path of a trained supernet (inherited weights, no training).

    The path is the architecture as the supernet's profile builds it (the proxy evaluator's
    stem and width rewrite, recorded in the checkpoint), its BatchNorm statistics are
    re-estimated on ``bn_batches`` training batches of 64 (``score.py``), and the result is
    cached by architecture digest for the life of the evaluator.

    Args:
        supernet: the checkpoint folder of ``vitsearch supernet train`` (``--supernet CKPT``).
        data: dataset spec; default the one the supernet was trained on. It must have the
            supernet's classes and channels; images are resized to its input size.
        val_subset: validation images (stratified, ``seed``); None = all (as the proxy evaluator).
        bn_batches: BatchNorm calibration batches (0: use the supernet's shared statistics).
        seed: choice of the validation subset and of the calibration images.
        device: ``cpu``, ``cuda``...; default a GPU when there is one.
        threads: torch intra-op threads while scoring; None = leave as is.
    """

    def __init__(
        self,
        supernet: str | None = None,
        data: str | None = None,
        val_subset: int | None = None,
        bn_batches: int = 4,
        seed: int = 0,
        device: str | None = None,
        threads: int | None = None,
    ):
        if supernet is None:
            raise ValueError("evaluator 'supernet' needs a checkpoint: --supernet CKPT (or --set supernet=CKPT)")
        if bn_batches < 0 or (val_subset is not None and val_subset < 1):
            raise ValueError("evaluator 'supernet': bn_batches must be >= 0 and val_subset positive")
        if data is not None:
            check_data_spec(data)
        self.device = str(resolve_device(device))
        self.path = Path(str(supernet)).expanduser()
        self.supernet = load_supernet(self.path, device=self.device)
        self.meta = self.supernet.meta
        self.data = data or self.meta.get("data") or self.meta["train"]["data"]
        self.val_subset, self.bn_batches, self.seed, self.threads = val_subset, bn_batches, seed, threads
        self._tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._cache: dict[str, dict[str, float]] = {}

    def settings(self) -> dict[str, Any]:
        return {
            "checkpoint_sha1": self.meta["weights_sha1"],
            "checkpoint_step": self.meta["step"],
            "data": self.data,
            "val_subset": self.val_subset,
            "bn_batches": self.bn_batches,
            "seed": self.seed,
            "profile": self.supernet.profile.to_dict(),
        }

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(val_x, val_y, calibration_x)`` at the supernet's input size, on its device (loaded once)."""
        if self._tensors is None:
            profile = self.supernet.profile
            split = load_dataset(self.data, img_size=profile.img_size, seed=self.seed)
            info = split.info
            if (info.num_classes, info.in_chans) != (profile.num_classes, profile.in_chans):
                raise ConfigError(
                    "--data",
                    f"{self.data!r} has {info.num_classes} classes and {info.in_chans} channels; the supernet "
                    f"was trained for {profile.num_classes} and {profile.in_chans}",
                )
            vx, vy = materialize(stratified_subset(split.val, self.val_subset, self.seed))
            if self.bn_batches:
                calib, _ = materialize(stratified_subset(split.train, 64 * self.bn_batches, self.seed))
            else:
                calib = vx[:0]
            self._tensors = (vx.to(self.device), vy.to(self.device), calib.to(self.device))
        return self._tensors

    def evaluate(self, arch: ArchConfig, trial: optuna.Trial | None = None) -> dict[str, float]:
        key = arch.digest()
        if key in self._cache:
            return dict(self._cache[key])
        start = time.perf_counter()
        with torch_threads(self.threads):
            vx, vy, calib = self.tensors()
            try:
                path = self.supernet.adapt(arch)
                acc = path_accuracy(self.supernet, path, vx, vy, calib if self.bn_batches else None)
            except (PathError, ConfigError) as err:
                raise EvaluationFailed(f"not a path of the supernet: {err}") from None
        if acc != acc:  # NaN: a non-finite logit
            raise EvaluationFailed("non-finite logits on the validation set")
        result = {
            "score": acc,
            "val_acc": acc,
            "proxy_patch_size": float(path.stem.patch_size),
            "proxy_width0": float(path.stages[0].width),
            "seconds": time.perf_counter() - start,
        }
        self._cache[key] = result
        return dict(result)
