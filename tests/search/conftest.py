import pytest

from vitsearch.evaluators.base import BaseEvaluator
from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.space.search_space import SearchSpace

TOY_SPACE = {
    "name": "toy",
    "stem": {"patch_size": 16},
    "head": ["cls", "mean"],
    "stages": [
        {
            "width": [64, 128],
            "depth": [1, 2],
            "layer": {
                "mixer": ["attention", "pool"],
                "head_dim": [32, 64],
                "mlp_ratio": [2, 4],
                "share_attention": [False, True],
            },
        }
    ],
}


class CountingEvaluator(BaseEvaluator):
    """Deterministic score from the architecture; remembers what it was asked to evaluate."""

    name = "counting"

    def __init__(self, budget: int | None = None):
        self.budget = budget
        self.seen: list = []

    def evaluate(self, arch, trial=None):
        if self.budget is not None:
            assert analytic_flops(arch) <= self.budget, "an over-budget architecture reached the evaluator"
        self.seen.append(arch.digest())
        return {"score": arch.stages[0].width / 128 + 0.1 * arch.depth - 0.01 * arch.stages[0].blocks[0].mlp_ratio}

    def settings(self):
        return {"budget": self.budget}


@pytest.fixture
def toy_space():
    return SearchSpace.from_dict(TOY_SPACE)
