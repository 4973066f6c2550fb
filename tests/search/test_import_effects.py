"""Importing a module of the package changes nothing in the process (the umask was set at import once)."""

from __future__ import annotations

import importlib
import os

import pytest


@pytest.mark.parametrize("module", ["vitsearch.search.results", "vitsearch.search.plots", "vitsearch.search.deploy"])
def test_importing_leaves_the_umask_alone(module, monkeypatch):
    loaded = importlib.import_module(module)
    calls = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real(mask))
    importlib.reload(loaded)
    assert calls == []
