"""Atomic writes: the target holds the old or the new content, never a part, and no scratch is left."""

from __future__ import annotations

import pytest

from pneumobench.core.atomic import atomic_directory, atomic_file, write_text_atomic


class Interrupted(Exception):
    pass


def test_a_file_write_replaces_the_target_whole(tmp_path):
    target = tmp_path / "sub" / "result.json"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]


def test_a_failed_file_write_leaves_the_target_and_no_scratch(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_text("old")
    with pytest.raises(Interrupted), atomic_file(target) as scratch:
        assert scratch.parent == tmp_path and scratch.suffix == ".pt" and scratch != target
        scratch.write_text("half")
        raise Interrupted
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_failed_directory_write_leaves_the_target_and_no_scratch(tmp_path):
    target = tmp_path / "dataset"
    with atomic_directory(target) as scratch:
        (scratch / "a").write_text("1")
    with pytest.raises(Interrupted), atomic_directory(target) as scratch:
        (scratch / "b").write_text("2")
        raise Interrupted
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]
