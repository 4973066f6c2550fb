"""Supernet training: single-path sampling with the sandwich rule and in-place distillation.

Every optimizer step (BigNAS / OFA recipe, Yu et al. 2020, Cai et al. 2020) runs one batch
through the **largest** path, the **smallest** path and ``random_paths`` uniformly sampled
paths of the space, sums their losses and takes one AdamW step. Every path learns from the
labels (label smoothing, as the proxy evaluator); with ``distill`` all but the largest learn
from the largest's detached soft predictions instead (in-place distillation). Distillation
is off by default: in short runs the largest path by FLOPs need not be the best learner
(all-attention paths learn slowly on small data), and distilling from it erased the ranking
signal in the control experiment of docs/results/supernet.md (Kendall tau -0.01 with, 0.56 without). "Largest"
and "smallest" are by FLOPs at the target profile (``SearchSpace.largest`` / ``smallest``);
``max_flops`` restricts the random paths to a budget. Learning rate: linear warm-up, then a
cosine decay to ``min_lr`` per step. Global grad-norm clipping.

Determinism and resume: the data order of epoch ``e`` is a permutation seeded by
``(seed, e)`` and the random paths of step ``s`` come from ``Random(f"{seed}:{s}:{rank}")``,
so a run resumed from a checkpoint takes exactly the steps the uninterrupted run would have
taken (on CPU, bit for bit). Checkpoints are written at every epoch end, every
``save_every`` steps, and when Ctrl-C stops the run (after the step in flight).

Multi-GPU: launched with ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE`` ...), each process
joins the process group from those variables, wraps the supernet in
``DistributedDataParallel`` (``find_unused_parameters=True``: a path leaves most of the
supernet unused) and trains on its share of every batch (``batch[rank::world]``); all
paths of a step run in one forward so DDP sees one graph per step. Rank 0 evaluates,
prints and saves.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vitsearch.evaluators.base import DivergedError
from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.evaluators.data import check_data_spec, load_dataset, materialize, stratified_subset
from vitsearch.evaluators.training import Engine, make_optimizer, make_scheduler, resolve_device, resolve_precision
from vitsearch.evaluators.training.fit import FitState, Hook, fit
from vitsearch.evaluators.training.recipe import Recipe, Rule, positive_or_none
from vitsearch.space import ArchConfig, ConfigError
from vitsearch.space.search_space import SearchSpace

from .checkpoint import META, WEIGHTS, load_optimizer, read_meta, read_tensors, save_checkpoint
from .dims import SupernetProfile
from .distributed import Distributed, StopFlag, any_stop, barrier, init_distributed
from .model import Supernet
from .score import path_accuracy

LEGACY_TRAIN = {"grid_scale": 1.0}  # what a checkpoint saved before a field was added trained with
MAX_TRIES = 200  # random samples per path before a budget is declared too tight
TOP_SAMPLES = 1000  # in-budget random paths the sandwich's top is chosen from (see sandwich_ends)


class SupernetTrainingError(ValueError):
    """Training cannot go on (divergence, an incompatible checkpoint); one line for the user."""


@dataclass(frozen=True)
class SupernetTrainConfig(Recipe):
    """Everything that changes a supernet's weights; recorded in its checkpoint."""

    data: str = "mnist5k"
    epochs: int = 10
    batch_size: int = 32  # global batch (split over DDP processes)
    lr: float = 1e-3  # AdamW peak learning rate (the proxy evaluator's)
    min_lr: float = 1e-5
    warmup_epochs: float = 0.0
    weight_decay: float = 0.05  # not on biases, norms and other 1-D tensors (timm's rule)
    label_smoothing: float = 0.1
    grad_clip: float | None = 1.0
    random_paths: int = 2  # sandwich: largest + smallest + this many random paths per step
    distill: bool = False  # in-place distillation from the largest path (off: see the module docstring)
    train_subset: int | None = None  # training images (stratified, seeded); None = all
    val_subset: int | None = None  # images of the per-epoch check of the largest / smallest path
    bn_batches: int = 4  # calibration batches (of 64) for that check's BatchNorm statistics
    input_size: int | None = None  # side the paths run at; None = the dataset's native size
    target_img_size: int = 224
    grid: int | None = None
    width_mult: float = 0.25  # the reference's width (the default proxy's is 0.125), so paths compare with it
    grid_scale: float = 0.5  # the proxy evaluator's default: half the target token grid (ProxyProfile)
    max_flops: int | None = None  # random paths within this target-profile budget; None = all
    seed: int = 0
    save_every: int = 0  # steps between extra checkpoints; 0 = epoch ends only

    def rules(self) -> list[Rule]:  # errors name the `vitsearch supernet train` flag
        return [
            (self.random_paths >= 0, "random_paths", "must be 0 or more"),
            (self.width_mult > 0, "width_mult", "must be positive"),
            (0 < self.grid_scale <= 1, "grid_scale", "must be in (0, 1]"),
            (positive_or_none(self.train_subset), "train_subset", "must be positive"),
            (positive_or_none(self.val_subset), "val_subset", "must be positive"),
            (self.save_every >= 0, "save_every", "must be 0 or more"),
        ]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_data_spec(self.data)  # before the CLI prints its plan or anything is written

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Sandwich(nn.Module):
    """What DDP wraps: all paths of a step in one forward (``paths`` is set before each call)."""

    def __init__(self, supernet: Supernet):
        super().__init__()
        self.supernet = supernet
        self.paths: list[ArchConfig] = []

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.supernet(x, path, adapted=True) for path in self.paths]


def _compatible(meta: dict[str, Any], supernet: Supernet, config: SupernetTrainConfig) -> list[str]:
    """Fields in which an existing checkpoint differs from this run."""
    changed = []
    if meta.get("space") != supernet.space.to_dict():
        changed.append("space")
    if meta.get("profile") != supernet.profile.to_dict():
        changed.append("profile")
    saved = {**LEGACY_TRAIN, **meta.get("train", {})}
    changed += sorted(k for k, v in config.to_dict().items() if saved.get(k) != v)
    return changed


def sandwich_ends(space: SearchSpace, config: SupernetTrainConfig) -> tuple[ArchConfig, ArchConfig]:
    """The largest and smallest paths of the sandwich (target-profile FLOPs).

    Without a budget: the space's exact extremes. With ``max_flops`` the top must be within the
    budget too; finding the exact most expensive architecture under a cap is a knapsack over
    the layers, so the top is the most expensive of ``TOP_SAMPLES`` seeded random paths within
    budget (the space's largest when that fits).
    """
    target = config.target_img_size
    smallest = space.smallest(target)
    largest = space.largest(target)
    if config.max_flops is None or analytic_flops(largest, target) <= config.max_flops:
        return largest, smallest
    if analytic_flops(smallest, target) > config.max_flops:
        raise ConfigError("--budget", f"below the smallest architecture of {space.name!r}")
    rng = random.Random(f"{config.seed}:top")
    pool = [sample_path(space, rng, config) for _ in range(TOP_SAMPLES)]
    return max(pool, key=lambda a: analytic_flops(a, target)), smallest


def sample_path(space: SearchSpace, rng: random.Random, config: SupernetTrainConfig) -> ArchConfig:
    """A uniformly sampled architecture of ``space`` (within ``max_flops`` when set)."""
    for _ in range(MAX_TRIES):
        arch = space.sample_random(rng)
        if config.max_flops is None or analytic_flops(arch, config.target_img_size) <= config.max_flops:
            return arch
    raise ConfigError("--budget", f"no architecture of {space.name!r} within budget in {MAX_TRIES} random samples")


def train_supernet(
    space: SearchSpace,
    config: SupernetTrainConfig,
    out: str | Path,
    device: str | None = None,
    log: Callable[[str], None] = print,
    progress: Any = None,
    max_steps: int | None = None,
    amp: str = "off",
) -> dict[str, Any]:
    """Train (or resume training) a supernet over ``space``; checkpoints go to ``out``.

    Args:
        space: the search space.
        config: the recipe.
        out: the checkpoint folder; a checkpoint already there with the same space, profile
            and recipe is resumed from its step (a different one is refused).
        device: ``auto`` / ``None`` (the process's GPU when there is one), ``cpu``, ``cuda``, ``cuda:N``.
        log: where rank 0's text lines go.
        progress: an object with ``start(total, done)``, ``advance(step, loss)`` and ``stop()``
            (a progress bar); ``None`` for epoch lines only.
        max_steps: stop (with a checkpoint) after this many steps in total, for tests and
            staged runs; the schedule still spans all epochs.
        amp: autocast of the forward (``off`` default: bit-exact resume is a float32 promise).

    Returns:
        The checkpoint's JSON record.
    """
    out = Path(out)
    dist = init_distributed()
    if device in (None, "auto") and dist.world > 1 and torch.cuda.is_available():
        device = f"cuda:{dist.local_rank}"
    device = str(resolve_device(device))
    precision = resolve_precision(amp, torch.device(device))
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    split = load_dataset(config.data, img_size=config.input_size, seed=config.seed)
    info = split.info
    tx, ty = materialize(stratified_subset(split.train, config.train_subset, config.seed))
    vx, vy = materialize(stratified_subset(split.val, config.val_subset, config.seed))
    calib = tx[torch.randperm(len(tx), generator=torch.Generator().manual_seed(config.seed))[: 64 * config.bn_batches]]
    tx, ty, vx, vy, calib = (t.to(device) for t in (tx, ty, vx, vy, calib))
    profile = SupernetProfile(
        img_size=info.img_size,
        in_chans=info.in_chans,
        num_classes=info.num_classes,
        target_img_size=config.target_img_size,
        grid=config.grid,
        width_mult=config.width_mult,
        grid_scale=config.grid_scale,
    )
    supernet = Supernet(space, profile, seed=config.seed).to(device)
    optimizer = make_optimizer(supernet, config.lr, config.weight_decay)
    steps_per_epoch = math.ceil(len(tx) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = make_scheduler(
        optimizer, config.epochs, steps_per_epoch, config.warmup_epochs, config.lr * 0.01, config.min_lr
    )
    meta: dict[str, Any] = {"step": 0, "total_steps": total, "steps_per_epoch": steps_per_epoch, "history": []}

    if (out / META).exists():
        previous = read_meta(out)
        changed = _compatible(previous, supernet, config)
        if changed:
            raise SupernetTrainingError(
                f"{out}: holds a supernet trained with different {', '.join(changed)}; use another --out"
            )
        supernet.load_state_dict(read_tensors(out / WEIGHTS, previous["step"], device))
        load_optimizer(out, optimizer, supernet)
        meta.update({k: previous[k] for k in ("step", "history", "epoch_loss", "seconds") if k in previous})
        if dist.main:
            log(f"resuming {out} at step {meta['step']}/{total}")
    start_step = meta["step"]
    scheduler.step_update(num_updates=start_step)  # the learning rate of the next step, resumed or not
    if start_step >= total:
        if dist.main:
            log(f"{out}: already trained ({total} steps); nothing to do")
        return read_meta(out)

    ends = sandwich_ends(space, config)
    meta["sandwich"] = {
        name: {"arch": arch.to_dict(), "flops": analytic_flops(arch, config.target_img_size)}
        for name, arch in zip(("largest", "smallest"), ends, strict=True)
    }
    largest, smallest = (profile.adapt(arch) for arch in ends)
    sandwich = _Sandwich(supernet)
    model: nn.Module = sandwich
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.device(device).index] if device.startswith("cuda") else None
        model = DistributedDataParallel(sandwich, device_ids=ids, find_unused_parameters=True)
    # The sandwich's paths share one clipped global norm over the whole supernet.
    engine = Engine(supernet, optimizer, scheduler, precision, grad_clip=config.grad_clip, updates=start_step)

    def batches(epoch: int):  # this process's share of every batch of the epoch's seeded order
        order = torch.randperm(len(tx), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
        for within in range(steps_per_epoch):
            idx = order[within * config.batch_size : (within + 1) * config.batch_size][dist.rank :: dist.world]
            yield tx[idx.to(tx.device)], ty[idx.to(ty.device)]

    epoch_loss = meta.get("epoch_loss", {"sum": 0.0, "n": 0})
    state = FitState(
        config.epochs, steps_per_epoch, step=start_step, loss_sum=epoch_loss["sum"], loss_n=epoch_loss["n"]
    )
    rule = SandwichRule(sandwich, space, config, largest, smallest, profile.adapt, dist.rank)

    def record(step: int) -> dict[str, Any]:
        return _epoch_record(supernet, largest, smallest, vx, vy, calib, step, steps_per_epoch, dist)

    checkpoints = _Checkpoints(
        out, supernet, optimizer, meta, config, info.spec, dist, device, max_steps, record, log, progress
    )
    if progress is not None and dist.main:
        progress.start(total, start_step)
    try:
        with checkpoints.stop:
            fit(engine, model, sandwich_criterion(config), batches, state, [rule, checkpoints])
    except DivergedError as err:
        raise SupernetTrainingError(
            f"supernet training diverged: {err.reason}; lower --lr or raise --grad-clip"
        ) from None
    finally:
        if progress is not None and dist.main:
            progress.stop()
    result = read_meta(out) if dist.main else meta
    if dist.owned:
        import torch.distributed as tdist

        tdist.destroy_process_group()
    return result


class SandwichRule(Hook):
    """The sandwich rule: every step trains the largest, the smallest and ``random_paths`` random paths.

    The random paths of step ``s`` come from ``Random(f"{seed}:{s}:{rank}")``, so a resumed
    run samples what the uninterrupted one would have.
    """

    def __init__(self, sandwich, space, config, largest, smallest, adapt, rank: int):
        self.sandwich, self.space, self.config = sandwich, space, config
        self.ends, self.adapt, self.rank = [largest, smallest], adapt, rank

    def batch(self, state: FitState, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rng = random.Random(f"{self.config.seed}:{state.step}:{self.rank}")
        randoms = [self.adapt(sample_path(self.space, rng, self.config)) for _ in range(self.config.random_paths)]
        self.sandwich.paths = self.ends + randoms
        return x, target


def sandwich_criterion(config: SupernetTrainConfig) -> Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]:
    """The summed loss of a sandwich step's logits (largest first): labels, or the largest's soft predictions."""
    criterion = _smoothed_ce(config.label_smoothing)

    def loss(logits: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        teacher = logits[0]
        losses = [criterion(teacher, y)]
        soft = F.softmax(teacher.detach().float(), dim=-1) if config.distill else None
        for student in logits[1:]:
            if soft is not None:
                losses.append(-(soft * F.log_softmax(student.float(), dim=-1)).sum(-1).mean())
            else:
                losses.append(criterion(student, y))
        return torch.stack(losses).sum()

    return loss


@dataclass
class _Checkpoints(Hook):
    """Progress, the epoch check of the largest and smallest paths, checkpoints, Ctrl-C and ``max_steps``.

    A checkpoint is written at every epoch end, every ``save_every`` steps, and when the run
    stops early (Ctrl-C after the step in flight, or ``max_steps``) if that step has none.
    """

    out: Path
    supernet: Supernet
    optimizer: Any
    meta: dict[str, Any]  # the checkpoint's record, updated in place
    config: SupernetTrainConfig
    data: dict[str, Any]  # the dataset's spec, recorded
    dist: Distributed
    device: str
    max_steps: int | None
    record: Callable[[int], dict[str, Any]]  # the epoch check at a step
    log: Callable[[str], None]
    progress: Any
    stop: StopFlag = dataclasses.field(default_factory=StopFlag)
    interrupted: bool = False
    saved: bool = False

    def __post_init__(self) -> None:
        self.total = self.meta["total_steps"]
        self.elapsed_before, self.started = float(self.meta.get("seconds", 0.0)), time.monotonic()

    def step_end(self, state: FitState, loss: float) -> None:
        if self.progress is not None and self.dist.main:
            self.progress.advance(state.step, loss)
        self.saved = False
        save_every = self.config.save_every
        if state.within and save_every and state.step % save_every == 0:  # epoch ends save in epoch_end
            self.checkpoint(state)
        if any_stop(self.stop.requested, self.dist, self.device):
            self.interrupted = state.stop = True
        if self.max_steps is not None and self.max_steps <= state.step < self.total:
            state.stop = True

    def epoch_end(self, state: FitState) -> None:
        record = self.record(state.step)
        record["loss"] = state.epoch_loss
        record["seconds"] = self.seconds()
        self.meta["history"].append(record)
        if self.dist.main:
            self.log(
                f"epoch {record['epoch']:g}/{self.config.epochs}: loss {record['loss']:.4f}, val acc "
                f"largest {record['val_acc_largest']:.4f} smallest {record['val_acc_smallest']:.4f}, "
                f"{record['seconds']:.0f}s"
            )
        self.checkpoint(state, finished=state.step == self.total)

    def stopped(self, state: FitState) -> None:
        if not self.saved:
            self.checkpoint(state)
        if self.interrupted:
            if self.dist.main:
                self.log(
                    f"stopped at step {state.step}/{self.total}; checkpoint in {self.out} "
                    "(run the same command to resume)"
                )
            raise KeyboardInterrupt

    def seconds(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def checkpoint(self, state: FitState, finished: bool = False) -> None:
        mid_epoch = state.within > 0  # at an epoch end the next epoch's running loss starts empty
        self.meta.update(
            step=state.step,
            epoch=state.step / state.steps_per_epoch,
            finished=finished,
            epoch_loss={"sum": state.loss_sum, "n": state.loss_n} if mid_epoch else {"sum": 0.0, "n": 0},
            seconds=self.seconds(),
            train=self.config.to_dict(),
            data=self.data,
            world_size=self.dist.world,
        )
        if self.dist.main:
            save_checkpoint(self.out, self.supernet, self.meta, self.optimizer)
        barrier(self.dist)
        self.saved = True


def _smoothed_ce(smoothing: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=smoothing)

    return loss


def _epoch_record(
    supernet: Supernet,
    largest: ArchConfig,
    smallest: ArchConfig,
    vx: torch.Tensor,
    vy: torch.Tensor,
    calib: torch.Tensor,
    step: int,
    steps_per_epoch: int,
    dist: Distributed,
) -> dict[str, Any]:
    """Validation accuracy of the largest and smallest paths (rank 0 only; NaN on the others)."""
    record: dict[str, Any] = {"epoch": step / steps_per_epoch, "step": step}
    for name, path in (("largest", largest), ("smallest", smallest)):
        record[f"val_acc_{name}"] = path_accuracy(supernet, path, vx, vy, calib) if dist.main else math.nan
    return record
