"""``vitsearch train``: full training of one architecture on timm's training utilities.

Recipe (DeiT's, through timm): AdamW with no weight decay on norms and biases
(``create_optimizer_v2``), cosine schedule stepped per update after a linear warm-up
(``create_scheduler_v2``), mixup / cutmix with label smoothing (``Mixup`` and
``SoftTargetCrossEntropy``; without mixing, ``LabelSmoothingCrossEntropy``), an EMA of the
weights (``ModelEmaV3`` with its decay warm-up, so short runs get a useful average), optional
global grad-norm clipping.

Distillation (RIFormer trains its mixer-free models this way): with a teacher (an
architecture plus its weights) the loss is ``(1 - a) * CE + a * T^2 * KL(teacher || student)``
on temperature-``T`` softmaxes (soft distillation). With ``imitation_weight > 0`` it adds
RIFormer's module imitation, block by block: the mean squared difference of the token
mixer's inputs, of its outputs, and of the token relation matrices of the outputs (cosine
similarities between tokens), equally weighted; student and teacher need the same stages,
depths and widths. Deviation: RIFormer weighs the three terms separately; here one weight scales their sum.

Outputs in ``out``: ``last.pt`` (the full training state after every epoch, written
atomically; ``resume=True`` continues from it), ``model.safetensors`` (the better of the
trained and the EMA weights at the end, training form, self-describing metadata),
``arch.yaml`` and ``report.json`` (accuracy, FLOPs, params and latency of the deployed model
at the training profile). Every epoch reseeds data order, mixup and torch from
``seed + epoch``, so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitsearch.evaluators.data import Augment, DatasetInfo, load_dataset, stratified_subset
from vitsearch.evaluators.training import (
    Engine,
    compiled,
    make_optimizer,
    make_scheduler,
    place_model,
    resolve_device,
    resolve_precision,
    to_device,
)
from vitsearch.evaluators.training.fit import FitState, Hook, fit
from vitsearch.evaluators.training.recipe import Recipe, Rule
from vitsearch.space import ArchConfig, ConfigError, build_model, resolve_arch
from vitsearch.space.files import atomic_write_text
from vitsearch.space.weights import model_from_weights, save_weights

from .distill import Distillation, check_imitation_pairs
from .train_data import Batches, Mixing, evaluate_top1
from .train_weights import load_inherited, resume_checkpoint, save_checkpoint, supernet_start

CHECKPOINT, WEIGHTS, REPORT, ARCH_FILE = "last.pt", "model.safetensors", "report.json", "arch.yaml"


@dataclass(frozen=True)
class TrainRecipe(Recipe):
    """Everything that changes the trained weights; recorded in the checkpoint and the report."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 5e-4  # AdamW peak learning rate
    weight_decay: float = 0.05
    warmup_epochs: int = 5  # linear warm-up from warmup_lr, then cosine to min_lr
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    label_smoothing: float = 0.1
    mixup: float = 0.8  # mixup alpha (DeiT); 0 = off
    cutmix: float = 1.0  # cutmix alpha (DeiT); 0 = off
    ema_decay: float | None = 0.9998  # None = no EMA
    grad_clip: float | None = None  # max global grad norm
    distill_weight: float = 0.5  # a in (1 - a) CE + a T^2 KL, with a teacher
    distill_temperature: float = 1.0
    imitation_weight: float = 0.0  # RIFormer module imitation; 0 = off
    train_subset: int | None = None  # stratified training images; None = all
    val_subset: int | None = None
    augment: bool = True  # folder / CIFAR data: RandomResizedCrop, flip, RandAugment, random erasing
    auto_augment: str | None = "rand-m9-mstd0.5"  # timm's RandAugment spec; None = no RandAugment
    re_prob: float = 0.25  # random erasing probability
    seed: int = 0

    def rules(self) -> list[Rule]:  # errors name the `vitsearch train` flag
        return [
            (self.mixup >= 0 and self.cutmix >= 0, "mixup", "alphas must be 0 or more"),
            (self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay", "must be in (0, 1)"),
            (0 <= self.distill_weight <= 1, "distill_weight", "must be in [0, 1]"),
            (self.distill_temperature > 0, "distill_temperature", "must be positive"),
            (self.imitation_weight >= 0, "imitation_weight", "must be 0 or more"),
            (0 <= self.re_prob <= 1, "re_prob", "must be in [0, 1]"),
        ]

    @property
    def mixing(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def augmentation(self) -> Augment | None:
        """The training-split pipeline of on-disk data (in-memory sets are never augmented)."""
        return Augment(auto_augment=self.auto_augment, re_prob=self.re_prob) if self.augment else None


@dataclass
class TrainJob:
    """One training run: what to train, on what, from where, into which folder."""

    arch: Any  # anything resolve_arch takes
    out: Path
    data: str = "mnist5k"
    img_size: int = 224
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    teacher: Any = None  # architecture of the teacher; default the one in teacher_weights
    teacher_weights: Path | None = None  # enables distillation
    from_supernet: Path | None = None  # start from the supernet's inherited weights (docs/supernet.md)
    resume: bool = False
    threads: int | None = None
    latency_threads: int = 1
    device: str = "auto"  # auto (a GPU when there is one), cpu, cuda, cuda:N
    amp: str = "auto"  # bf16, fp16, off; auto = bf16 on a capable GPU, off on the CPU
    workers: int = 4  # DataLoader processes for folder / CIFAR data (in-memory sets need none)
    compile: bool = False  # torch.compile the model in place (opt-in: compiling costs a minute or more)


def _signature(job: TrainJob, arch: ArchConfig, teacher: ArchConfig | None, precision) -> dict[str, Any]:
    # What must not change when a run is resumed.
    return {
        "digest": arch.digest(),
        "data": job.data,
        "img_size": job.img_size,
        **job.recipe.to_dict(),  # flat, so a refused resume names the setting that changed
        "teacher": teacher.digest() if teacher is not None else None,
        "from_supernet": str(job.from_supernet) if job.from_supernet else None,
        "amp": precision.amp,
    }


# --- the loop --------------------------------------------------------------------------------


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_acc: float
    val_acc_ema: float | None
    lr: float
    seconds: float


StepCallback = Callable[[int, int, int, float], None]  # epoch, step, steps, loss
EpochCallback = Callable[[EpochRecord], None]


def train(job: TrainJob, on_step: StepCallback | None = None, on_epoch: EpochCallback | None = None) -> dict[str, Any]:
    """Train ``job.arch`` and write the outputs into ``job.out``; returns the report.

    Raises:
        ConfigError: bad input (architecture, data, teacher, checkpoint, a changed resume).
        DivergedError: the loss or gradients became non-finite.
    """
    from vitsearch.evaluators.latency import torch_threads

    with torch_threads(job.threads):
        return _train(job, on_step, on_epoch)


def _train(job: TrainJob, on_step: StepCallback | None, on_epoch: EpochCallback | None) -> dict[str, Any]:
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from timm.utils import ModelEmaV3

    r = job.recipe
    inherited, requested = None, job.arch  # the report names the architecture as the user gave it
    if job.from_supernet is not None:
        path_arch, path_size, inherited = supernet_start(job.from_supernet, resolve_arch(job.arch))
        if path_size != job.img_size:
            print(f"note: --from-supernet trains the path at the supernet's {path_size}px (not {job.img_size}px)")
        job = dataclasses.replace(job, arch=path_arch, img_size=path_size)
    device = resolve_device(job.device)
    precision = resolve_precision(job.amp, device)
    arch = resolve_arch(job.arch)
    out = Path(job.out)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a directory")
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists() and not job.resume:
        raise ConfigError("--out", f"{out} already holds a training run ({CHECKPOINT}); pass --resume or another --out")
    started = time.perf_counter()

    split = load_dataset(job.data, img_size=job.img_size, seed=r.seed, augment=r.augmentation())
    info: DatasetInfo = split.info
    train_set = stratified_subset(split.train, r.train_subset, r.seed)
    val_set = stratified_subset(split.val, r.val_subset, r.seed)
    if len(train_set) < r.batch_size:
        raise ConfigError("--batch-size", f"{r.batch_size} is more than the {len(train_set)} training images")
    loader = {"workers": job.workers, "pin_memory": device.type == "cuda"}
    train_batches = Batches(train_set, r.batch_size, drop_last=r.mixing, **loader)  # mixup pairs need an even batch
    if r.mixing and r.batch_size % 2:
        raise ConfigError("--batch-size", f"mixup / cutmix need an even batch size, got {r.batch_size}")
    val_batches = Batches(val_set, 256, **loader)

    torch.manual_seed(r.seed)
    model = build_model(arch, img_size=job.img_size, in_chans=info.in_chans, num_classes=info.num_classes)
    if inherited is not None and not ckpt_path.exists():
        skipped = load_inherited(model, inherited, f"--from-supernet {job.from_supernet}")
        if skipped:
            print(f"note: the supernet's classifier has another class count; {', '.join(skipped)} start fresh")

    teacher, teacher_arch = _teacher(job, info)
    if teacher is not None and r.imitation_weight > 0:
        check_imitation_pairs(arch, teacher_arch)
    elif r.imitation_weight > 0:
        raise ConfigError("--imitation-weight", "module imitation needs a teacher (--teacher-weights)")

    channels_last = place_model(model, device)
    net = compiled(model, job.compile)  # training forwards; `model` stays what is saved and deployed
    if teacher is not None:
        place_model(teacher, device)
    train_batches.to(device, channels_last)
    val_batches.to(device, channels_last)
    optimizer = make_optimizer(model, r.lr, r.weight_decay)
    scheduler = make_scheduler(optimizer, r.epochs, train_batches.steps, r.warmup_epochs, r.warmup_lr, r.min_lr)
    ema = ModelEmaV3(model, decay=r.ema_decay, use_warmup=True) if r.ema_decay is not None else None
    mixup = None
    if r.mixing:
        mixup = Mixup(r.mixup, r.cutmix, label_smoothing=r.label_smoothing, num_classes=info.num_classes)
    if mixup is not None:
        criterion: nn.Module = SoftTargetCrossEntropy()
    else:
        criterion = LabelSmoothingCrossEntropy(r.label_smoothing) if r.label_smoothing > 0 else nn.CrossEntropyLoss()

    signature = _signature(job, arch, teacher_arch, precision)
    meta = {
        "arch": arch.to_dict(),
        "digest": arch.digest(),
        "img_size": job.img_size,
        "in_chans": info.in_chans,
        "num_classes": info.num_classes,
        "mean": list(info.mean),
        "std": list(info.std),
        "form": "train",
        "weights": "model",
        "signature": signature,
    }
    start_epoch, history = 0, []
    if ckpt_path.exists():
        start_epoch, history = resume_checkpoint(ckpt_path, signature, model, ema, optimizer, scheduler)

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / ARCH_FILE, arch.to_yaml())
    engine = Engine(model, optimizer, scheduler, precision, grad_clip=r.grad_clip, ema=ema)
    steps = train_batches.steps
    engine.updates = start_epoch * steps

    def batches(epoch: int):
        order = torch.Generator().manual_seed(r.seed * 1_000_003 + epoch)
        for x, y in train_batches(order):
            yield to_device(x, device, channels_last), y.to(device, non_blocking=True)

    def checkpoint(epoch: int) -> None:
        blob = {
            "model": model.state_dict(),
            "ema": ema.module.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "history": history,
            "meta": meta,
        }
        save_checkpoint(ckpt_path, blob)

    validate = functools.partial(evaluate_top1, batches=val_batches, precision=precision, channels_last=channels_last)
    epochs = _Epochs(r.seed, net, ema, optimizer, validate, checkpoint, history, on_step, on_epoch)
    hooks: list[Hook] = [epochs]
    if mixup is not None:
        hooks.append(Mixing(mixup))
    distillation = None
    if teacher is not None:
        distillation = Distillation(model, teacher, r.distill_weight, r.distill_temperature, r.imitation_weight)
        hooks.append(distillation)
    try:
        fit(engine, net, criterion, batches, FitState(r.epochs, steps, step=start_epoch * steps), hooks)
    finally:
        if distillation is not None:
            distillation.close()
    return _finish(job, requested, arch, info, model.cpu(), ema, history, meta, started, precision)


class _Epochs(Hook):
    """``train``'s epochs: reseeded from ``seed + epoch``, then validated, recorded and checkpointed."""

    def __init__(self, seed, net, ema, optimizer, validate, checkpoint, history, on_step, on_epoch):
        self.seed, self.net, self.ema, self.optimizer = seed, net, ema, optimizer
        self.validate, self.checkpoint, self.history = validate, checkpoint, history
        self.on_step, self.on_epoch = on_step, on_epoch
        self.started = time.perf_counter()

    def epoch_start(self, state: FitState) -> None:
        self.started = time.perf_counter()
        torch.manual_seed(self.seed + state.epoch)
        np.random.seed(self.seed + state.epoch)  # timm's Mixup draws from numpy's global generator

    def step_end(self, state: FitState, loss: float) -> None:
        if self.on_step is not None:
            epoch, step = divmod(state.step - 1, state.steps_per_epoch)
            self.on_step(epoch, step, state.steps_per_epoch, loss)

    def epoch_end(self, state: FitState) -> None:
        record = EpochRecord(
            epoch=state.epoch,
            train_loss=state.epoch_loss,
            val_acc=self.validate(self.net),
            val_acc_ema=self.validate(self.ema.module) if self.ema is not None else None,
            lr=float(self.optimizer.param_groups[0]["lr"]),
            seconds=time.perf_counter() - self.started,
        )
        self.history.append(dataclasses.asdict(record))
        self.checkpoint(state.epoch)
        if self.on_epoch is not None:
            self.on_epoch(record)


def _teacher(job: TrainJob, info: DatasetInfo) -> tuple[nn.Module | None, ArchConfig | None]:
    if job.teacher_weights is None:
        if job.teacher is not None:
            raise ConfigError("--teacher", "a teacher needs its weights (--teacher-weights CKPT)")
        return None, None
    teacher, _ = model_from_weights(
        job.teacher_weights, job.teacher, img_size=job.img_size, in_chans=info.in_chans, num_classes=info.num_classes
    )
    teacher.eval().requires_grad_(False)
    return teacher, teacher.arch


def _finish(job, requested, arch, info, model, ema, history, meta, started, precision) -> dict[str, Any]:
    from vitsearch.evaluators.complexity import count_flops
    from vitsearch.evaluators.latency import measure_latency

    out = Path(job.out)
    last = history[-1]
    use_ema = ema is not None and last["val_acc_ema"] is not None and last["val_acc_ema"] > last["val_acc"]
    final = (ema.module if use_ema else model).cpu()  # latency and FLOPs are the CPU deployment's
    final.eval()
    deployed = final.reparameterize()
    latency = measure_latency(deployed, job.img_size, batch=1, threads=job.latency_threads, repeats=20)
    report = {
        "arch": str(requested) if isinstance(requested, (str, Path)) else "architecture",
        "digest": arch.digest(),
        "data": job.data,
        "img_size": job.img_size,
        "num_classes": info.num_classes,
        "epochs": len(history),
        "val_acc": last["val_acc"],
        "val_acc_ema": last["val_acc_ema"],
        "best_val_acc": max(max(h["val_acc"], h["val_acc_ema"] or 0.0) for h in history),
        "weights": "ema" if use_ema else "model",
        "flops": count_flops(deployed, job.img_size, info.in_chans),
        "params": sum(p.numel() for p in deployed.parameters()),
        "latency_ms": latency.median_ms,
        "latency": latency.to_dict(),
        "teacher": str(job.teacher_weights) if job.teacher_weights else None,
        "recipe": job.recipe.to_dict(),
        **precision.to_dict(),
        "compile": job.compile,
        "history": history,
        "seconds": time.perf_counter() - started,
    }
    save_weights(
        final,
        out / WEIGHTS,
        "train",
        mean=meta["mean"],
        std=meta["std"],
        source="ema" if use_ema else "model",
        val_acc=last["val_acc_ema"] if use_ema else last["val_acc"],
    )
    atomic_write_text(out / REPORT, json.dumps(report, indent=2) + "\n")
    return report
