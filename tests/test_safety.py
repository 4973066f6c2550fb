"""Configs and weights are data: the package sources never evaluate, unpickle or load YAML unsafely.

Configs go through ``yaml.safe_load`` (or JSON), weights through safetensors or
``torch.load(..., weights_only=True)``. The check walks the syntax tree of every source file
(``space/``, ``evaluators/``, ``search/``, ``studies/**/*.py``), so ``model.eval()`` (a method) and
docstrings that mention pickle are not hits, while ``eval(...)``, ``import pickle``,
``yaml.load(...)`` or a ``torch.load`` without ``weights_only=True`` are, each named by file:line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    [p for folder in ("space", "evaluators", "search") for p in (ROOT / folder).rglob("*.py")]
    + list((ROOT / "studies").rglob("*.py"))
)

BUILTINS = {"eval", "exec"}  # run arbitrary code
PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
UNSAFE_YAML |= {"Loader", "UnsafeLoader", "FullLoader"}  # what yaml.load(..., Loader=...) would take


def _dotted(node: ast.AST) -> str:
    """``yaml.load`` for ``Attribute(Name('yaml'), 'load')``; '' for anything not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: what`` for every unsafe evaluation, unpickling or YAML load in ``source``."""
    hits: list[str] = []

    def hit(node: ast.AST, what: str) -> None:
        hits.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PICKLING_MODULES:
                    hit(node, f"import {alias.name} (unpickling)")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in PICKLING_MODULES:
                hit(node, f"from {module} import ... (unpickling)")
            names = {alias.name for alias in node.names}
            if module == "yaml" and names & UNSAFE_YAML:
                hit(node, f"from yaml import {', '.join(sorted(names & UNSAFE_YAML))} (use yaml.safe_load)")
            if module == "torch" and "load" in names:
                hit(node, "from torch import load (call torch.load(..., weights_only=True))")
            if module == "builtins" and names & BUILTINS:
                hit(node, f"from builtins import {', '.join(sorted(names & BUILTINS))}")
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if name.startswith("yaml.") and node.attr in UNSAFE_YAML:
                hit(node, f"{name} (use yaml.safe_load)")
            if name in ("pandas.read_pickle", "pd.read_pickle") or node.attr == "read_pickle":
                hit(node, f"{name or node.attr} (unpickling)")
            if name in {f"builtins.{b}" for b in BUILTINS}:
                hit(node, name)
        if isinstance(node, ast.Call):
            func = _dotted(node.func)
            keywords = {kw.arg: kw.value for kw in node.keywords}
            if isinstance(node.func, ast.Name) and node.func.id in BUILTINS:
                hit(node, f"{node.func.id}(...)")
            if func == "torch.load" and not _is_true(keywords.get("weights_only")):
                hit(node, "torch.load without weights_only=True")
            if _is_true(keywords.get("allow_pickle")):
                hit(node, f"{func or 'call'}(..., allow_pickle=True)")
    return sorted(set(hits), key=lambda h: int(h.rsplit(":", 2)[1]))


def test_the_sources_are_there():
    names = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    expected = {"space/config.py", "space/weights.py", "search/train.py", "studies/proxy_fidelity.py"}
    assert expected | {"studies/fidelity/table.py"} <= names


def test_no_unsafe_loading_or_evaluation_in_the_sources():
    hits = [h for path in SOURCES for h in unsafe_calls(path.read_text(), path.relative_to(ROOT).as_posix())]
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize(
    "code, what",
    [
        ("eval('1 + 1')", "eval(...)"),
        ("exec(text)", "exec(...)"),
        ("import pickle", "import pickle"),
        ("import dill as d", "import dill"),
        ("from pickle import loads", "from pickle import"),
        ("import yaml\nyaml.load(text, Loader=yaml.Loader)", "yaml.load"),
        ("import yaml\nyaml.unsafe_load(text)", "yaml.unsafe_load"),
        ("from yaml import full_load", "from yaml import full_load"),
        ("import torch\ntorch.load(path)", "torch.load without weights_only=True"),
        ("import torch\ntorch.load(path, weights_only=False)", "torch.load without weights_only=True"),
        ("import torch\ntorch.load(path, weights_only=flag)", "torch.load without weights_only=True"),
        ("import numpy as np\nnp.load(path, allow_pickle=True)", "allow_pickle=True"),
        ("import pandas as pd\npd.read_pickle(path)", "read_pickle"),
    ],
)
def test_the_check_finds_each_kind(code, what):
    hits = unsafe_calls("x = 1\n" + code, "bad.py")
    line = 1 + len(code.splitlines())  # the unsafe part is on the snippet's last line
    # one snippet may hold two findings (yaml.load and yaml.Loader), in no fixed order
    assert any(what in hit and hit.startswith(f"bad.py:{line}:") for hit in hits), hits


@pytest.mark.parametrize(
    "code",
    [
        "model.eval()",
        "self.eval()",
        "import yaml\nyaml.safe_load(text)\nyaml.safe_dump(data)",
        "import torch\ntorch.load(path, map_location='cpu', weights_only=True)",
        "'''Nothing is unpickled; see pickle and eval in the docs.'''",
        "evaluate(arch)",
        "from vitsearch.evaluators import evaluator",
    ],
)
def test_the_check_passes_the_safe_forms(code):
    assert unsafe_calls(code) == []
