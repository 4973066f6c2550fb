"""One test per private Optuna member in ``search/optuna_private.py``: an Optuna upgrade that moves one fails here."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from vitsearch.search import optuna_private as private


@pytest.fixture
def study():
    storage = optuna.storages.InMemoryStorage()
    return optuna.create_study(storage=storage, study_name="compat", sampler=optuna.samplers.RandomSampler(seed=0))


def test_trial_id_is_the_storage_id_of_live_and_frozen_trials(study):
    study.ask()  # number 0, so that ids and numbers could differ across studies
    other = optuna.create_study(storage=private.storage_of(study), study_name="other")
    trial = other.ask()
    stored = private.storage_of(study).get_trial_id_from_study_id_trial_number(private.study_id(other), trial.number)
    assert private.trial_id(trial) == stored != trial.number
    frozen = other.get_trials(deepcopy=False)[0]
    assert private.trial_id(frozen) == stored


def test_storage_of_is_the_storage_the_study_was_created_with():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    assert private.storage_of(study) is storage


def test_study_id_is_the_storage_id_of_the_study(study):
    assert private.study_id(study) == private.storage_of(study).get_study_id_from_name("compat")


def test_forget_cached_trials_makes_samplers_see_new_trials(study):
    study.ask()
    study._thread_local.cached_all_trials = []  # what a sampler would read after an earlier ask
    private.forget_cached_trials(study)
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 1


def test_pop_waiting_trial_id_takes_the_enqueued_trial_and_marks_it_running(study):
    assert private.pop_waiting_trial_id(study) is None
    study.enqueue_trial({"x": 1.0})
    popped = private.pop_waiting_trial_id(study)
    trial = private.storage_of(study).get_trial(popped)
    assert trial.state == TrialState.RUNNING and trial.system_attrs["fixed_params"] == {"x": 1.0}
    assert private.pop_waiting_trial_id(study) is None


def test_create_running_trial_writes_the_template_in_one_call(study):
    template = optuna.trial.create_trial(state=TrialState.RUNNING, system_attrs={"beat": 1})
    created = private.create_running_trial(study, template)
    trial = private.storage_of(study).get_trial(created)
    assert trial.state == TrialState.RUNNING and trial.system_attrs == {"beat": 1}
    assert optuna.Trial(study, created).number == trial.number == 0


def _sqlite_study(tmp_path, name="batched"):
    from vitsearch.search.workers import open_storage

    return optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"), study_name=name)


@pytest.mark.parametrize("kind", ["sqlite", "memory", "sqlite-separate"])
def test_batched_writes_reach_the_storage_together_at_the_end(kind, tmp_path, monkeypatch):
    if kind == "sqlite-separate":  # the public API's way, for measuring what one transaction saves
        monkeypatch.setenv(private.WRITES_ENV, "separate")
        kind = "sqlite"
    study = _sqlite_study(tmp_path) if kind == "sqlite" else optuna.create_study()
    trial = study.ask()
    storage = private.storage_of(study)
    with private.batched_writes(trial):
        assert trial.suggest_categorical("a", [1, 2, 3]) in (1, 2, 3)
        trial.suggest_categorical("b", ["x", "y"])
        trial.set_user_attr("arch", {"depth": 2})
        trial.set_constraint("flops", -0.5)
        assert trial.params.keys() == {"a", "b"}  # the trial sees its own writes
        if kind == "sqlite":  # (InMemoryStorage hands Trial its own FrozenTrial, so it sees them at once)
            assert storage.get_trial(private.trial_id(trial)).params == {}  # the storage not yet
    stored = storage.get_trial(private.trial_id(trial))
    assert stored.params == trial.params and stored.user_attrs == {"arch": {"depth": 2}}
    assert stored.constraints == {"flops": -0.5}
    assert stored.distributions["a"] == optuna.distributions.CategoricalDistribution([1, 2, 3])


def test_batched_writes_write_nothing_when_the_block_raises(tmp_path):
    study = _sqlite_study(tmp_path)
    trial = study.ask()
    with pytest.raises(RuntimeError), private.batched_writes(trial):
        trial.suggest_categorical("a", [1, 2])
        raise RuntimeError("interrupted")
    assert private.storage_of(study).get_trial(private.trial_id(trial)).params == {}
    assert "a" in trial.params  # kept in memory: what a re-queue reads


def test_batched_writes_check_distributions_as_one_write_at_a_time_does(tmp_path):
    study = _sqlite_study(tmp_path)
    first = study.ask()
    first.suggest_categorical("a", [1, 2])
    other = optuna.load_study(study_name="batched", storage=f"sqlite:///{tmp_path / 's.db'}")  # a fresh cache
    trial = other.ask()
    with pytest.raises(ValueError, match="dynamic value space"), private.batched_writes(trial):
        trial.suggest_categorical("a", [1, 2, 3])


def test_batched_writes_write_early_with_extra_system_attrs_then_go_straight_to_the_storage(tmp_path):
    study = _sqlite_study(tmp_path)
    trial = study.ask()
    storage = private.storage_of(study)
    with private.batched_writes(trial) as write:
        trial.suggest_categorical("a", [1, 2])
        write(claim="evaluate")
        stored = storage.get_trial(private.trial_id(trial))
        assert stored.params == trial.params and stored.system_attrs["claim"] == "evaluate"
        trial.set_user_attr("late", 1)
        assert storage.get_trial(private.trial_id(trial)).user_attrs == {"late": 1}


def test_an_unknown_writes_mode_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(private.WRITES_ENV, "sometimes")
    with pytest.raises(ValueError, match=r"\$VITSEARCH_TRIAL_WRITES: unknown 'sometimes'"):
        private.writes_mode()
