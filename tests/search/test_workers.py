"""Sharing a study: parallel workers, kill -9 and resume, stale trials, failing trials."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
import yaml
from conftest import TOY_SPACE, CountingEvaluator
from typer.testing import CliRunner

from vitsearch.evaluators.base import BaseEvaluator, EvaluationFailed, get_evaluator
from vitsearch.search import optuna_private as private
from vitsearch.search import workers
from vitsearch.search.cli import app
from vitsearch.search.driver import SearchConfig, run_search
from vitsearch.search.live import worker_main
from vitsearch.search.results import trials_frame
from vitsearch.space.search_space import SearchSpace

BUDGET = 40_000_000  # about half the toy space at 224 px


def evaluated(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("result", {}).get("evaluated")]


def assert_exactly(study: optuna.Study, n: int) -> None:
    done = evaluated(study)
    assert len(done) == n
    digests = [t.user_attrs["record"]["digest"] for t in done]
    assert len(set(digests)) == n, "an architecture was evaluated twice"
    assert not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))


# --- storages and locks -------------------------------------------------------------------------


def storage_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "postgres":
        return request.getfixturevalue("postgres_url")
    return {"sqlite": f"sqlite:///{tmp_path / 'study.db'}", "journal": f"journal:{tmp_path / 'study.log'}"}[kind]


def test_journal_and_sqlite_storages_resume(tmp_path, toy_space):
    for url in (f"sqlite:///{tmp_path / 'a.db'}", f"journal:{tmp_path / 'a.log'}"):
        config = SearchConfig(
            space=toy_space, evaluator=CountingEvaluator(BUDGET), budget=BUDGET, trials=3, storage=url
        )
        run_search(config)
        config.trials = 5
        assert_exactly(run_search(config).study, 5)


def test_bad_storage_is_one_line(tmp_path):
    with pytest.raises(Exception, match="--storage"):
        workers.open_storage("nosuchdb://x")
    with pytest.raises(Exception, match="--storage.*folder"):
        workers.open_storage(f"journal:{tmp_path / 'missing' / 'x.log'}")


def test_file_lock_excludes_other_processes(tmp_path):
    lock = workers.FileLock(tmp_path / "x.lock")
    script = f"import fcntl; h = open({str(tmp_path / 'x.lock')!r}, 'a'); fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)"
    with lock():
        assert subprocess.run([sys.executable, "-c", script], capture_output=True).returncode != 0
    assert subprocess.run([sys.executable, "-c", script], capture_output=True).returncode == 0


# --- stale trials -------------------------------------------------------------------------------


def sqlite_config(space: SearchSpace, evaluator: BaseEvaluator, tmp_path: Path, **kwargs) -> SearchConfig:
    """A study in ``tmp_path/study.db`` with the whole space in budget (re-queued trials always run)."""
    return SearchConfig(
        space=space, evaluator=evaluator, budget=10**12, storage=f"sqlite:///{tmp_path / 'study.db'}", **kwargs
    )


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def leave_running_trial(config: SearchConfig, beat: dict | None) -> int:
    """A trial as a killed worker leaves it: sampled, within budget, claimed, RUNNING."""
    storage = workers.open_storage(config.storage)
    study = optuna.create_study(
        study_name=config.study_name, storage=storage, directions=config.directions, load_if_exists=True
    )
    trial = study.ask()
    arch = config.space.sample(trial)
    trial.set_user_attr("arch", arch.to_dict())
    trial.set_user_attr("record", {"digest": arch.digest(), "flops": 1, "params": 1, "constraint": [-1.0]})
    storage.set_trial_system_attr(private.trial_id(trial), workers.CLAIM_KEY, "evaluate")
    if beat is not None:
        storage.set_trial_system_attr(private.trial_id(trial), workers.BEAT_KEY, beat)
    return trial.number


def test_trial_of_a_dead_process_is_failed_and_requeued(tmp_path, toy_space):
    config = sqlite_config(toy_space, CountingEvaluator(), tmp_path, trials=3)
    stale = leave_running_trial(config, {"host": workers.HOST, "pid": dead_pid(), "n": 1})
    study = run_search(config).study
    trials = study.get_trials(deepcopy=False)
    assert trials[stale].state == optuna.trial.TrialState.FAIL
    assert "died" in trials[stale].user_attrs["result"]["fail_reason"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == stale]
    assert len(retry) == 1 and retry[0].params == trials[stale].params
    assert retry[0].user_attrs["result"]["evaluated"], "the re-queued architecture was evaluated"
    assert_exactly(study, 3)


def test_a_new_trial_carries_its_first_beat_from_creation(tmp_path):
    storage = workers.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage)
    writes = []
    storage.set_trial_system_attr = lambda *args: writes.append(args)  # any separate beat write shows here
    workers.ask_held(study, workers.Heartbeat(storage))
    assert study.trials[0].system_attrs[workers.BEAT_KEY]["pid"] == os.getpid()
    assert writes == [], "the first beat of a new trial is written with the trial, not after it"


def test_requeued_trial_killed_before_sampling_is_requeued_again(tmp_path, toy_space):
    config = sqlite_config(toy_space, CountingEvaluator(), tmp_path, trials=2)
    storage = workers.open_storage(config.storage)
    study = optuna.create_study(
        study_name=config.study_name, storage=storage, directions=config.directions, load_if_exists=True
    )
    first = study.ask()
    toy_space.sample(first)
    params = first.params
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial(params, user_attrs={"retry_of": 0, "retries": 1})
    popped = workers.ask_held(study, workers.Heartbeat(storage))  # popped, then its worker dies at once
    storage.set_trial_system_attr(
        private.trial_id(popped), workers.BEAT_KEY, {"host": workers.HOST, "pid": dead_pid(), "n": 1}
    )
    study = run_search(config).study
    reaped = study.trials[popped.number]
    assert reaped.state == optuna.trial.TrialState.FAIL and "re-queued" in reaped.user_attrs["result"]["fail_reason"]
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == popped.number]
    assert len(retry) == 1 and retry[0].params == params and retry[0].user_attrs["retries"] == 2


def test_trial_of_another_host_is_reaped_after_the_grace_period(tmp_path, toy_space):
    config = sqlite_config(toy_space, CountingEvaluator(), tmp_path, trials=2, grace_period=1.0)
    stale = leave_running_trial(config, {"host": "another-machine", "pid": 1, "n": 7})
    config.trials = 1  # its claim holds one slot: the search can only finish once it is reaped
    started = time.monotonic()
    study = run_search(config).study
    assert time.monotonic() - started >= 1.0
    reason = study.get_trials(deepcopy=False)[stale].user_attrs["result"]["fail_reason"]
    assert "no heartbeat" in reason and "another-machine" in reason
    assert_exactly(study, 1)


def test_heartbeat_beats_while_a_trial_is_held(tmp_path):
    storage = workers.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with workers.Heartbeat(storage, interval=0.05) as heartbeat:
        heartbeat.hold(private.trial_id(trial))
        first = storage.get_trial_system_attrs(private.trial_id(trial))[workers.BEAT_KEY]["n"]
        deadline = time.monotonic() + 10.0  # a loaded 2-core machine can starve the beat thread for a while
        later = storage.get_trial_system_attrs(private.trial_id(trial))[workers.BEAT_KEY]
        while later["n"] <= first and time.monotonic() < deadline:
            time.sleep(0.05)
            later = storage.get_trial_system_attrs(private.trial_id(trial))[workers.BEAT_KEY]
    assert later["n"] > first and later["pid"] == os.getpid() and later["host"] == workers.HOST
    reaper = workers.Reaper(grace=10.0)
    assert reaper.stale_reason(study.trials[0], time.monotonic()) is None  # its own, alive process


# --- parallel workers ---------------------------------------------------------------------------


def synflow_config(space: SearchSpace, url: str, trials: int) -> SearchConfig:
    return SearchConfig(
        space=space,
        evaluator=get_evaluator("synflow", img_size=32, batch_size=4),
        budget=10**12,  # all of the toy space's 1,088 architectures: 40 distinct ones come quickly
        trials=trials,
        storage=url,
        study_name="parallel",
        seed=None,  # each worker its own sampler seed, as separate machines would have
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgres"])
def test_four_workers_evaluate_exactly_forty(kind, tmp_path, toy_space, request):
    url = storage_url(kind, tmp_path, request)
    config = synflow_config(toy_space, url, trials=40)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=worker_main, args=(config, 1)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0], "a worker failed (database locked?)"
    study = optuna.load_study(study_name="parallel", storage=workers.open_storage(url))
    assert_exactly(study, 40)
    frame = trials_frame(study)
    assert (frame["state"] == "COMPLETE").sum() == 40
    assert len({t.system_attrs.get(workers.BEAT_KEY, {}).get("pid") for t in evaluated(study)}) > 1


# Distinct architectures by the ten thousand (per-layer mixer, ratio and head size): 200 uniform
# draws rarely repeat, so the count is decided by the driver, not by the space running out.
MANY_SPACE = {
    "name": "many",
    "stem": {"patch_size": 16},
    "head": ["cls", "mean"],
    "stages": [
        {
            "width": [32, 64, 96, 128],
            "depth": [1, 2, 3],
            "layer": {
                "mixer": ["attention", "pool", "dwconv", "identity"],
                "head_dim": [16, 32],
                "mlp_ratio": [1, 2, 3, 4],
            },
        }
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_eight_workers_evaluate_exactly_two_hundred(kind, tmp_path, request):
    """More workers than cores on one study: exact count, no architecture twice, no trial lost to a lock."""
    url = storage_url(kind, tmp_path, request)
    space = SearchSpace.from_dict(MANY_SPACE)
    config = dataclasses.replace(synflow_config(space, url, trials=200), sampler="random")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=worker_main, args=(config, 1)) for _ in range(8)]
    started = time.monotonic()
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=900)
    assert [p.exitcode for p in processes] == [0] * 8, "a worker failed (database locked?)"
    study = optuna.load_study(study_name="parallel", storage=workers.open_storage(url))
    assert_exactly(study, 200)
    # A sample drawn while the last slots went to others is closed unused; anything else failed is an error.
    reasons = [t.user_attrs.get("result", {}).get("fail_reason", "") for t in study.trials if t.state.name == "FAIL"]
    errors = [r for r in reasons if not r.startswith("not evaluated: other workers took the last")]
    assert not errors and not any("locked" in r for r in reasons), errors
    assert len({t.system_attrs.get(workers.BEAT_KEY, {}).get("pid") for t in evaluated(study)}) >= 4
    print(f"8 workers x 200 trials on {kind}: {time.monotonic() - started:.0f} s")


# --- kill -9 and resume -------------------------------------------------------------------------


def count_by_state(db: Path) -> tuple[dict[int, tuple], int]:
    """Finished trials (number -> state and values) and the evaluated count, read from the SQLite file."""
    storage = workers.open_storage(f"sqlite:///{db}")
    names = [s.study_name for s in optuna.get_all_study_summaries(storage) if ":" not in s.study_name]
    if not names:
        return {}, 0
    study = optuna.load_study(study_name=names[0], storage=storage)
    finished = {t.number: (t.state, t.values) for t in study.trials if t.state.is_finished()}
    return finished, len(evaluated(study))


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tmp_path):
    space_file = tmp_path / "toy.yaml"
    space_file.write_text(yaml.safe_dump(TOY_SPACE))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "vitsearch.search.cli", "run", "--space", str(space_file), "--budget", "40M"]
    command += ["--trials", "30", "--evaluator", "synflow", "--set", "img_size=32", "--set", "batch_size=4"]
    command += ["--out", str(out), "--study", "killed"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Seeded, so a failure reproduces: VITSEARCH_KILL_SEED=<the seed printed> pytest -k kill_9 -s
    seed = int(os.environ.get("VITSEARCH_KILL_SEED", "20261206"))
    print(f"kill -9 test: seed {seed} (VITSEARCH_KILL_SEED)")
    rng = random.Random(seed)
    kills, finished = 0, {}
    for _ in range(4):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = count_by_state(out / "study.db")[1] if (out / "study.db").exists() else 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:  # let it make some progress first
            if (out / "study.db").exists() and count_by_state(out / "study.db")[1] > before:
                break
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 2.0))
        if process.poll() is not None:
            break  # it finished the study before the kill
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        now, _ = count_by_state(out / "study.db")
        for number, state in finished.items():  # no finished trial is ever lost or changed
            assert now[number] == state, f"trial {number} changed after kill {kills} (seed {seed})"
        finished = now
        for name in ("trials.csv", "pareto.csv"):  # outputs of earlier runs: whole, never half-written
            if (out / name).exists():
                pd.read_csv(out / name)
    assert kills >= 1, f"every run finished before it could be killed (seed {seed})"
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="killed", storage=workers.open_storage(f"sqlite:///{out / 'study.db'}"))
    assert_exactly(study, 30)
    for number, state in finished.items():
        assert study.trials[number].state == state[0]
    reaped = [t for t in study.trials if "died" in t.user_attrs.get("result", {}).get("fail_reason", "")]
    for trial in (t for t in reaped if t.params):  # killed before sampling: nothing to re-queue
        assert any(t.user_attrs.get("retry_of") == trial.number for t in study.trials), "stale trial not re-queued"
    print(f"seed {seed}: {kills} kills, {len(reaped)} trials left running by them, failed and re-queued")
    assert pd.read_csv(out / "trials.csv")["trial"].nunique() >= 30


# --- failing trials -----------------------------------------------------------------------------


class FailingEvaluator(BaseEvaluator):
    """Fails by the architecture's width and depth: NaN, out of memory, a raising mixer, or scores."""

    name = "failing"

    def evaluate(self, arch, trial=None):
        width, depth = arch.stages[0].width, arch.depth
        if (width, depth) == (64, 1):
            raise EvaluationFailed("non-finite loss at epoch 1 step 3")  # what the proxy raises on NaN
        if (width, depth) == (128, 1):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if (width, depth) == (64, 2):
            raise ValueError("attention mixer: shapes do not match")  # an exception inside a mixer
        return {"score": 0.5}

    def settings(self):
        return {}


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path, toy_space):
    config = sqlite_config(toy_space, FailingEvaluator(), tmp_path, trials=25, study_name="failing")
    study = run_search(config).study
    frame = trials_frame(study)
    reasons = " ".join(frame.loc[frame["state"] == "FAIL", "fail_reason"].astype(str))
    for expected in ("non-finite loss", "out of memory", "ValueError: attention mixer"):
        assert expected in reasons
    assert (frame["state"] == "COMPLETE").any()
    assert len(evaluated(study)) == 25
    result = CliRunner().invoke(app, ["show", f"sqlite:///{tmp_path / 'study.db'}"])
    assert result.exit_code == 0, result.output
    assert "failed trials" in result.output and "out of memory" in result.output


class AlwaysBroken(BaseEvaluator):
    name = "broken"

    def evaluate(self, arch, trial=None):
        raise KeyError("missing key in a custom evaluator")

    def settings(self):
        return {}


def test_a_systematically_broken_evaluator_stops_the_search(toy_space):
    config = SearchConfig(space=toy_space, evaluator=AlwaysBroken(), budget=10**12, trials=50)
    with pytest.raises(RuntimeError, match="10 evaluations in a row failed.*KeyError"):
        run_search(config)


def test_cli_workers_share_one_study(tmp_path):
    space_file = tmp_path / "toy.yaml"
    space_file.write_text(yaml.safe_dump(TOY_SPACE))
    out = tmp_path / "run"
    args = ["run", "--space", str(space_file), "--budget", "1G", "--trials", "8", "--evaluator", "synflow"]
    args += ["--set", "img_size=32", "--set", "batch_size=4", "--workers", "2", "--out", str(out), "--study", "two"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 workers" in result.output
    study = optuna.load_study(study_name="two", storage=workers.open_storage(f"sqlite:///{out / 'study.db'}"))
    assert_exactly(study, 8)
    assert (out / "pareto.csv").exists() and (out / "best.yaml").exists()


def test_each_extra_worker_samples_with_a_seed_of_its_own(toy_space, tmp_path):
    """One seed for all would make every worker draw the same architectures and wait on each other."""
    from vitsearch.search.live import with_worker_seed
    from vitsearch.search.plan import RunPlan

    plan = RunPlan.check(sqlite_config(toy_space, CountingEvaluator(BUDGET), tmp_path, seed=5, workers=3))
    assert [with_worker_seed(plan, i).config.seed for i in (1, 2)] == [6, 7]
    assert plan.config.seed == 5  # the main process keeps the run's seed
    unseeded = RunPlan.check(sqlite_config(toy_space, CountingEvaluator(BUDGET), tmp_path, seed=None, workers=3))
    assert with_worker_seed(unseeded, 1).config.seed is None
