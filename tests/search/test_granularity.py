"""Per-stage choices (``layer.per_stage``): one draw per stage shared by its layers, counted and bounded exactly."""

from __future__ import annotations

import copy

import optuna
import pytest
from conftest import TOY_SPACE
from test_search import enumerate_space

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.space import ConfigError
from vitsearch.space.search_space import SearchSpace


def tied_space(*fields: str) -> SearchSpace:
    data = copy.deepcopy(TOY_SPACE)
    data["stages"][0]["depth"] = [1, 2, 3]
    data["stages"][0]["layer"]["per_stage"] = list(fields)
    return SearchSpace.from_dict(data)


def test_a_per_stage_field_is_one_parameter_shared_by_the_stage():
    space = tied_space("mixer", "mlp_ratio")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        arch = space.sample(trial)
        blocks = arch.stages[0].blocks
        assert len({b.mixer.type for b in blocks}) == 1
        assert len({b.mlp_ratio for b in blocks}) == 1 and {"s0.mixer", "s0.mlp_ratio"} <= set(trial.params)
        assert not any(name.endswith(".mixer") and ".b" in name for name in trial.params)
        study.tell(trial, 0.0)


@pytest.mark.parametrize("fields", [("mixer",), ("mixer", "mlp_ratio"), ("mlp_ratio",)])
def test_size_and_extremes_are_exact_with_ties(fields):
    space = tied_space(*fields)
    archs = enumerate_space(space)
    assert space.size() == len(archs)
    free = tied_space()
    assert space.size() < free.size()  # tying removes the mixed stages
    flops = [analytic_flops(a) for a in archs]
    assert analytic_flops(space.smallest()) == min(flops) and analytic_flops(space.largest()) == max(flops)


def test_round_trip_and_unchanged_digest_without_ties():
    space = tied_space("mixer")
    again = SearchSpace.from_dict(space.to_dict())
    assert again == space and again.digest() == space.digest()
    assert "per_stage" not in SearchSpace.from_dict(TOY_SPACE).to_dict()["stages"][0]["layer"]
    assert tied_space().digest() != space.digest()


def test_bad_per_stage_names_the_field():
    for field in ("share_attention", "head_dim"):
        with pytest.raises(ConfigError, match=rf"stages\[0\]\.layer\.per_stage: unknown value '{field}'"):
            tied_space(field)


@pytest.mark.parametrize("positions", [["rope", "none"], ["rope", "learned"], ["rope", "learned", "none"]])
def test_rope_without_query_key_mixers_is_sampled_as_none_and_counted_once(positions):
    data = copy.deepcopy(TOY_SPACE)
    data["position"] = positions
    space = SearchSpace.from_dict(data)
    archs = enumerate_space(space)  # every arch validates: no rope over pool-only layers
    assert space.size() == len(archs)
    pool_only = [a for a in archs if all(b.mixer.type == "pool" for *_, b in a.blocks())]
    assert pool_only and all(a.position != "rope" for a in pool_only)
    assert space.smallest().position != "rope" or any(
        b.mixer.type == "attention" for *_, b in space.smallest().blocks()
    )
