"""Load a study script (``studies/*.py``, not part of the package) as a module, for its tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def load_study(relative: str) -> ModuleType:
    """``relative``: the script's path under ``studies/``, e.g. ``"fidelity/table.py"``."""
    path = STUDIES / relative
    spec = importlib.util.spec_from_file_location(path.stem.replace("/", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
