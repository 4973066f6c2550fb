"""MkDocs hook: let mkdocstrings find ``vitsearch.space``, ``vitsearch.evaluators`` and ``vitsearch.search``.

The packages live in ``space/``, ``evaluators/`` and ``search/`` and install under ``vitsearch.*``
through setuptools' ``package-dir`` mapping, which griffe cannot follow. Before the build this
writes ``build/docs_src/vitsearch/`` with one symlink per package, and ``mkdocs.yml`` points the
python handler's ``paths`` there. Nothing is imported: the API pages are read from the sources.

``.venv/bin/mkdocs`` puts its own folder first on ``sys.path``, and that folder holds the
``vitsearch`` console script, which griffe would take for the ``vitsearch`` package: such
entries are dropped for the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mkdocs.plugins import event_priority

PACKAGES = ("space", "evaluators", "search")


@event_priority(100)  # before mkdocstrings reads its paths: on a fresh clone the folder must exist by then
def on_config(config, **kwargs):
    root = Path(config.config_file_path).resolve().parent
    namespace = root / "build" / "docs_src" / "vitsearch"
    namespace.mkdir(parents=True, exist_ok=True)
    for name in PACKAGES:
        link = namespace / name
        target = os.path.relpath(root / name, namespace)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    sys.path[:] = [entry for entry in sys.path if not (Path(entry or ".") / "vitsearch").is_file()]
    return config
