"""The shipped search spaces load, sample valid architectures, and analytic FLOPs equal fvcore's."""

from pathlib import Path

import optuna
import pytest
import yaml

from vitsearch.evaluators.complexity import analytic_flops, analytic_params, count_flops, count_params
from vitsearch.space import build_model, get_preset, list_presets
from vitsearch.space.search_space import SearchSpace

SPACES_DIR = Path(__file__).resolve().parents[2] / "space" / "spaces"
SPACES = sorted(SPACES_DIR.glob("*.yaml"))


def draw(space: SearchSpace, n: int, seed: int = 0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        trial = study.ask()
        yield space.sample(trial)
        study.tell(trial, 0.0)


def test_the_five_spaces_ship():
    assert {p.stem for p in SPACES} >= {"full", "scheme", "vix", "psvit", "riformer"}


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_space_loads_and_extremes_bound_samples(path):
    space = SearchSpace.load(path)
    low, high = analytic_flops(space.smallest()), analytic_flops(space.largest())
    assert space.size() > 1
    for arch in draw(space, 30):
        assert low <= analytic_flops(arch) <= high


def small_full_space() -> SearchSpace:
    """The full space with every per-layer choice kept, but narrower and shallower (tracing cost)."""
    data = yaml.safe_load((SPACES_DIR / "full.yaml").read_text())
    for stage in data["stages"]:
        stage["width"] = [w // 4 for w in stage["width"]]
        stage["depth"] = [d for d in stage["depth"] if d <= 2]
        stage["layer"] = {**stage["layer"], "head_dim": [8, 16]}
    return SearchSpace.from_dict(data)


@pytest.mark.slow
def test_analytic_equals_fvcore_on_200_random_architectures():
    """Every mechanism of the full space, counted both ways at a small profile (4x4 tokens)."""
    space = small_full_space()
    for arch in draw(space, 200, seed=1):
        model = build_model(arch, img_size=64, num_classes=10)
        assert analytic_flops(arch, img_size=64, num_classes=10) == count_flops(model, img_size=64), arch.to_yaml()


def test_analytic_params_equal_the_deployed_model_on_200_random_architectures():
    """Memoised per part, summed by formula: equal to the built, reparameterised model's count."""
    space = small_full_space()
    for arch in [*draw(space, 200, seed=3), *(get_preset(name) for name in list_presets())]:
        deployed = build_model(arch, img_size=64, num_classes=10).reparameterize()
        assert analytic_params(arch, img_size=64, num_classes=10) == count_params(deployed), arch.to_yaml()
