"""The study scripts are thin clients of the package: no script imports another or a private name,
none touches ``sys.path``, and none is over 400 lines (shared logic lives in the package, tested)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parents[2] / "studies"
SCRIPTS = sorted(STUDIES.rglob("*.py"))
SCRIPT_NAMES = {p.stem for p in SCRIPTS}


def imports(tree: ast.AST) -> list[tuple[str, str]]:
    """``(module, name)`` of every import (``name`` empty for ``import module``)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out += [("." * node.level + (node.module or ""), alias.name) for alias in node.names]
    return out


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.relative_to(STUDIES).as_posix())
def test_a_script_imports_only_public_package_names_and_no_other_script(path):
    text = path.read_text()
    tree = ast.parse(text)
    assert "sys.path" not in text
    for module, name in imports(tree):
        parts = module.split(".")
        assert not module.startswith(".") and parts[0] not in SCRIPT_NAMES | {"studies"}, f"imports {module}"
        private = [p for p in [*parts, name] if p.startswith("_") and p != "__future__"]
        assert not private, f"{module} {name}: a private name"
    assert len(text.splitlines()) <= 400, "over 400 lines: move reusable logic into the package"
