"""Importing the package changes nothing in the process: results.py used to set the umask at import."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["results", "outputs", "plots", "deploy", "train", "live", "cli"]

PROBE = f"""
import os
real, calls = os.umask, []
os.umask = lambda mask: calls.append(mask) or real(mask)
import importlib
for name in {MODULES!r}:
    importlib.import_module("vitsearch.search." + name)
print(calls)
"""


def test_importing_the_search_modules_leaves_the_umask_alone():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip() == "[]"
