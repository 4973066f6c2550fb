"""Every private member of Optuna that vitsearch touches, and nowhere else.

Optuna's public API has no way to create a trial with attributes already set in the same write
(``workers.ask_held`` needs that for crash safety) nor to address a trial in the storage by
id. The members below are those of the range pinned in ``pyproject.toml`` (``optuna>=5.0,<6``);
``tests/search/test_optuna_private.py`` checks each one, so an Optuna upgrade that moves one
fails there and only there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
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


# --- one transaction for a trial's many writes ---------------------------------------------------
#
# Sampling the full space suggests ~100 choices, and ``Trial._suggest`` writes each one at once
# (``storage.set_trial_param``): on SQLite ~100 commits per trial, 39 of the driver's 93 ms per
# trial at 1,000 trials (studies/bench_driver.py). ``batched_writes`` points the trial's
# ``Trial.storage`` at a buffer for the duration and writes what it collected in one session
# of the RDB backend: the checks of ``RDBStorage._set_trial_param_without_commit`` made once
# per trial (one trial lookup, distributions compared in memory), the ``models.TrialParamModel``
# rows added, attrs through ``_set_trial_attr_without_commit``, then one commit,
# updating ``_CachedStorage``'s per-study distribution cache as its ``set_trial_param`` does.
# Other storages get the writes replayed one by one, and so does an RDB storage with
# ``$VITSEARCH_TRIAL_WRITES=separate``: each write its own call and commit, as Optuna's public API
# makes them, so ``studies/bench_driver.py --separate-writes`` measures what this path saves.

WRITES_ENV = "VITSEARCH_TRIAL_WRITES"
WRITES_MODES = ("batched", "separate")


def writes_mode() -> str:
    """``batched`` (default: one transaction per trial on an RDB storage) or ``separate``."""
    mode = os.environ.get(WRITES_ENV, "batched")
    if mode not in WRITES_MODES:
        raise ValueError(f"${WRITES_ENV}: unknown {mode!r} (choose from {', '.join(WRITES_MODES)})")
    return mode


class _WriteBuffer:
    """Stands in for the storage of one trial: its param and attr writes are kept, all else passes."""

    def __init__(self, storage: BaseStorage, trial_id: int):
        self._storage, self._trial_id = storage, trial_id
        self.writes: list[tuple[str, tuple]] = []
        self._system_attrs: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def _keep(self, method: str, trial_id: int, *args: Any) -> bool:
        if trial_id != self._trial_id:
            return False
        self.writes.append((method, args))
        return True

    def set_trial_param(self, trial_id: int, name: str, internal: float, distribution: BaseDistribution) -> None:
        if not self._keep("param", trial_id, name, internal, distribution):
            self._storage.set_trial_param(trial_id, name, internal, distribution)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if not self._keep("user", trial_id, key, value):
            self._storage.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if self._keep("system", trial_id, key, value):
            self._system_attrs[key] = value  # Trial.set_constraint reads them back before writing
        else:
            self._storage.set_trial_system_attr(trial_id, key, value)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        attrs = self._storage.get_trial_system_attrs(trial_id)
        return {**attrs, **self._system_attrs} if trial_id == self._trial_id else attrs


@contextlib.contextmanager
def batched_writes(trial: optuna.Trial) -> Iterator[Callable[..., None]]:
    """The params and attrs ``trial`` sets inside the block reach the storage in one transaction.

    Yields ``write(**system_attrs)``: commits what was collected, with ``system_attrs`` added,
    and ends the batching (later writes go straight to the storage); the block's end writes
    what it did not. Nothing is written if the block raises: the trial is failed by the
    caller, and a re-queue reads its parameters from ``trial.params``, which ``Trial`` keeps
    in memory as it suggests.
    """
    storage, held = trial.storage, trial_id(trial)
    buffer = _WriteBuffer(storage, held)

    def write(**system_attrs: Any) -> None:
        trial.storage = storage
        writes = buffer.writes + [("system", item) for item in system_attrs.items()]
        buffer.writes = []
        if writes:
            _commit(storage, held, writes)

    trial.storage = buffer
    try:
        yield write
    except BaseException:
        trial.storage = storage
        raise
    write()


def _commit(storage: BaseStorage, trial_id: int, writes: list[tuple[str, tuple]]) -> None:
    from optuna.storages import RDBStorage
    from optuna.storages._cached_storage import _CachedStorage

    backend = storage._backend if isinstance(storage, _CachedStorage) else storage
    if not isinstance(backend, RDBStorage) or writes_mode() == "separate":
        replay = {"param": storage.set_trial_param, "user": storage.set_trial_user_attr}
        for method, args in writes:
            replay.get(method, storage.set_trial_system_attr)(trial_id, *args)
        return
    outage = getattr(backend, "outage", None)  # a database server's storage retries a lost connection
    if outage is None:
        _commit_rdb(storage, backend, trial_id, writes)
    else:
        outage.call(lambda: _commit_rdb(storage, backend, trial_id, writes))


def _commit_rdb(storage: BaseStorage, backend: Any, trial_id: int, writes: list[tuple[str, tuple]]) -> None:
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    known = _known_distributions(storage, trial_id)
    params = [args for method, args in writes if method == "param"]
    attr_models = {"user": models.TrialUserAttributeModel, "system": models.TrialSystemAttributeModel}
    with _create_scoped_session(backend.scoped_session, True) as session:
        if params:  # _set_trial_param_without_commit's checks, made once per trial instead of once per param
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
            backend.check_trial_is_updatable(trial_id, trial.state)
            rows = []
            for name, internal, distribution in params:
                previous = known.get(name) or _stored_distribution(session, trial.study_id, name)
                if previous is not None:
                    optuna.distributions.check_distribution_compatibility(previous, distribution)
                json = optuna.distributions.distribution_to_json(distribution)
                rows.append(
                    {"trial_id": trial_id, "param_name": name, "param_value": internal, "distribution_json": json}
                )
            session.execute(sqlalchemy.insert(models.TrialParamModel), rows)  # one executemany
        for method, args in writes:
            if method != "param":
                backend._set_trial_attr_without_commit(session, attr_models[method], trial_id, *args)
    with getattr(storage, "_lock", contextlib.nullcontext()):  # _CachedStorage's, which guards ``known``
        for name, _, distribution in params:
            known.setdefault(name, distribution)


def _stored_distribution(session: Any, study_id: int, name: str) -> BaseDistribution | None:
    """The distribution param ``name`` has in the study, if any of its trials has it (one query)."""
    from optuna.storages._rdb import models

    record = (
        session.query(models.TrialParamModel)
        .join(models.TrialModel)
        .filter(models.TrialModel.study_id == study_id)
        .filter(models.TrialParamModel.param_name == name)
        .first()
    )
    return None if record is None else optuna.distributions.json_to_distribution(record.distribution_json)


def _known_distributions(storage: BaseStorage, trial_id: int) -> dict[str, BaseDistribution]:
    """``_CachedStorage``'s distributions per param name of the trial's study (checked once, then cached)."""
    from optuna.storages._cached_storage import _CachedStorage

    if not isinstance(storage, _CachedStorage):
        return {}
    with storage._lock:
        study = storage._trial_id_to_study_id_and_number.get(trial_id, (None,))[0]
        return storage._studies[study].param_distribution if study in storage._studies else {}
