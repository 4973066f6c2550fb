"""Imports point one way: ``space`` <- ``evaluators`` <- ``search``, no cycles, no private names across modules.

The check walks the syntax tree of every package source, as ``test_safety.py`` does for unsafe
calls. Every import counts, including those inside functions (a lazy import is still a
dependency; only ``if TYPE_CHECKING:`` blocks, which never run, are left out). Three rules:

- **layers**: a module never imports from a package above its own (``space`` is the bottom).
- **no cycles** among the modules of one package (a strongly connected component of two or more).
- **no private cross-module names**: ``from .x import _name`` reaches into another module's
  internals; make the name public or move it.

Registries find their plugins by module name (``Registry(discover=...)``), not by import
statements, so a registry is not an edge to what registers with it: that is the point of one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("space", "evaluators", "search")  # bottom to top; folder == vitsearch subpackage


def module_sources(root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    """``vitsearch.space.config -> (source, is_package)`` for every package source file."""
    out = {}
    for folder in LAYERS:
        for path in sorted((root / folder).rglob("*.py")):
            parts = ["vitsearch", *path.relative_to(root).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_package else parts)] = (path.read_text(), is_package)
    return out


def _imports(nodes) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _imports(node.orelse)  # the TYPE_CHECKING body never runs
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        else:
            yield from _imports(ast.iter_child_nodes(node))


def imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]):
    """``(target module, imported name or None)`` for each name ``node`` imports."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.append((sub, None) if sub in known else (base, alias.name))
    return out


def edges(sources: Mapping[str, tuple[str, bool]]) -> list[tuple[str, str, str | None, int]]:
    """``(importer, imported module, name, line)`` for every import of a vitsearch module."""
    known = set(sources)
    out = []
    for module, (source, is_package) in sources.items():
        for node in _imports([ast.parse(source)]):
            for target, name in imported(module, is_package, node, known):
                while target not in known and "." in target:  # an attribute path: its module
                    target = target.rsplit(".", 1)[0]
                if target in known:
                    out.append((module, target, name, node.lineno))
    return out


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def upward(found: list[tuple[str, str, str | None, int]]) -> list[str]:
    return [f"{m}:{line} imports {t}" for m, t, _, line in found if layer(t) > layer(m)]


def private_names(found: list[tuple[str, str, str | None, int]]) -> list[str]:
    return [
        f"{m}:{line} imports {t}.{name}"
        for m, t, name, line in found
        if name and name.startswith("_") and not name.startswith("__") and t != m
    ]


def cycles(found: list[tuple[str, str, str | None, int]]) -> list[list[str]]:
    """Strongly connected components (size >= 2) of the import graph, each package on its own."""
    graph: dict[str, set[str]] = {}
    for m, t, _, _ in found:
        if m != t and layer(m) == layer(t):
            graph.setdefault(m, set()).add(t)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


FOUND = edges(module_sources())


def test_imports_point_one_way():
    assert not upward(FOUND), "\n".join(upward(FOUND))


def test_no_private_names_across_modules():
    assert not private_names(FOUND), "\n".join(private_names(FOUND))


def test_no_import_cycles_inside_a_package():
    assert not cycles(FOUND), cycles(FOUND)


def test_the_checks_catch_what_they_claim():
    fake = {
        "vitsearch.space": ("", True),
        "vitsearch.space.a": ("from .b import _hidden\n", False),
        "vitsearch.space.b": ("def f():\n    from . import a\n", False),  # lazy, still an edge
        "vitsearch.space.c": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n", False),
        "vitsearch.evaluators": ("", True),
        "vitsearch.evaluators.e": ("from vitsearch.space.a import x\n", False),
        "vitsearch.space.d": ("def g():\n    import vitsearch.evaluators.e\n", False),
    }
    found = edges(fake)
    assert upward(found) == ["vitsearch.space.d:2 imports vitsearch.evaluators.e"]
    assert private_names(found) == ["vitsearch.space.a:1 imports vitsearch.space.b._hidden"]
    assert cycles(found) == [["vitsearch.space.a", "vitsearch.space.b"]]  # c's TYPE_CHECKING import is no edge


@pytest.mark.parametrize("folder", LAYERS)
def test_every_package_source_is_seen(folder):
    assert any(m.startswith(f"vitsearch.{folder}.") for m in module_sources())
