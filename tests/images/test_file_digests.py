"""A file's digest vouched for by its stat: read once, read again after any change, never from the checkout."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from harness.declare.pyproject import read_pyproject
from harness.images import file_digests
from harness.images.file_digests import file_digests as digests_of
from harness.images.project_install import project_install

OLD_NS = time.time_ns() - 3600 * 10**9  # an hour ago: past the racy window


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def aged(path: Path, data: bytes) -> Path:
    """`path` written with `data`, its mtime an hour back (ctime stays now: what the kernel set)."""
    path.write_bytes(data)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    return path


def records(root: Path) -> dict[str, list[object]]:
    store = file_digests._records_path(root)
    return json.loads(store.read_text())["files"] if store.exists() else {}


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # The files here are all minutes old at most: ctime is now, so the window is shortened to let them count.
    monkeypatch.setattr(file_digests, "RACY_NS", 0)


def test_an_unchanged_file_is_vouched_for_by_its_stat_and_not_read(tmp_path: Path) -> None:
    aged(tmp_path / "ext.c", b"int f(void) { return 1; }\n")
    assert digests_of(tmp_path, ["ext.c"]) == {"ext.c": sha(b"int f(void) { return 1; }\n")}
    # The record says another digest for the very same stat: a second call believes it, so it did not read.
    record = records(tmp_path)["ext.c"]
    planted = {"version": 1, "files": {"ext.c": [*record[:5], "f" * 64]}}
    file_digests._records_path(tmp_path).write_text(json.dumps(planted))
    assert digests_of(tmp_path, ["ext.c"]) == {"ext.c": "f" * 64}


def test_a_change_that_keeps_size_and_mtime_is_still_read_again(tmp_path: Path) -> None:
    source = aged(tmp_path / "ext.c", b"return 1;\n")
    first = digests_of(tmp_path, ["ext.c"])["ext.c"]
    time.sleep(0.01)  # past the filesystem's timestamp tick: the write's ctime differs
    aged(source, b"return 2;\n")  # same size, mtime set back to the same value: only ctime tells
    assert os.stat(source).st_mtime_ns == OLD_NS
    assert digests_of(tmp_path, ["ext.c"])["ext.c"] == sha(b"return 2;\n") != first


def test_a_replaced_file_and_a_link_are_not_taken_for_the_old_one(tmp_path: Path) -> None:
    aged(tmp_path / "a.c", b"one\n")
    digests_of(tmp_path, ["a.c"])
    aged(tmp_path / "b.c", b"two\n")
    os.replace(tmp_path / "b.c", tmp_path / "a.c")  # another inode at the same name
    assert digests_of(tmp_path, ["a.c"])["a.c"] == sha(b"two\n")
    (tmp_path / "a.c").unlink()
    (tmp_path / "a.c").symlink_to("/etc/hostname")  # a link is never followed: no file's bytes
    assert digests_of(tmp_path, ["a.c"])["a.c"] == sha(b"")
    assert "a.c" not in records(tmp_path)


def test_a_file_changed_within_the_racy_window_is_not_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_digests, "RACY_NS", 2_000_000_000)
    (tmp_path / "fresh.c").write_bytes(b"just written\n")  # a second write in the same tick would look the same
    assert digests_of(tmp_path, ["fresh.c"])["fresh.c"] == sha(b"just written\n")
    assert "fresh.c" not in records(tmp_path)


def test_records_are_kept_outside_the_checkout_and_a_bad_store_counts_as_empty(tmp_path: Path) -> None:
    aged(tmp_path / "ext.c", b"x\n")
    store = file_digests._records_path(tmp_path)
    assert not store.is_relative_to(tmp_path)
    store.write_text("not json")
    assert digests_of(tmp_path, ["ext.c"])["ext.c"] == sha(b"x\n")
    assert records(tmp_path)["ext.c"][5] == sha(b"x\n")  # rewritten whole


def test_a_compiled_project_s_tag_follows_a_changed_source_that_kept_size_and_mtime(tmp_path: Path) -> None:
    root = tmp_path / "ext"
    (root / "src").mkdir(parents=True)
    (root / "setup.py").write_text(
        "from setuptools import Extension, setup\nsetup(name='ext', ext_modules=[Extension('ext', ['src/ext.c'])])\n"
    )
    source = aged(root / "src" / "ext.c", b"int value = 1;\n")

    def metadata() -> str:
        install = project_install(root, "editable", "/workspace", read_pyproject(root))
        assert install is not None and install.needs is not None
        return install.metadata_sha256

    first = metadata()
    assert metadata() == first  # vouched for: the same image
    time.sleep(0.01)
    aged(source, b"int value = 2;\n")
    assert metadata() != first  # a new image: the change is built
