"""Shared helpers of the deployment tests (a unique module name: `conftest` is taken twice in tests/)."""

from vitsearch.evaluators.base import BaseEvaluator
from vitsearch.space import ArchConfig, BlockConfig, MixerConfig, StageConfig, StemConfig

HEADED = {"attention", "performer", "linformer", "nystrom", "refined"}

TINY_SPACE = {
    "name": "tiny",
    "stem": {"patch_size": 8},
    "stages": [{"width": [32, 64], "depth": [1, 2], "layer": {"mixer": ["attention", "pool"], "head_dim": 32}}],
}


def mixer_arch(name: str, **block) -> ArchConfig:
    """Two blocks of one mixer at width 32, patch 8: 4x4 tokens + cls at 32 px."""
    mixer = MixerConfig(type=name, heads=2 if name in HEADED else None)
    return ArchConfig(
        stages=(StageConfig(width=32, blocks=(BlockConfig(mixer=mixer, mlp_ratio=2.0, **block),) * 2),),
        stem=StemConfig(patch_size=8),
    )


class WidthEvaluator(BaseEvaluator):
    """Deterministic, instant score: wider and deeper is better."""

    name = "width"

    def evaluate(self, arch, trial=None):
        return {"score": arch.stages[0].width / 64 + 0.1 * arch.depth}

    def settings(self):
        return {}
