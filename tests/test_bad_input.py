"""Bad input, case by case: exit 2, one line on stderr, no traceback, and nothing on disk changes.

``CASES`` is the table; README.md ("Bad input") mirrors it row for row (``test_readme_mirrors_the_table``).
Every case runs in its own copy of one working folder: a finished run directory (``run/``:
study.db, trials.csv, pareto.csv, best.yaml, the HTML pages), a supernet checkpoint, weight
files, a training run, and the bad input files themselves. The sha256 of every file and the
set of files and folders must be the same after the command as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from vitsearch.search.cli import app
from vitsearch.space import build_model, get_preset

runner = CliRunner()

SPACE = {
    "name": "toy",
    "stem": {"patch_size": 16},
    "head": ["cls", "mean"],
    "stages": [
        {
            "width": [64, 128],
            "depth": [1, 2],
            "layer": {"mixer": ["attention", "pool"], "head_dim": [32, 64], "mlp_ratio": [2, 4]},
        }
    ],
}
FAST = ("--evaluator", "grad_norm", "--data", "synthetic", "--set", "batch_size=4", "--set", "width_mult=0.25")
RUN = ("run", "--space", "toy.yaml", "--budget", "40M", "--out", "run")  # the existing run directory
STUDY = "toy-0.04G"  # its study (the default name: space and budget)


def _space(**layer) -> dict:
    stage = dict(SPACE["stages"][0], layer={**SPACE["stages"][0]["layer"], **layer})
    return {**SPACE, "stages": [stage]}


def _arch(**block) -> dict:
    return {
        "version": 1,
        "stem": {"type": "patch", "patch_size": 8},
        "stages": [{"width": 64, "depth": 2, "block": {"mixer": {"type": "attention", "heads": 2}, **block}}],
    }


TEXT_FILES = {
    "toy.yaml": yaml.safe_dump(SPACE),
    "other.yaml": yaml.safe_dump({**SPACE, "name": "other"}),
    "toy_edited.yaml": yaml.safe_dump(_space(mlp_ratio=[2, 3])),  # same name, other choices
    "space_mixer.yaml": yaml.safe_dump(_space(mixer=["attention", "transformer"])),
    "space_heads.yaml": yaml.safe_dump(_space(head_dim=[48])),
    "space_ratio.yaml": yaml.safe_dump(_space(mlp_ratio=[0, 4])),
    "space_syntax.yaml": "name: toy\nstages:\n  - width: [64, 128\n    depth: 1\n",
    "arch.yaml": yaml.safe_dump(_arch()),
    "arch_heads.yaml": yaml.safe_dump(
        {**_arch(), "stages": [{"width": 64, "depth": 2, "block": {"mixer": {"type": "attention", "heads": 5}}}]}
    ),
    "arch_ratio.yaml": yaml.safe_dump(_arch(mlp_ratio=-2)),
    "arch_syntax.yaml": "stages:\n- {width: 64, depth: 2\n",
    "arch_v99.yaml": yaml.safe_dump({**_arch(), "version": 99}),
    "space_key.yaml": yaml.safe_dump(
        {**SPACE, "stages": [{**{k: v for k, v in SPACE["stages"][0].items() if k != "depth"}, "depht": [1, 2]}]}
    ),
    "space_depth.yaml": yaml.safe_dump({**SPACE, "stages": [{**SPACE["stages"][0], "depth": [0, 2]}]}),
    "notes.txt": "a file where a folder is expected\n",
}


@dataclass(frozen=True)
class Case:
    id: str
    input: str  # what is wrong, in words (README's first column)
    args: tuple[str, ...]  # the command line after `vitsearch`, run in the working folder
    expect: str  # part of the one error line: the field and the problem


CASES = [
    Case("budget-words", "malformed budget", (*RUN, "--budget", "abc", *FAST), "--budget: cannot read 'abc'"),
    Case("budget-unit", "malformed budget (unit)", (*RUN, "--budget", "2GB", *FAST), "--budget: cannot read '2GB'"),
    Case("budget-negative", "negative budget", (*RUN, "--budget", "-1G", *FAST), "--budget: must be positive"),
    Case(
        "budget-overflow",
        "budget too large to represent",
        (*RUN, "--budget", "1e400", *FAST),
        "--budget: '1e400' is too large",
    ),
    Case(
        "budget-below-smallest",
        "budget below the smallest architecture of the space",
        (*RUN, "--budget", "1M", *FAST),
        "--budget: 0.001 GFLOPs is below the smallest architecture of space 'toy'",
    ),
    Case(
        "space-unknown-mixer",
        "unknown mixer in a space file",
        (*RUN, "--space", "space_mixer.yaml", *FAST),
        "space_mixer.yaml: stages[0].layer.mixer: unknown value 'transformer'",
    ),
    Case(
        "space-heads",
        "head dim that does not divide the width (space file)",
        (*RUN, "--space", "space_heads.yaml", *FAST),
        "space_heads.yaml: stages[0].layer.head_dim: 48 does not divide width 64",
    ),
    Case(
        "arch-heads",
        "heads that do not divide the width (architecture file)",
        ("flops", "arch_heads.yaml"),
        "arch_heads.yaml: stages[0].blocks[0].mixer.heads: 5 does not divide width 64",
    ),
    Case(
        "space-ratio",
        "zero MLP ratio (space file)",
        (*RUN, "--space", "space_ratio.yaml", *FAST),
        "space_ratio.yaml: stages[0].layer.mlp_ratio: must be positive, got 0.0",
    ),
    Case(
        "arch-ratio",
        "negative MLP ratio (architecture file)",
        ("flops", "arch_ratio.yaml"),
        "arch_ratio.yaml: stages[0].blocks[0].mlp_ratio: must be positive, got -2.0",
    ),
    Case(
        "space-yaml",
        "YAML syntax error (space file)",
        (*RUN, "--space", "space_syntax.yaml", *FAST),
        "space_syntax.yaml: not valid YAML",
    ),
    Case(
        "arch-yaml",
        "YAML syntax error (architecture file)",
        ("flops", "arch_syntax.yaml"),
        "arch_syntax.yaml: not valid YAML",
    ),
    Case(
        "data-missing",
        "missing data path (search)",
        (*RUN, "--evaluator", "grad_norm", "--data", "/nonexistent"),
        "data '/nonexistent': not a known dataset or an existing folder",
    ),
    Case(
        "data-missing-cifar",
        "missing CIFAR folder (search)",
        (*RUN, "--evaluator", "proxy", "--data", "cifar10:/nonexistent"),
        "data 'cifar10:/nonexistent': no CIFAR10",
    ),
    Case(
        "data-missing-folder",
        "missing image folder (training)",
        ("train", "arch.yaml", "--data", "folder:/nonexistent", "--img-size", "32", "--out", "trained"),
        "data 'folder:/nonexistent': /nonexistent is not a folder",
    ),
    Case(
        "data-missing-supernet",
        "missing data path (supernet training)",
        ("supernet", "train", "--space", "toy.yaml", "--data", "/nonexistent", "--out", "supernet2"),
        "data '/nonexistent': not a known dataset or an existing folder",
    ),
    Case(
        "supernet-truncated-eval",
        "truncated supernet checkpoint (supernet eval)",
        ("supernet", "eval", "supernet", "arch.yaml"),
        "supernet/supernet.safetensors: not a readable safetensors file",
    ),
    Case(
        "supernet-corrupted-eval",
        "supernet checkpoint with changed bytes (supernet eval)",
        ("supernet", "eval", "supernet_flipped", "arch.yaml"),
        "supernet_flipped/supernet.safetensors: does not match the checksum in supernet.json",
    ),
    Case(
        "supernet-truncated-run",
        "truncated supernet checkpoint (search)",
        (*RUN, "--evaluator", "supernet", "--supernet", "supernet"),
        "supernet/supernet.safetensors: not a readable safetensors file",
    ),
    Case(
        "supernet-other-space",
        "a space the supernet was not trained over (search)",
        (
            "run",
            "--space",
            "full",
            "--budget",
            "40M",
            "--out",
            "run",
            "--evaluator",
            "supernet",
            "--supernet",
            "supernet_flipped",
        ),
        "--space: 'full' is not the space the supernet in supernet_flipped was trained over ('toy')",
    ),
    Case(
        "weights-truncated-safetensors",
        "truncated safetensors weights (export)",
        ("export", "arch.yaml", "--deploy", "--weights", "truncated.safetensors", "-o", "deploy"),
        "truncated.safetensors: not a readable safetensors file",
    ),
    Case(
        "weights-truncated-pt",
        "truncated torch checkpoint (export)",
        ("export", "arch.yaml", "--deploy", "--weights", "truncated.pt", "-o", "deploy"),
        "truncated.pt: not a safetensors file or a weights-only torch checkpoint",
    ),
    Case(
        "resume-truncated",
        "truncated last.pt (train --resume)",
        ("train", "arch.yaml", "--data", "synthetic", "--img-size", "32", "--out", "train", "--resume"),
        "train/last.pt: cannot resume from this checkpoint",
    ),
    Case(
        "study-other-space",
        "an existing study of another space under the same study name",
        (*RUN, "--space", "other.yaml", "--study", STUDY, *FAST),
        f"--study: study '{STUDY}' was run with different space",
    ),
    Case(
        "study-edited-space",
        "an existing study whose space file was edited (same space name)",
        (*RUN, "--space", "toy_edited.yaml", *FAST),
        f"--study: study '{STUDY}' was run with different space_choices",
    ),
    Case(
        "out-under-file",
        "output folder under an existing file",
        (*RUN, "--out", "notes.txt/run", *FAST),
        "--out: notes.txt is a file, not a folder",
    ),
    Case(
        "out-read-only",
        "output folder under a read-only folder (chmod 0o500)",
        (*RUN, "--out", "locked/run", *FAST),
        "--out: locked is not writable",
    ),
    Case("sampler", "unknown sampler", (*RUN, *FAST, "--sampler", "grid"), "--sampler: unknown 'grid'"),
    Case("evaluator", "unknown evaluator", (*RUN, "--evaluator", "oracle"), "--evaluator: unknown evaluator 'oracle'"),
    Case("pruner", "unknown pruner", (*RUN, *FAST, "--pruner", "never"), "--pruner: unknown pruner 'never'"),
    Case(
        "arch-version",
        "architecture file from a newer format version",
        ("flops", "arch_v99.yaml"),
        "arch_v99.yaml: version: 99 is from a newer vitsearch (this one reads version 1)",
    ),
    Case(
        "best-version",
        "a run's best.yaml with another format version",
        ("flops", "run_v2/best.yaml"),
        "run_v2/best.yaml: version: 2 is from a newer vitsearch (this one reads version 1)",
    ),
    Case(
        "space-unknown-key",
        "misspelt key in a space file",
        (*RUN, "--space", "space_key.yaml", *FAST),
        "space_key.yaml: stages[0].depht: unknown field (allowed: depth, downsample, layer, mixer_options, width)",
    ),
    Case(
        "space-impossible-range",
        "depth range that includes 0 (space file)",
        (*RUN, "--space", "space_depth.yaml", *FAST),
        "space_depth.yaml: stages[0].depth: depths must be at least 1",
    ),
    Case(
        "study-truncated-show",
        "truncated study.db (show)",
        ("show", "run_cut"),
        "--storage: cannot open sqlite:///run_cut/study.db: database disk image is malformed",
    ),
    Case(
        "study-truncated-run",
        "truncated study.db (run, resuming it)",
        ("run", "--space", "toy.yaml", "--budget", "40M", "--out", "run_cut", *FAST),
        "--storage: cannot open sqlite:///run_cut/study.db: database disk image is malformed",
    ),
]


# --- the working folder -------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _quiet_optuna():
    # As cli.main() does before running a command: Optuna's INFO lines are not for the user.
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The working folder every case starts from (built once, copied per case)."""
    from vitsearch.evaluators.supernet import Supernet, SupernetProfile
    from vitsearch.evaluators.supernet.checkpoint import save_checkpoint
    from vitsearch.space.search_space import SearchSpace
    from vitsearch.space.weights import save_weights

    root = tmp_path_factory.mktemp("bad_input") / "ws"
    root.mkdir()
    for name, text in TEXT_FILES.items():
        (root / name).write_text(text)

    run = ["run", "--space", str(root / "toy.yaml"), "--budget", "40M", "--trials", "2", "--out", str(root / "run")]
    done = runner.invoke(app, [*run, *FAST])
    assert done.exit_code == 0, done.output
    assert {"study.db", "trials.csv", "pareto.csv", "best.yaml", "pareto.html"} <= set(os.listdir(root / "run"))
    shutil.copytree(root / "run", root / "run_cut")  # the same run, its study.db cut in half
    _truncate(root / "run_cut" / "study.db")
    (root / "run_v2").mkdir()  # a best.yaml written by a later format
    best = yaml.safe_load((root / "run" / "best.yaml").read_text())
    (root / "run_v2" / "best.yaml").write_text(yaml.safe_dump({**best, "version": 2}))

    net = Supernet(SearchSpace.from_dict(SPACE), SupernetProfile(img_size=32, in_chans=3, num_classes=4), seed=0)
    for name in ("supernet", "supernet_flipped"):
        save_checkpoint(root / name, net, {"step": 1, "data": "synthetic"})
    _truncate(root / "supernet" / "supernet.safetensors")
    weights = root / "supernet_flipped" / "supernet.safetensors"
    data = weights.read_bytes()  # the tensors come last: change their bytes, keep the size and header
    weights.write_bytes(data[:-16] + bytes(b ^ 0xFF for b in data[-16:]))

    model = build_model(get_preset("test_vit"), img_size=32, num_classes=4)
    save_weights(model, root / "truncated.safetensors", "train")
    _truncate(root / "truncated.safetensors")
    torch.save(model.state_dict(), root / "truncated.pt")
    _truncate(root / "truncated.pt")
    (root / "train").mkdir()  # a training run whose last.pt was cut short
    torch.save({"model": model.state_dict(), "epoch": 1, "meta": {}}, root / "train" / "last.pt")
    _truncate(root / "train" / "last.pt")
    (root / "train" / "arch.yaml").write_text(TEXT_FILES["arch.yaml"])

    (root / "locked").mkdir()
    (root / "locked").chmod(0o500)
    return root


@pytest.fixture
def workspace(template, tmp_path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(template, root)  # keeps modes: locked/ stays 0o500
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file's sha256 and every folder, by path relative to ``root``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(root.rglob("*"))
    }


def _writes_through(folder: Path) -> bool:
    """True where permissions do not stop writes (root, some file systems)."""
    probe = folder / ".probe"
    try:
        probe.write_text("")
    except PermissionError:
        return False
    probe.unlink()
    return True


# --- the table, one test per row ----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, workspace, monkeypatch):
    if case.id == "out-read-only" and _writes_through(workspace / "locked"):
        pytest.skip(
            "chmod 0o500 does not stop writes here (root); "
            "test_read_only_out_as_a_normal_user_sees_it and out-under-file cover --out"
        )
    before = snapshot(workspace)
    monkeypatch.chdir(workspace)
    result = runner.invoke(app, list(case.args))
    trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    assert result.exit_code == 2, f"{result.output}\n{trace}"
    assert isinstance(result.exception, SystemExit), trace
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert [line for line in result.output.splitlines() if line.strip()] == lines, "more than the error was printed"
    assert lines[0].startswith("error: ") and case.expect in lines[0], lines[0]
    assert "Traceback" not in result.output
    after = snapshot(workspace)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"changed on disk: {changed}"


def test_read_only_out_as_a_normal_user_sees_it(workspace, monkeypatch):
    """The out-read-only row where root writes through chmod: os.access answers as for a normal user."""
    locked = (workspace / "locked").resolve()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and Path(p).resolve() != locked)
    case = next(c for c in CASES if c.id == "out-read-only")
    before = snapshot(workspace)
    monkeypatch.chdir(workspace)
    result = runner.invoke(app, list(case.args))
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {case.expect}", result.output
    assert snapshot(workspace) == before


def test_snapshot_sees_every_kind_of_change(workspace):
    """The harness itself: a changed file, a new empty file and a new empty folder all show."""
    changes = (
        lambda: (workspace / "run" / "best.yaml").write_text("stages: []\n"),
        lambda: (workspace / "run" / "new.csv").write_text(""),
        lambda: (workspace / "run" / "new").mkdir(),
    )
    for change in changes:
        before = snapshot(workspace)
        change()
        assert snapshot(workspace) != before


@pytest.mark.parametrize("case_id", ["study-edited-space", "arch-version"])
def test_the_real_entry_point_prints_one_line(case_id, workspace):
    """Through ``python -m vitsearch.search.cli`` (main(): warnings, Optuna's logging), not CliRunner."""
    import subprocess
    import sys

    case = next(c for c in CASES if c.id == case_id)
    before = snapshot(workspace)
    done = subprocess.run(
        [sys.executable, "-m", "vitsearch.search.cli", *case.args],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and case.expect in lines[0], done.stderr
    assert done.stdout.strip() == ""
    assert snapshot(workspace) == before


def test_readme_mirrors_the_table():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Bad input\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| input |")]
    assert len(rows) == len(CASES), "one README row per case, in the same order"
    for case, row in zip(CASES, rows, strict=True):
        cells = [cell.strip() for cell in row.strip("| ").split(" | ")]
        assert cells[0] == case.input, (case.id, row)
        assert case.expect in cells[2].replace("\\|", "|"), (case.id, row)
        assert cells[3] == "2", (case.id, row)
