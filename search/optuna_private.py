"""Every private member of Optuna that vitsearch touches, and nowhere else.

Optuna's public API has no way to create a trial with attributes already set in the same write
(``workers.ask_held`` needs that for crash safety) nor to address a trial in the storage by
id. The members below are those of the range pinned in ``pyproject.toml`` (``optuna>=5.0,<6``);
``tests/search/test_optuna_private.py`` checks each one, so an Optuna upgrade that moves one
fails there and only there.
"""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (``Trial._trial_id``, ``FrozenTrial._trial_id``), not its number."""
    return trial._trial_id


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (``Study._storage``)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The storage's id of a study (``Study._study_id``)."""
    return study._study_id


def forget_cached_trials(study: optuna.Study) -> None:
    """Drop this thread's cached trial list (``Study._thread_local.cached_all_trials``), as ``Study.ask`` does.

    Samplers read the study through that cache; without this they would sample from the
    trials as they were at the previous ``ask`` of this thread.
    """
    study._thread_local.cached_all_trials = None


def pop_waiting_trial_id(study: optuna.Study) -> int | None:
    """Take the oldest WAITING (enqueued) trial and mark it RUNNING, as ``Study.ask`` does; None if none waits."""
    return study._pop_waiting_trial_id()


def create_running_trial(study: optuna.Study, template: FrozenTrial) -> int:
    """A new trial of ``study`` written from ``template`` in one storage call; its id."""
    return storage_of(study).create_new_trial(study_id(study), template_trial=template)
