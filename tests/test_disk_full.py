"""A full disk: one line naming the file, no half-written file in place of a whole one, and the same command resumes.

The run cases mount a small tmpfs (root only; they skip with one line elsewhere) and fill it, as a
disk fills under a long search; ``test_a_failed_write_leaves_the_old_file`` injects the fault and
runs everywhere.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from vitsearch.space.files import atomic_write_text, is_disk_full

TOY = {
    "name": "toy",
    "stem": {"patch_size": 16},
    "head": ["cls", "mean"],
    "stages": [{"width": [64, 128], "depth": [1, 2], "layer": {"mixer": ["attention", "pool"], "mlp_ratio": [2, 4]}}],
}


def test_a_failed_write_leaves_the_old_file_and_names_it(tmp_path, monkeypatch):
    target = tmp_path / "trials.csv"
    atomic_write_text(target, "old,whole\n")

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as err:
        atomic_write_text(target, "new\n" * 1000)
    assert err.value.filename == str(target) and err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert target.read_text() == "old,whole\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trials.csv"]  # no temporary file left behind


def test_writers_own_words_for_a_full_disk_are_recognised():
    assert is_disk_full(RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing"
                                     " file data/0: file write failed"))  # fmt: skip
    wrapped = RuntimeError("An exception is raised during the commit.")
    wrapped.__cause__ = Exception("(sqlite3.OperationalError) database or disk is full")
    assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


@pytest.fixture
def small_disk(tmp_path) -> Path:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({(mounted.stderr or 'not root').strip()}); "
                    "the fault-injection test covers the write")  # fmt: skip
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Write a file until the disk is full, then give ``leave`` bytes back; deleting it frees the space."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
        except OSError as err:
            assert err.errno == errno.ENOSPC
    if leave:
        os.truncate(filler, filler.stat().st_size - leave)
    return filler


def run(tmp_path: Path, out: Path, storage: str, trials: int) -> subprocess.CompletedProcess:
    space = tmp_path / "toy.yaml"
    space.write_text(yaml.safe_dump(TOY))
    command = [sys.executable, "-m", "vitsearch.search.cli", "run", "--space", str(space), "--budget", "1000G"]
    command += ["--trials", str(trials), "--evaluator", "synflow", "--set", "img_size=32", "--set", "batch_size=2"]
    command += ["--storage", storage, "--study", "full", "--out", str(out), "--no-baselines", "--rungs", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def finished(storage: str) -> dict[int, tuple]:
    study = optuna.load_study(study_name="full", storage=storage)
    return {t.number: (t.state, t.values) for t in study.trials if t.state.is_finished()}


def evaluated(storage: str) -> int:
    study = optuna.load_study(study_name="full", storage=storage)
    return sum(1 for t in study.trials if t.user_attrs.get("result", {}).get("evaluated"))


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@pytest.mark.slow
def test_outputs_on_a_full_disk(small_disk, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"  # the study elsewhere: only the outputs hit the full disk
    out = small_disk / "run"
    assert run(tmp_path, out, storage, trials=3).returncode == 0
    before = (out / "trials.csv").read_text()
    filler = fill(small_disk)
    line = one_error_line(run(tmp_path, out, storage, trials=6))
    assert str(out) in line and "no space left on device" in line.lower()
    assert (out / "trials.csv").read_text() == before  # the old outputs, whole
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    study_before = finished(storage)
    filler.unlink()
    assert run(tmp_path, out, storage, trials=6).returncode == 0  # the same command, with space again
    assert all(finished(storage)[n] == s for n, s in study_before.items())
    assert evaluated(storage) == 6 and len((out / "trials.csv").read_text().splitlines()) > len(before.splitlines())


@pytest.mark.slow
def test_the_sqlite_study_on_a_full_disk(small_disk, tmp_path):
    storage = f"sqlite:///{small_disk / 'study.db'}"
    out = tmp_path / "run"
    assert run(tmp_path, out, storage, trials=3).returncode == 0
    before = finished(storage)
    filler = fill(small_disk)
    line = one_error_line(run(tmp_path, out, storage, trials=8))
    assert line.startswith(f"error: --storage: {storage}: no space left on device"), line
    filler.unlink()
    assert all(finished(storage)[n] == s for n, s in before.items())  # nothing finished was lost
    assert run(tmp_path, out, storage, trials=8).returncode == 0
    assert evaluated(storage) == 8


@pytest.mark.slow
def test_a_training_checkpoint_on_a_full_disk(small_disk, tmp_path):
    arch = tmp_path / "arch.yaml"
    block = {"mixer": {"type": "attention"}}
    arch.write_text(yaml.safe_dump({"version": 1, "stages": [{"width": 64, "depth": 2, "block": block}]}))
    out = small_disk / "train"
    command = [sys.executable, "-m", "vitsearch.search.cli", "train", str(arch), "--data", "synthetic"]
    command += ["--img-size", "32", "--epochs", "2", "--train-subset", "64", "--val-subset", "32", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out.mkdir()
    filler = fill(small_disk, leave=64 * 1024)  # room for the small files, not for the weights
    line = one_error_line(subprocess.run(command, env=env, capture_output=True, text=True))
    assert line.startswith(f"error: {out}/") and ".pt: no space left on device" in line, line
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    filler.unlink()
    done = subprocess.run(command, env=env, capture_output=True, text=True)  # the same command, with space again
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "last.pt").exists()
