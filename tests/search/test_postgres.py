"""Studies in shared storage: the driver and the CLI against PostgreSQL (and SQLite alike).

The PostgreSQL cases need a server: ``.ci/run`` starts one and exports ``VITSEARCH_TEST_POSTGRES_URL``;
without it ``tests/conftest.py`` starts a throwaway one, or the cases skip with one line.
"""

from __future__ import annotations

import optuna
import pytest
from conftest import CountingEvaluator
from typer.testing import CliRunner

from vitsearch.search.cli import app
from vitsearch.search.driver import SearchConfig, load_study, run_search
from vitsearch.space import ConfigError

BUDGET = 40_000_000  # as in test_search.py: splits the toy space


def search(space, evaluator, trials, storage, **kw) -> optuna.Study:
    config = SearchConfig(
        space=space, evaluator=evaluator, budget=BUDGET, trials=trials, storage=storage, study_name="shared", **kw
    )
    return run_search(config).study


def evaluated(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("result", {}).get("evaluated")]


def test_postgres_search_and_resume(toy_space, postgres_url):
    assert postgres_url.startswith("postgresql+psycopg2://")
    first = CountingEvaluator(BUDGET)
    study = search(toy_space, first, trials=3, storage=postgres_url)
    assert len(first.seen) == 3 == len(evaluated(study))

    second = CountingEvaluator(BUDGET)  # a later invocation: a new process would see the same
    study = search(toy_space, second, trials=6, storage=postgres_url)
    assert len(second.seen) == 3 and not set(first.seen) & set(second.seen)
    digests = [t.user_attrs["record"]["digest"] for t in evaluated(study)]
    assert len(digests) == 6 == len(set(digests)), "an architecture was evaluated twice"

    reloaded = load_study(postgres_url)  # what `vitsearch show URL` opens; the :pruning shadow is not offered
    assert reloaded.study_name == "shared" and len(reloaded.trials) == len(study.trials)
    # without a pruner (the default) no :pruning shadow study is created
    assert {s.study_name for s in optuna.get_all_study_summaries(postgres_url)} == {"shared"}


def test_shared_storage_refuses_a_changed_study(toy_space, storage_url):
    search(toy_space, CountingEvaluator(BUDGET), trials=1, storage=storage_url)
    with pytest.raises(ConfigError, match="different"):
        search(toy_space, CountingEvaluator(BUDGET + 1), trials=2, storage=storage_url)


def test_show_reads_a_storage_url(toy_space, storage_url):
    search(toy_space, CountingEvaluator(BUDGET), trials=3, storage=storage_url)
    result = CliRunner().invoke(app, ["show", storage_url, "--study", "shared"])
    assert result.exit_code == 0, result.output
    assert "Pareto front of shared" in result.stdout and "3 complete" in result.stdout.replace("\n", " ")
