"""The proxy profile: how one ArchConfig is trained cheaply, and the arch rewrite it implies.

An architecture is described at the *target* profile (224 px, docs/design.md "Contracts"). At the proxy
resolution (28 px for mnist5k) its stem would leave almost no tokens (28 // 16 = 1), so
``adapt_arch`` rewrites two things, and nothing else:

- **Stem stride** (``stem.patch_size``): chosen so the stem's token grid at the proxy
  resolution is the grid the arch has at the target resolution times ``grid_scale``,
  ``target_img_size // patch_size * grid_scale`` (DeiT at the default 0.5: 224 / 16 = 14x14 ->
  7x7 tokens, patch 4 at 28 px, the usual ViT-on-MNIST tokens; at ``grid_scale=1`` patch 2 and
  14x14 tokens, 3.7x the training time of a median architecture for 2x2-pixel tokens).
  The stride is ``max(1, round(img_size / grid))``; when the resolution is too low for the
  grid (PoolFormer's 56x56 x 0.5 = 28x28 at 28 px), the stride bottoms out at 1 and the grid is
  the image itself (28x28; the later stages follow the downsamplers: 14, 7, 4). An overlapping
  stem kernel (PoolFormer's 7 over stride 4) is scaled with the stride and kept odd-overlap
  so the grid stays ``img_size // stride``. ``grid=`` asks for another grid explicitly.
- **Widths** (``width_mult``): every stage width times ``width_mult``, rounded to a multiple
  that keeps the arch valid: attention-family mixers keep their head count (pinned from the
  target width, so ``heads: None`` does not silently change), MLP groups keep dividing the
  width and hidden width; stages joined by a width-keeping downsampler get one width. The
  result is re-validated, stepping the width up one multiple until it passes.

Depths, mixers, MLP ratios, token pooling and sharing are untouched, so the proxy ranks the
same design the target would build.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vitsearch.space import ArchConfig, ConfigError, get_downsample, get_mixer, validate
from vitsearch.space.stems import stem_grid_size

from .training.recipe import Recipe, Rule, positive_or_none


@dataclass(frozen=True)
class ProxyProfile(Recipe):
    """Settings of cheap proxy training; recorded with every result (``to_dict``).

    The defaults were chosen by the fidelity study (``studies/fidelity``,
    docs/results/fidelity.md): 500 of the reference's 4,500 images x 2 epochs in batches of 8 (128 optimizer
    steps), at its 7x7-token grid and x0.125 width. Of the profiles costing at most 5% of the
    reference's seconds it ranks best (Kendall tau 0.58 against the reference's ranking, beating
    ``params`` and ``flops`` at 95%), at 4% of the reference's seconds. The steps decide: every
    64-step profile (500 x 4 in batches of 32, the previous default; 1,000 x 2; 2,000 x 1) ranks at
    tau 0.19-0.23, every 128-step one at 0.58-0.66. The default before that (14x14 tokens, 1,000
    images x 4 epochs) ranked at 0.64 but cost 36% of the reference.
    """

    img_size: int | None = None  # proxy input side; None = the dataset's native size (mnist5k: 28)
    grid: int | None = None  # stem token grid side; None = the arch's grid at target_img_size x grid_scale
    grid_scale: float = 0.5  # stem grid side x this when grid is None (0.5: DeiT 14x14 -> 7x7 tokens)
    target_img_size: int = 224  # resolution the arch is described at (docs/design.md: the target profile)
    width_mult: float = 0.125  # stage widths x this (heads and groups kept valid)
    epochs: int = 2
    train_subset: int | None = 500  # training images (stratified, seeded); None = all
    val_subset: int | None = None  # validation images; None = all (mnist5k: 500)
    batch_size: int = 8
    lr: float = 1e-3  # AdamW peak learning rate (timm create_optimizer_v2)
    weight_decay: float = 0.05
    warmup_epochs: int = 0  # linear warm-up before the cosine decay
    min_lr: float = 1e-5  # cosine floor
    label_smoothing: float = 0.1  # timm LabelSmoothingCrossEntropy
    grad_clip: float | None = 1.0  # max global grad norm; None = no clipping
    seed: int = 0  # model init, data order, subset choice
    max_seconds: float | None = 300.0  # wall-clock cap per trial; None = no cap
    threads: int | None = None  # torch intra-op threads while training; None = leave as is
    extra: tuple[tuple[str, Any], ...] = field(default=())  # free-form notes recorded with results

    FIELD_NAME: ClassVar[str] = "ProxyProfile.{name}"  # set with --set name=value

    def rules(self) -> list[Rule]:
        return [
            (positive_or_none(self.img_size), "img_size", "must be positive"),
            (positive_or_none(self.grid), "grid", "must be positive"),
            (0 < self.grid_scale <= 1, "grid_scale", "must be in (0, 1]"),
            (self.width_mult > 0, "width_mult", "must be positive"),
            (positive_or_none(self.train_subset), "train_subset", "must be positive"),
            (positive_or_none(self.val_subset), "val_subset", "must be positive"),
            (self.max_seconds is None or self.max_seconds > 0, "max_seconds", "must be positive"),
        ]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["extra"] = dict(self.extra)
        return out

    def replace(self, **changes: Any) -> ProxyProfile:
        return dataclasses.replace(self, **changes)


def target_grid(arch: ArchConfig, target_img_size: int = 224) -> int:
    """Side of the stem's token grid at the target resolution."""
    return stem_grid_size(arch.stem, target_img_size)


def adapt_stem(
    arch: ArchConfig, img_size: int, target_img_size: int = 224, grid: int | None = None, grid_scale: float = 1.0
) -> ArchConfig:
    """Rewrite the stem stride (and overlapping kernel) for ``img_size``; see the module docstring."""
    want = grid or max(1, round(target_grid(arch, target_img_size) * grid_scale))
    stride = max(1, round(img_size / want))
    stem = arch.stem
    kernel = None
    if stem.kernel_size is not None and stem.kernel_size > stem.patch_size:
        kernel = max(stride, round(stem.kernel_size * stride / stem.patch_size))
        if (kernel - stride) % 2:  # keep the padding symmetric so the grid is img_size // stride
            kernel += 1
        if kernel == stride:
            kernel = None
    new = arch.replace(stem=dataclasses.replace(stem, patch_size=stride, kernel_size=kernel))
    if stem_grid_size(new.stem, img_size) != img_size // stride:  # a stem type with other rules
        new = arch.replace(stem=dataclasses.replace(stem, patch_size=stride, kernel_size=None))
    return new


def _width_multiple(arch: ArchConfig, stage_ids: list[int]) -> int:
    m = 1
    for si in stage_ids:
        stage = arch.stages[si]
        for block in stage.blocks:
            mixer = get_mixer(block.mixer.type)
            if mixer.USES_HEADS:
                m = math.lcm(m, mixer.resolve_heads(block.mixer, stage.width))
            m = math.lcm(m, block.mlp_groups)
    return m


def _pin_heads(arch: ArchConfig) -> ArchConfig:
    stages = []
    for stage in arch.stages:
        blocks = []
        for block in stage.blocks:
            mixer = get_mixer(block.mixer.type)
            if mixer.USES_HEADS and block.mixer.heads is None:
                heads = mixer.resolve_heads(block.mixer, stage.width)
                block = dataclasses.replace(block, mixer=dataclasses.replace(block.mixer, heads=heads))
            blocks.append(block)
        stages.append(dataclasses.replace(stage, blocks=tuple(blocks)))
    return arch.replace(stages=tuple(stages))


def scale_widths(arch: ArchConfig, width_mult: float, max_steps: int = 64) -> ArchConfig:
    """Stage widths times ``width_mult``, rounded so heads and MLP groups stay valid."""
    if width_mult == 1.0:
        return arch
    arch = _pin_heads(arch)
    # Stages entered by a width-keeping downsampler must share the previous stage's width.
    groups: list[list[int]] = []
    for si, stage in enumerate(arch.stages):
        if si and not get_downsample(stage.downsample).changes_width:
            groups[-1].append(si)
        else:
            groups.append([si])
    widths = [s.width for s in arch.stages]
    for group in groups:
        m = _width_multiple(arch, group)
        w = max(m, round(arch.stages[group[0]].width * width_mult / m) * m)
        for si in group:
            widths[si] = w
    for _ in range(max_steps):
        candidate = arch.replace(
            stages=tuple(dataclasses.replace(s, width=w) for s, w in zip(arch.stages, widths, strict=True))
        )
        try:
            return validate(candidate)
        except ConfigError as err:
            failing = _failing_stage(err.path)
            if failing is None:
                raise
            group = next(g for g in groups if failing in g)
            step = _width_multiple(arch, group)
            for si in group:
                widths[si] += step
    raise ConfigError("width_mult", f"no valid widths near x{width_mult} within {max_steps} steps")


def _failing_stage(path: str) -> int | None:
    if path.startswith("stages["):
        return int(path[len("stages[") : path.index("]")])
    return None


def adapt_arch(
    arch: ArchConfig,
    img_size: int,
    target_img_size: int = 224,
    grid: int | None = None,
    width_mult: float = 1.0,
    grid_scale: float = 1.0,
) -> ArchConfig:
    """The architecture the proxy builds: stem adapted to ``img_size``, widths scaled."""
    stem = adapt_stem(validate(arch), img_size, target_img_size, grid, grid_scale)
    return validate(scale_widths(stem, width_mult))
