"""The ``proxy`` evaluator: short, seeded training of the adapted architecture.

Recipe (timm's factories, DeiT-style, cut down): AdamW (``create_optimizer_v2``, no weight
decay on biases and norms), cosine schedule stepped per update with optional linear warm-up
(``create_scheduler_v2``), label smoothing (``LabelSmoothingCrossEntropy``), global
grad-norm clipping, no augmentation. The data are decoded once into tensors
(``train_subset`` stratified images), shuffled each epoch by a seeded generator, so the
same profile and seed give the same score on the same machine and thread count.

After every epoch the validation accuracy is reported to the Optuna trial
(``trial.report(acc, epoch)``) and ``optuna.TrialPruned`` is raised when the pruner says so.
``max_seconds`` caps the wall clock: training stops mid-epoch, the accuracy reached is
measured and returned with ``capped = 1`` (the partial epoch is not reported to the pruner,
whose steps must mean the same for every trial). A non-finite or exploding loss raises
``DivergedError`` (an ``EvaluationFailed``) with the reason, for the driver to mark the
trial failed.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .base import BaseEvaluator, DivergedError, register_evaluator
from .data import DatasetInfo, check_data_spec, load_dataset, materialize, stratified_subset
from .latency import torch_threads
from .profile import ProxyProfile, adapt_arch
from .training import (
    Engine,
    compiled,
    make_optimizer,
    make_scheduler,
    place_model,
    resolve_device,
    resolve_precision,
    to_device,
    top1,
)
from .training.engine import tensor_batches
from .training.fit import FitState, Hook, fit

if TYPE_CHECKING:
    import optuna

    from vitsearch.space import ArchConfig

DIVERGE_FACTOR = 20.0  # a batch loss above this x max(first loss, ln classes) counts as divergence


@register_evaluator("proxy")
class ProxyEvaluator(BaseEvaluator):
    """Validation accuracy after a short training run at the proxy profile.

    Args:
        data: dataset spec (``load_dataset``); default the offline ``mnist5k``.
        device: ``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: ``auto`` (bf16 on a capable GPU, off on the CPU), ``bf16``, ``fp16`` or ``off``.
        compile: ``torch.compile`` each trial's model (pays off on a GPU for long profiles only:
            every architecture compiles afresh).
        profile: a ``ProxyProfile``; keyword ``overrides`` replace its fields
            (``ProxyEvaluator(epochs=2)``).
    """

    def __init__(
        self,
        data: str = "mnist5k",
        profile: ProxyProfile | None = None,
        device: str = "auto",
        amp: str = "auto",
        compile: bool = False,
        **overrides: Any,
    ):
        check_data_spec(data)  # the data load waits for the first architecture; a bad path should not
        self.data = data
        self.profile = (profile or ProxyProfile()).replace(**overrides) if overrides else (profile or ProxyProfile())
        self._tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._info: DatasetInfo | None = None
        self.device = resolve_device(device)
        self.precision = resolve_precision(amp, self.device)
        self.compile = bool(compile)

    def settings(self) -> dict[str, Any]:
        out = {"data": self.data, **self.profile.to_dict()}
        out.pop("threads")  # changes speed, not the recipe
        # CPU float32 keeps the settings (and cache keys) it always had; a GPU or autocast is recorded.
        if self.device.type != "cpu":
            out["device"] = str(self.device)
        if self.precision.amp != "off":
            out["amp"] = self.precision.amp
        if self.compile:
            out["compile"] = True
        return out

    def at_rung(self, rung: int, growth: int) -> ProxyEvaluator:
        """``growth**rung`` times the training images (and the wall-clock cap): the steps grow, the recipe stays.

        More images rather than more epochs, so a higher rung also sees more of the data (mnist5k at the
        default 500 images and growth 2: 500, 1,000, 2,000). Where the dataset has
        fewer images than that, the subset is all of it (``stratified_subset``).
        """
        p, factor = self.profile, growth**rung
        changes: dict[str, Any] = {"max_seconds": None if p.max_seconds is None else p.max_seconds * factor}
        if p.train_subset is not None:
            changes["train_subset"] = p.train_subset * factor
        else:
            changes["epochs"] = p.epochs * factor
        return ProxyEvaluator(self.data, p.replace(**changes), str(self.device), self.precision.amp, self.compile)

    def tensors(self) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], DatasetInfo]:
        """``(train_x, train_y, val_x, val_y)`` at the proxy resolution, decoded once."""
        if self._tensors is None or self._info is None:
            p = self.profile
            split = load_dataset(self.data, img_size=p.img_size, seed=p.seed)
            tx, ty = materialize(stratified_subset(split.train, p.train_subset, p.seed))
            vx, vy = materialize(stratified_subset(split.val, p.val_subset, p.seed))
            self._tensors, self._info = (tx, ty, vx, vy), split.info
        return self._tensors, self._info

    def proxy_arch(self, arch: ArchConfig | str) -> ArchConfig:
        """The architecture actually trained: stem adapted to the proxy resolution, widths scaled."""
        from vitsearch.space import resolve_arch

        _, info = self.tensors()
        p = self.profile
        return adapt_arch(resolve_arch(arch), info.img_size, p.target_img_size, p.grid, p.width_mult, p.grid_scale)

    def evaluate(self, arch: ArchConfig | str, trial: optuna.Trial | None = None) -> dict[str, float]:
        with torch_threads(self.profile.threads), torch.random.fork_rng(devices=[]):
            return self._train(arch, trial)

    def _train(self, arch: ArchConfig | str, trial: optuna.Trial | None) -> dict[str, float]:
        from timm.loss import LabelSmoothingCrossEntropy

        from vitsearch.space import build_model

        p = self.profile
        start = time.perf_counter()
        (tx, ty, vx, vy), info = self.tensors()
        precision = self.precision
        proxy = self.proxy_arch(arch)
        torch.manual_seed(p.seed)
        model = build_model(proxy, img_size=info.img_size, in_chans=info.in_chans, num_classes=info.num_classes)
        channels_last = place_model(model.train(), precision.device)
        net = compiled(model, self.compile)
        tx, vx = (to_device(t, precision.device, channels_last) for t in (tx, vx))  # small sets live on the device
        ty, vy = ty.to(precision.device), vy.to(precision.device)
        steps = math.ceil(len(tx) / p.batch_size)
        optimizer = make_optimizer(model, p.lr, p.weight_decay)
        scheduler = make_scheduler(optimizer, p.epochs, steps, p.warmup_epochs, p.lr * 0.01, p.min_lr)
        engine = Engine(
            model,
            optimizer,
            scheduler,
            precision,
            grad_clip=p.grad_clip,
            diverge_factor=DIVERGE_FACTOR,
            diverge_floor=math.log(max(info.num_classes, 2)),
        )
        criterion = LabelSmoothingCrossEntropy(p.label_smoothing) if p.label_smoothing > 0 else nn.CrossEntropyLoss()
        order = torch.Generator().manual_seed(p.seed)

        def batches(epoch: int):  # one seeded generator shuffles every epoch in turn
            perm = torch.randperm(len(tx), generator=order).to(precision.device)
            for step in range(steps):
                idx = perm[step * p.batch_size : (step + 1) * p.batch_size]
                yield tx[idx], ty[idx]

        result: dict[str, float] = {
            "params": float(sum(q.numel() for q in model.parameters())),
            "proxy_patch_size": float(proxy.stem.patch_size),
            "proxy_width0": float(proxy.stages[0].width),
        }
        validation = _Validation(net, vx, vy, precision, result, trial)
        cap = _WallClockCap(p.max_seconds, start)
        state = FitState(epochs=p.epochs, steps_per_epoch=steps)
        try:
            fit(engine, net, criterion, batches, state, [cap, validation])
        except DivergedError as err:
            if err.partial:  # validation's, already with its epochs
                raise
            raise DivergedError(err.reason, {**result, "epochs_done": state.epoch}) from None
        accs = validation.accs
        result.update(
            steps=float(p.epochs * steps),
            score=accs[-1],
            val_acc=accs[-1],
            best_val_acc=max(accs),
            train_loss=state.epoch_loss,
            epochs_done=state.epochs_done,
            capped=float(cap.capped),
            seconds=time.perf_counter() - start,
        )
        return result


class _WallClockCap(Hook):
    """Stops the run once ``max_seconds`` have passed since ``start`` (``None``: never)."""

    def __init__(self, max_seconds: float | None, start: float):
        self.max_seconds, self.start, self.capped = max_seconds, start, False

    def step_end(self, state: FitState, loss: float) -> None:
        if self.max_seconds is not None and time.perf_counter() - self.start > self.max_seconds:
            self.capped = state.stop = True


class _Validation(Hook):
    """Validation accuracy after every epoch, reported to the trial for pruning; and once when capped.

    A capped partial epoch is measured but not reported: a pruner's steps must mean the same
    for every trial.
    """

    def __init__(self, net, vx, vy, precision, result: dict[str, float], trial: optuna.Trial | None):
        self.net, self.vx, self.vy, self.precision = net, vx, vy, precision
        self.result, self.trial = result, trial
        self.accs: list[float] = []

    def epoch_end(self, state: FitState) -> None:
        if state.stop:
            return  # capped on this epoch's last step: ``stopped`` measures it, unreported
        import optuna

        epoch = state.epoch - 1
        acc = self._accuracy(epoch)
        if self.trial is not None:
            self.trial.report(acc, epoch)
            # after the last epoch there is nothing left to save: the trial completes with its score
            if state.epoch < state.epochs and self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} at val acc {acc:.4f}")

    def stopped(self, state: FitState) -> None:
        self._accuracy((state.step - 1) // state.steps_per_epoch)

    def _accuracy(self, epoch: int) -> float:
        try:
            acc = top1(self.net, tensor_batches(self.vx, self.vy), self.precision, check_finite=True)
        except DivergedError as err:
            raise DivergedError(
                f"{err.reason} after epoch {epoch + 1}", {**self.result, "epochs_done": epoch}
            ) from None
        self.accs.append(acc)
        return acc
