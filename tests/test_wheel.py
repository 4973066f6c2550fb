"""The wheel as users install it: the shipped spaces are package data, the study scripts are not in it.

The wheel is built from a copy of the source (a ``build/`` folder left in the checkout by an older
build would leak stale files into it), installed with ``--no-deps`` into a fresh venv that borrows
the dependencies of the running one, and run from an empty folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("space", "evaluators", "search")


def source_copy(dest: Path) -> Path:
    """What the build reads: the metadata, the three packages, and studies/ (scripts and inputs, no data)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    caches = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=caches)

    def scripts_only(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if not (Path(folder, n).is_dir() or n.endswith((".py", ".yaml")))} | {"__pycache__"}

    shutil.copytree(ROOT / "studies", dest / "studies", ignore=scripts_only)
    return dest


@pytest.mark.slow
def test_the_wheel_ships_the_space_yamls_and_no_study_scripts(tmp_path):
    source = source_copy(tmp_path / "source")
    assert list((source / "studies").glob("*.py"))  # the scripts were there to leave out
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)]
    subprocess.run([*build, str(source)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = dist.glob("vitsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    spaces = sorted(p.name for p in (ROOT / "space" / "spaces").glob("*.yaml"))
    assert {"full.yaml", "psvit.yaml", "riformer.yaml", "scheme.yaml", "stage.yaml", "vix.yaml"} <= set(spaces)
    assert {f"vitsearch/space/spaces/{name}" for name in spaces} <= set(names)
    assert {n.split("/")[1] for n in names if n.startswith("vitsearch/")} == set(PACKAGES)
    assert not [n for n in names if "studies" in n.split("/")], "a study file is in the wheel"
    assert not [n for n in names if n.endswith(".yaml") and not n.startswith("vitsearch/space/spaces/")]
    assert "supernet/small.yaml" not in " ".join(names)  # a study input, not a shipped space

    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the dependencies (torch, optuna...) from the running venv, after the fresh env's own packages
    Path(purelib, "borrowed_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)]
    subprocess.run(install, check=True, capture_output=True)

    empty = tmp_path / "empty"
    empty.mkdir()
    code = (
        "import importlib.util, vitsearch.search.spaces as s; "
        "print(s.spaces_dir()); print(s.resolve_space('full').name); "
        "print(importlib.util.find_spec('vitsearch.studies'))"
    )
    done = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, cwd=empty)
    where, name, studies = done.stdout.split()
    assert Path(where) == Path(purelib).resolve() / "vitsearch" / "space" / "spaces"  # not the checkout
    assert (name, studies) == ("full", "None")
    listing = subprocess.run(
        [env / "bin" / "vitsearch", "spaces"], check=True, capture_output=True, text=True, cwd=empty
    )
    assert all(Path(n).stem in listing.stdout for n in spaces), listing.stdout
