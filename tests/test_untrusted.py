"""Reading what a workload wrote: regular files only, never through a link, bounded; state folders real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.untrusted import list_names, private_dir, read_names


def test_only_small_regular_files_are_read(tmp_path: Path) -> None:
    host = tmp_path / "host-secret.json"
    host.write_text("HOST")
    box = tmp_path / "box"
    box.mkdir()
    (box / "ok.json").write_text("[1]")
    (box / "link.json").symlink_to(host)
    os.mkfifo(box / "fifo.json")  # a reader that opened it blocking would hang the supervisor
    (box / "big.json").write_bytes(b"x" * 1001)
    (box / "dir.json").mkdir()
    found, skipped = read_names(box, list_names(box), limit=1000)
    assert found == {"ok.json": b"[1]"}
    assert {s.name: s.reason for s in skipped} == {
        "link.json": "a symbolic link",
        "fifo.json": "not a regular file",
        "big.json": "larger than 1000 bytes",
        "dir.json": "not a regular file",
    }


def test_a_linked_outbox_is_not_entered(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.json").write_text("[]")
    (tmp_path / "box").symlink_to(real)
    assert list_names(tmp_path / "box") == []
    assert read_names(tmp_path / "box", ["a.json"], 100) == ({}, [])


def test_state_folders_are_made_and_must_not_be_links(tmp_path: Path) -> None:
    made = private_dir(tmp_path, ".gpuci", "runs", "x")
    assert made.is_dir() and not made.is_symlink()
    target = tmp_path / "etc"
    target.mkdir()
    other = tmp_path / "checkout"
    other.mkdir()
    (other / ".gpuci").symlink_to(target)  # a checkout that ships .gpuci as a link
    with pytest.raises(UsageError) as err:
        private_dir(other, ".gpuci", "runs")
    assert "is a symbolic link" in str(err.value) and "never writes through a link" in str(err.value)
    assert list(target.iterdir()) == []
