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
