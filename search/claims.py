"""The seed papers' claims as pairs of architectures at equal FLOPs: the paper's design A, its control B.

Each pair differs only in what the claim names (``build_pairs`` checks the FLOPs, within ``TOLERANCE``
at the 224-px target profile, ``analytic_flops``); ``studies/paper_claims.py`` trains them.

- ``scheme`` (SCHEME): block-diagonal MLP (G=4 groups) with a larger expansion (E=8) against the
  dense MLP at the same cost (E/G=2, ``dense_twin``), on the SCHEMEformer-style MetaFormer
  (pool-pool-attention-attention, ``search.baselines``' ``schemeformer`` family scaled to the budget).
  CCA is off on both sides, so the pair isolates the MLP. FLOPs are exactly equal.
- ``cca`` (SCHEME): that model with the channel-covariance attention branch on (A, as SCHEMEformer
  trains) and off (B). CCA is dropped at inference, so FLOPs are exactly equal; B is ``scheme``'s A.
- ``vix`` (ViX): the DeiT body (``deit`` family scaled to the budget) with ViX's conv stem (three
  convs) and RoPE on queries and keys (A), against the linear patch stem and learned positions (B).
  The conv stem costs about 1% more at 224 px, but about 26% more at the reference's proxy profile
  (its 32 and 64 hidden channels are not width-scaled).
- ``psvit`` (PSViT): token pooling (2x2, after the first layer and after half the depth, from a
  patch-8 stem) with attention sharing in every second layer after a pooling point (A, the
  ``psvit_tiny`` preset's pattern scaled to the budget, ``psvit_family``), against DeiT of the same
  width and heads with the depth that brings it nearest A's FLOPs (B, ``deit_near``).
- ``riformer`` (RIFormer): the PoolFormer body (``poolformer`` family scaled to the budget) with
  RIFormer's identity (affine) token mixer in every block, trained with soft distillation from a
  teacher that has token mixers (A) and without (B): one architecture, so FLOPs are equal. The
  teacher is the PoolFormer of the same shape (``Pair.teacher``).

At 1.3 GFLOPs (DeiT-Tiny's class) the ``vix`` pair is DeiT-Tiny with and without the ViX stem and
positions, and the ``psvit`` pair is exactly the ``psvit_tiny`` and ``deit_tiny`` presets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.space import ArchConfig, BlockConfig, MixerConfig, StageConfig, StemConfig
from vitsearch.space.edits import dense_twin, with_blocks
from vitsearch.space.presets import vit

from .baselines import FAMILIES, scaled_to_budget
from .describe import describe

TOLERANCE = 0.05  # |FLOPs(A) / FLOPs(B) - 1| at the target profile


class Pair(NamedTuple):
    claim: str
    a: ArchConfig  # the paper's design
    b: ArchConfig  # its control
    teacher: ArchConfig | None = None  # riformer: the mixer teacher A distils from


class Claim(NamedTuple):
    paper: str
    a_words: str
    b_words: str
    build: Callable[[int], Pair]


def scaled(family: Callable[[float, float], ArchConfig], budget: int) -> ArchConfig:
    """The member of ``family`` with the most FLOPs within ``budget`` (``scaled_to_budget``) at 224 px."""
    arch = scaled_to_budget(family, budget, 224, 1000)
    if arch is None:
        raise ValueError(f"budget {budget / 1e9:g} GFLOPs: no member of the family fits; raise --budget")
    return arch


def psvit_family(width_mult: float, depth_mult: float) -> ArchConfig:
    """The ``psvit_tiny`` pattern at other sizes: patch 8, 2x2 mean pooling after the first layer and after
    ``1 + 5 d`` layers (depths 1, 5d, 6d), sharing in every second layer after a pooling point; head dim 64."""
    width = max(64, round(192 * width_mult / 64) * 64)
    attn = MixerConfig(type="attention", heads=width // 64)
    depths = (1, max(1, round(5 * depth_mult)), max(1, round(6 * depth_mult)))
    stages = tuple(
        StageConfig(
            width=width,
            blocks=tuple(BlockConfig(mixer=attn, share_attention=si > 0 and bi % 2 == 1) for bi in range(depth)),
            downsample="none" if si == 0 else "mean",
        )
        for si, depth in enumerate(depths)
    )
    return ArchConfig(stages=stages, stem=StemConfig(type="patch", patch_size=8))


def deit_near(width: int, heads: int, flops: int) -> ArchConfig:
    """DeiT of this width and heads with the depth (1 to 48) whose FLOPs are nearest ``flops``."""
    return min((vit(width, depth, heads) for depth in range(1, 49)), key=lambda a: abs(analytic_flops(a) - flops))


def scheme_base(budget: int) -> ArchConfig:
    return scaled(FAMILIES["schemeformer"], budget)  # E=8, G=4, CCA on: SCHEMEformer as trained


def scheme_pair(budget: int) -> Pair:
    a = with_blocks(scheme_base(budget), cca=False)
    return Pair("scheme", a, dense_twin(a))


def cca_pair(budget: int) -> Pair:
    a = scheme_base(budget)
    return Pair("cca", a, with_blocks(a, cca=False))


def _vix(width_mult: float, depth_mult: float) -> ArchConfig:
    arch = FAMILIES["deit"](width_mult, depth_mult)
    return arch.replace(stem=dataclasses.replace(arch.stem, type="conv"), position="rope")


def vix_pair(budget: int) -> Pair:
    a = scaled(_vix, budget)
    return Pair("vix", a, a.replace(stem=dataclasses.replace(a.stem, type="patch"), position="learned"))


def psvit_pair(budget: int) -> Pair:
    a = scaled(psvit_family, budget)
    width, heads = a.stages[0].width, a.stages[0].blocks[0].mixer.heads
    return Pair("psvit", a, deit_near(width, heads, analytic_flops(a)))


def riformer_pair(budget: int) -> Pair:
    teacher = scaled(FAMILIES["poolformer"], budget)
    student = with_blocks(teacher, mixer=MixerConfig(type="identity"))
    return Pair("riformer", student, student, teacher)


CLAIMS: dict[str, Claim] = {
    "scheme": Claim("SCHEME", "block-diagonal MLP r8/g4", "dense MLP r2", scheme_pair),
    "cca": Claim("SCHEME", "BD-MLP + CCA", "BD-MLP, no CCA", cca_pair),
    "vix": Claim("ViX", "conv stem + RoPE", "patch stem + learned positions", vix_pair),
    "psvit": Claim("PSViT", "token pooling + attention sharing", "DeiT", psvit_pair),
    "riformer": Claim(
        "RIFormer", "identity mixer, distilled from a pool-mixer teacher", "same, no teacher", riformer_pair
    ),
}


def build_pairs(claims: list[str], budget: float, quiet: bool = False) -> list[Pair]:
    """The pairs of ``claims`` (names in ``CLAIMS``) at ``budget``, each printed with its FLOPs unless ``quiet``.

    Raises:
        ValueError: a claim's family has no member within the budget.
        AssertionError: a pair whose FLOPs are more than ``TOLERANCE`` apart.
    """
    out = []
    for name in claims:
        try:
            pair = CLAIMS[name].build(int(budget))
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        fa, fb = analytic_flops(pair.a), analytic_flops(pair.b)
        if not quiet:
            print(f"{name}: A {fa / 1e9:.4f} GFLOPs  {describe(pair.a)}", flush=True)
            print(f"{name}: B {fb / 1e9:.4f} GFLOPs  {describe(pair.b)}", flush=True)
            if pair.teacher is not None:
                ft = analytic_flops(pair.teacher)
                print(f"{name}: teacher {ft / 1e9:.4f} GFLOPs  {describe(pair.teacher)}", flush=True)
        if abs(fa / fb - 1) > TOLERANCE:
            raise AssertionError(
                f"{name} at {budget / 1e9:g}G: A has {fa} FLOPs, B {fb}: more than {TOLERANCE:.0%} apart"
            )
        out.append(pair)
    return out
