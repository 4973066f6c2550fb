"""The one atomic-write helper: whole files or none, the usual permissions, no temporary left behind."""

from __future__ import annotations

import os
import stat

import pytest

from vitsearch.space.files import atomic_path, atomic_write_bytes, atomic_write_text


def test_writes_text_and_bytes_and_creates_the_folder(tmp_path):
    target = tmp_path / "new" / "folder" / "out.yaml"
    atomic_write_text(target, "a: 1\n")
    assert target.read_text() == "a: 1\n"
    atomic_write_bytes(target, b"b: 2\n")
    assert target.read_bytes() == b"b: 2\n"
    assert os.listdir(target.parent) == ["out.yaml"]


def test_permissions_follow_the_umask_and_an_explicit_mode_wins(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_text(tmp_path / "b.txt", "x", mode=0o644)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".onnx"  # writers that read the suffix see the real one
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.onnx"]
