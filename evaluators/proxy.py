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

if TYPE_CHECKING:
    import optuna

    from vitsearch.space import ArchConfig

DIVERGE_FACTOR = 20.0  # a batch loss above this x max(first loss, ln classes) counts as divergence
EVAL_BATCH = 256


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = EVAL_BATCH) -> float:
    """Top-1 accuracy of ``model`` in eval mode (restores the previous mode)."""
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for i in range(0, len(images), batch_size):
            logits = model(images[i : i + batch_size])
            if not torch.isfinite(logits).all():
                raise DivergedError("non-finite logits on the validation set")
            correct += int((logits.argmax(1) == labels[i : i + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / len(images)


@register_evaluator("proxy")
class ProxyEvaluator(BaseEvaluator):
    """Validation accuracy after a short training run at the proxy profile.

    Args:
        data: dataset spec (``load_dataset``); default the offline ``mnist5k``.
        profile: a ``ProxyProfile``; keyword ``overrides`` replace its fields
            (``ProxyEvaluator(epochs=2)``).
    """

    def __init__(self, data: str = "mnist5k", profile: ProxyProfile | None = None, **overrides: Any):
        check_data_spec(data)  # the data load waits for the first architecture; a bad path should not
        self.data = data
        self.profile = (profile or ProxyProfile()).replace(**overrides) if overrides else (profile or ProxyProfile())
        self._tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._info: DatasetInfo | None = None

    def settings(self) -> dict[str, Any]:
        out = {"data": self.data, **self.profile.to_dict()}
        out.pop("threads")  # changes speed, not the recipe
        return out

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
        return adapt_arch(resolve_arch(arch), info.img_size, p.target_img_size, p.grid, p.width_mult)

    def evaluate(self, arch: ArchConfig | str, trial: optuna.Trial | None = None) -> dict[str, float]:
        with torch_threads(self.profile.threads), torch.random.fork_rng(devices=[]):
            return self._train(arch, trial)

    def _train(self, arch: ArchConfig | str, trial: optuna.Trial | None) -> dict[str, float]:
        import optuna
        from timm.loss import LabelSmoothingCrossEntropy
        from timm.optim import create_optimizer_v2
        from timm.scheduler import create_scheduler_v2

        from vitsearch.space import build_model

        p = self.profile
        start = time.perf_counter()
        (tx, ty, vx, vy), info = self.tensors()
        proxy = self.proxy_arch(arch)
        torch.manual_seed(p.seed)
        model = build_model(proxy, img_size=info.img_size, in_chans=info.in_chans, num_classes=info.num_classes)
        model.train()
        steps = math.ceil(len(tx) / p.batch_size)
        optimizer = create_optimizer_v2(model, opt="adamw", lr=p.lr, weight_decay=p.weight_decay)
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched="cosine",
            num_epochs=p.epochs,
            warmup_epochs=p.warmup_epochs,
            warmup_lr=p.lr * 0.01,
            min_lr=p.min_lr,
            step_on_epochs=False,
            updates_per_epoch=steps,
        )
        criterion = LabelSmoothingCrossEntropy(p.label_smoothing) if p.label_smoothing > 0 else nn.CrossEntropyLoss()
        order = torch.Generator().manual_seed(p.seed)
        limit = math.log(max(info.num_classes, 2))
        result: dict[str, float] = {
            "params": float(sum(q.numel() for q in model.parameters())),
            "proxy_patch_size": float(proxy.stem.patch_size),
            "proxy_width0": float(proxy.stages[0].width),
        }
        accs: list[float] = []
        capped, epochs_done, updates, loss_sum, loss_n = False, 0.0, 0, 0.0, 0
        for epoch in range(p.epochs):
            perm = torch.randperm(len(tx), generator=order)
            loss_sum, loss_n = 0.0, 0
            for step in range(steps):
                idx = perm[step * p.batch_size : (step + 1) * p.batch_size]
                loss = criterion(model(tx[idx]), ty[idx])
                value = float(loss.detach())
                where = f"epoch {epoch + 1} step {step + 1}"
                if not math.isfinite(value):
                    raise DivergedError(
                        f"non-finite training loss ({value}) at {where}", {**result, "epochs_done": epoch}
                    )
                if updates == 0:
                    limit = max(limit, value)
                if value > DIVERGE_FACTOR * limit:
                    raise DivergedError(
                        f"training loss exploded to {value:.3g} (first {limit:.3g}) at {where}",
                        {**result, "epochs_done": epoch},
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if p.grad_clip is not None:
                    norm = float(nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip))
                    if not math.isfinite(norm):
                        raise DivergedError(f"non-finite gradient norm at {where}", {**result, "epochs_done": epoch})
                optimizer.step()
                updates += 1
                scheduler.step_update(num_updates=updates)
                loss_sum, loss_n = loss_sum + value, loss_n + 1
                if p.max_seconds is not None and time.perf_counter() - start > p.max_seconds:
                    capped = True
                    epochs_done = epoch + (step + 1) / steps
                    break
            if capped:
                accs.append(self._val_accuracy(model, vx, vy, result, epoch))
                break
            scheduler.step(epoch + 1)
            epochs_done = float(epoch + 1)
            acc = self._val_accuracy(model, vx, vy, result, epoch)
            accs.append(acc)
            if trial is not None:
                trial.report(acc, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} at val acc {acc:.4f}")
        result.update(
            score=accs[-1],
            val_acc=accs[-1],
            best_val_acc=max(accs),
            train_loss=loss_sum / max(loss_n, 1),
            epochs_done=epochs_done,
            capped=float(capped),
            seconds=time.perf_counter() - start,
        )
        return result

    def _val_accuracy(
        self, model: nn.Module, vx: torch.Tensor, vy: torch.Tensor, result: dict[str, float], epoch: int
    ) -> float:
        try:
            return accuracy(model, vx, vy)
        except DivergedError as err:
            raise DivergedError(f"{err.reason} after epoch {epoch + 1}", {**result, "epochs_done": epoch}) from None
