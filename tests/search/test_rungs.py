"""Successive halving over rungs: promotion by Pareto rank, the pick at the top rung, records, resume."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess

import optuna
import pytest

from vitsearch.evaluators.base import BaseEvaluator
from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.search.driver import RunPlan, SearchConfig, evaluated_count, run_search
from vitsearch.search.promotion import Candidate, crowding_distance, non_dominated_fronts, promote, rung_sizes
from vitsearch.search.results import RunResults
from vitsearch.search.rungs import CLAIM_PREFIX, Fidelity, RungScore, run_scores
from vitsearch.search.workers import HOST


class BiasedLadder(BaseEvaluator):
    """True quality rises with FLOPs; rung r under-rates large models by ``bias * (top - r) / top`` per log FLOPs.

    At rung 0 a small model looks best; at the top rung the score is the truth. Every call is counted.
    """

    name = "biased"

    def __init__(self, rung: int = 0, top: int = 2, calls: list | None = None):
        self.rung, self.top = rung, top
        self.calls = [] if calls is None else calls

    @staticmethod
    def noise(arch, salt: str) -> float:
        return int(hashlib.sha1((salt + arch.digest()).encode()).hexdigest()[:8], 16) / 2**32

    @classmethod
    def truth(cls, arch) -> float:
        return 0.3 * math.log(analytic_flops(arch)) + 0.2 * cls.noise(arch, "truth")

    def evaluate(self, arch, trial=None):
        self.calls.append((self.rung, arch.digest()))
        short = (self.top - self.rung) / self.top  # how far from the top rung: the bias shrinks to 0 there
        # A size bias that keeps the order within a FLOPs region: at rung 0 the score barely rises with FLOPs
        # (0.02 per log FLOPs against the truth's 0.3), so a small model looks best.
        score = self.truth(arch) - 0.28 * short * math.log(analytic_flops(arch))
        return {"score": score, "steps": 100 * 3**self.rung}

    def settings(self):
        return {"rung": self.rung}

    def at_rung(self, rung, growth):
        return BiasedLadder(rung, self.top, self.calls)


def _config(space, tmp_path, rungs=3, trials=18, **kw) -> SearchConfig:
    return SearchConfig(
        space=space,
        evaluator=BiasedLadder(top=rungs - 1),
        budget=int(2e9),
        trials=trials,
        sampler="random",
        seed=1,
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        rungs=rungs,
        baselines=False,
        **kw,
    )


# --- promotion ----------------------------------------------------------------------------------


def test_fronts_are_pareto_ranks_and_promotion_keeps_every_region():
    points = [Candidate("a", 0.9, 1), Candidate("b", 0.5, 2), Candidate("c", 0.95, 4), Candidate("d", 0.2, 8)]
    points.append(Candidate("e", 0.99, 16))
    fronts = non_dominated_fronts(points)
    assert [sorted(c.key for c in f) for f in fronts] == [["a", "c", "e"], ["b"], ["d"]]
    assert {c.key for c in promote(points, 3)} == {"a", "c", "e"}  # the largest survives: it is best of its region
    assert {c.key for c in promote(points, 2)} == {"a", "e"}  # a front cut by crowding keeps its extremes
    assert crowding_distance(fronts[0])["c"] < math.inf
    assert rung_sizes(40, 3, 3) == [40, 14, 5] and rung_sizes(0, 3, 3) == [0, 0, 0]


def test_score_record_round_trips():
    score = RungScore("abc", Fidelity(2, 1125, "proxy"), "COMPLETE", 0.91, 12.5, settings={"train_subset": 4500})
    assert RungScore.from_dict(score.to_dict()) == score
    assert score.fidelity.label() == "proxy rung 2, 1125 steps"
    assert Fidelity(0, None, "synflow").label() == "synflow rung 0"


# --- the driver ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 2, 3])  # seeds where rung 0's best is not the truth's
def test_the_pick_is_the_top_rung_best_though_rung_0_favours_small_models(toy_space, tmp_path, seed):
    config = _config(toy_space, tmp_path)
    config.seed = seed
    study = run_search(config).study
    results = RunResults.of(study)
    evaluated = results.trials[results.trials["state"] == "COMPLETE"]
    archs = {t.user_attrs["record"]["digest"]: t for t in study.get_trials() if t.state.name == "COMPLETE"}
    from vitsearch.space import ArchConfig

    truth = {d: BiasedLadder.truth(ArchConfig.from_dict(t.user_attrs["arch"])) for d, t in archs.items()}
    rung0_best = evaluated.loc[evaluated["score_rung0"].idxmax(), "digest"]
    assert rung0_best != max(truth, key=truth.get)  # the low fidelity alone would pick wrong
    assert results.best.user_attrs["record"]["digest"] == max(truth, key=truth.get)
    assert results.best_row["rung"] == 2 and results.fidelity == "biased rung 2, 900 steps"
    assert (results.front["rung"] == 2).all()  # the front is made at one fidelity
    calls = config.evaluator.calls
    assert [sum(r == k for r, _ in calls) for k in range(3)] == [18, 6, 2]  # eta 3: 18 -> 6 -> 2


def test_trials_csv_says_what_each_score_rests_on(toy_space, tmp_path):
    study = run_search(_config(toy_space, tmp_path)).study
    trials = RunResults.of(study).trials
    done = trials[trials["state"] == "COMPLETE"]
    assert set(done["rung"]) == {0, 1, 2}
    assert set(done.loc[done["rung"] == 0, "fidelity"]) == {"biased rung 0, 100 steps"}
    promoted = done[done["rung"] == 2]
    assert (promoted["score"] == promoted["score_rung2"]).all() and promoted["score_rung0"].notna().all()


def test_a_finished_run_takes_one_more_rung_and_resumes_a_dead_workers_claim(toy_space, tmp_path):
    run_search(_config(toy_space, tmp_path, rungs=2, trials=9))
    config = _config(toy_space, tmp_path, rungs=3, trials=9)
    plan = RunPlan.check(config)
    study = plan.open().study
    dead = subprocess.Popen(["true"])
    dead.wait()  # a worker of this machine that died holding the first rung-2 job
    scores = run_scores(study)
    rung1 = [d for d, by in scores.items() if 1 in by]
    assert len(rung1) == 3
    study.set_user_attr(f"{CLAIM_PREFIX}2:{rung1[0]}", {"host": HOST, "pid": dead.pid, "time": 0.0})
    run_search(plan)
    assert evaluated_count(study) == 9
    calls = config.evaluator.calls
    assert [r for r, _ in calls] == [2]  # nothing evaluated again: rung 0 and 1 were in; one rung-2 job
    assert RunResults.of(study).best_row["rung"] == 2


def test_without_a_higher_fidelity_there_is_one_rung(toy_space, tmp_path):
    from conftest import CountingEvaluator

    config = _config(toy_space, tmp_path, trials=4)
    config.evaluator = CountingEvaluator()
    study = run_search(config).study
    assert len(config.evaluator.seen) == 4  # rung 0 only: counting has no at_rung
    assert RunResults.of(study).best_row["rung"] == 0


@pytest.mark.parametrize(
    ("bad", "flag"), [({"rungs": 0}, "--rungs"), ({"eta": 1}, "--eta"), ({"growth": 1}, "--rung-growth")]
)
def test_rungs_eta_and_growth_are_checked(toy_space, tmp_path, bad, flag):
    from vitsearch.space import ConfigError

    config = _config(toy_space, tmp_path, **bad) if "rungs" not in bad else _config(toy_space, tmp_path, 0)
    with pytest.raises(ConfigError, match="must be >= ") as err:
        RunPlan.check(config)
    assert err.value.path == flag


def test_the_proxy_ladder_grows_the_training_images_by_growth():
    from vitsearch.evaluators.proxy import ProxyEvaluator
    from vitsearch.search.rungs import ladder

    proxy = ProxyEvaluator("synthetic", train_subset=100, max_seconds=10)
    rungs = ladder(proxy, 3, 2)
    assert [e.profile.train_subset for e in rungs] == [100, 200, 400]
    assert [e.profile.max_seconds for e in rungs] == [10, 20, 40]
    assert [e.profile.epochs for e in rungs] == [proxy.profile.epochs] * 3  # the recipe stays


def test_rung_scores_live_beside_the_trials_not_as_trials(toy_space, tmp_path):
    study = run_search(_config(toy_space, tmp_path, trials=6)).study
    assert len([t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]) >= 6
    assert any(k.startswith("rung:") for k in study.user_attrs)
    assert not any(v for k, v in study.user_attrs.items() if k.startswith(CLAIM_PREFIX))  # every claim released


def test_the_largest_free_job_is_taken_first(toy_space, tmp_path):
    """Longest first: the last job of a rung is a short one, so no worker waits long on another's tail."""
    from vitsearch.search.rungs import Rungs
    from vitsearch.space.presets import vit

    baselines = {"small": vit(64, 1, 2), "big": vit(128, 4, 2), "mid": vit(64, 4, 2)}
    study = optuna.create_study(directions=["maximize", "minimize"])
    rungs = Rungs(_config(toy_space, tmp_path, rungs=1), baselines)
    order = []
    for _ in baselines:
        job, busy = rungs.next_job(study)
        order.append(job.name)
        study.set_user_attr(job.claim_key, {"host": HOST, "pid": os.getpid(), "time": 0.0})  # this worker holds it
    assert order == ["big", "mid", "small"]
    assert rungs.next_job(study) == (None, True)  # all held, none scored: wait
