"""Reading what a workload wrote: regular files only, never through a link, bounded; state folders real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.untrusted import list_names, private_dir, read_names, remove_tree


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


def test_read_capped_refuses_devices_fifos_links_out_and_huge_files_at_once(tmp_path: Path) -> None:
    import re
    import time

    from harness.untrusted import Refused, read_capped

    root = tmp_path / "checkout"
    root.mkdir()
    (root / "zero.py").symlink_to("/dev/zero")
    os.mkfifo(root / "fifo.py")
    (root / "out.py").symlink_to(tmp_path / "host.txt")
    (tmp_path / "host.txt").write_text("HOST")
    with (root / "huge.py").open("wb") as file:
        file.truncate(3 * 2**30)  # sparse: 3 GiB that cost no disk
    (root / "inside.py").symlink_to(root / "ok.py")
    (root / "ok.py").write_text("x = 1\n")
    started = time.monotonic()
    for name, said in (
        ("zero.py", "link out of"),
        ("fifo.py", "not a regular file"),
        ("out.py", "link out of"),
        ("huge.py", "larger than 1 MiB (3072 MiB)"),
    ):
        with pytest.raises(Refused, match=re.escape(said)):
            read_capped(root / name, 2**20, root)
    with pytest.raises(Refused, match="not a regular file"):
        read_capped(Path("/dev/zero"), 2**20)  # named outright, without a folder to stay in
    assert time.monotonic() - started < 1
    assert read_capped(root / "inside.py", 2**20, root) == b"x = 1\n"  # a link inside the checkout is fine


def test_deep_nesting_is_a_value_error_never_a_recursion_error(tmp_path: Path) -> None:
    from harness.untrusted import Refused, parse_json, parse_toml

    with pytest.raises(ValueError, match="nested deeper than 64"):
        parse_json("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="nested deeper than 64"):
        parse_json("[" * 65 + "]" * 65)  # within Python's limit, beyond gpuci's: later readers stay safe
    assert parse_json("[" * 64 + "]" * 64)
    with pytest.raises(Refused, match="nests too deeply"):
        parse_toml("a = " + "[" * 100000 + "]" * 100000, tmp_path / "pyproject.toml")


def _deep(top: Path, depth: int) -> Path:
    """`top` with a chain of `depth` folders (made through descriptors: the path grows past PATH_MAX)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, dir_fd=child), "w") as out:
            out.write("x")
        os.close(fd)
        fd = child
    os.close(fd)
    return top


def test_a_folder_the_workload_nested_3000_deep_is_removed(tmp_path: Path) -> None:
    """A step made 3,000 nested folders in its outbox: shutil.rmtree raised RecursionError out of the run's
    clean-up (a traceback, no report), the outbox stayed, and every later run of the checkout died the same
    way removing it as stale."""
    top = _deep(tmp_path / "outbox", 3000)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("host")
    (top / "link").symlink_to(victim)
    remove_tree(top)
    assert not os.path.lexists(top)
    assert (victim / "keep").read_text() == "host"  # a link is removed, never followed
    remove_tree(top)  # gone already: nothing to do
