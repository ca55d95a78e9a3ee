"""A folder a container wrote, as one layer: the same files give the same bytes, links are never followed,
only changes of a snapshotted folder go in, and the size is bounded."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ImageBuildError, UsageError
from harness.images import layer_tar
from harness.images.layer_tar import FIXED_MTIME, snapshot, write_layer
from harness.untrusted import remove_tree
from tests.conftest import nest_folders


def _tree(stage: Path) -> None:
    site = stage / "opt" / "venv" / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("x = 1\n")
    (site / "pkg" / "tool").write_text("#!/bin/sh\n")
    (site / "pkg" / "tool").chmod(0o755)
    os.symlink("/etc/passwd", site / "outside")  # the container's link: stored, never followed
    os.link(site / "pkg" / "__init__.py", site / "pkg" / "again.py")
    os.mkfifo(site / "pipe")


def _layer(stage: Path, roots: list[str], before: dict | None = None) -> tuple[str, bytes]:
    out = io.BytesIO()
    diff_id = write_layer(stage, roots, before or {}, out)
    return diff_id, out.getvalue()


def test_the_same_files_give_the_same_layer_whatever_their_times_and_owner(tmp_path: Path) -> None:
    _tree(tmp_path / "a")
    _tree(tmp_path / "b")
    os.utime(tmp_path / "b" / "opt" / "venv" / "site" / "pkg" / "__init__.py", (1, 1))
    first, data = _layer(tmp_path / "a", ["opt/venv"])
    second, _ = _layer(tmp_path / "b", ["opt/venv"])
    assert first == second and first.startswith("sha256:")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[:2] == ["opt", "opt/venv"] and len(names) == len(set(names))
    assert all(m.mtime == FIXED_MTIME and m.uid == 0 and m.gid == 0 and not m.uname for m in members)
    by_name = {m.name: m for m in members}
    link = by_name["opt/venv/site/outside"]
    assert link.issym() and link.linkname == "/etc/passwd"  # kept as a link: nothing of /etc read
    assert "opt/venv/site/pipe" not in by_name  # a fifo is no part of a layer
    assert by_name["opt/venv/site/pkg/again.py"].isreg()  # a hard link is a file of its own
    assert by_name["opt/venv/site/pkg/tool"].mode == 0o755


def test_a_timed_root_keeps_its_files_times_in_order(tmp_path: Path) -> None:
    """meson-python's build folder: ninja rebuilds an output older than its source (the mounted checkout's
    files, with their own times), and one whose time differs from its `.ninja_deps` record by 100 ns (a
    float's rounding), so there the build's times stay exactly, to the nanosecond."""
    build = tmp_path / "opt" / "gpuci" / "meson-build"
    build.mkdir(parents=True)
    (build / "_ext.c").write_text("/* made by Cython */\n")
    (build / "_ext.so").write_bytes(b"\x7fELF")
    os.utime(build / "_ext.c", ns=(1_796_414_798_432_929_434, 1_796_414_798_432_929_434))
    os.utime(build / "_ext.so", ns=(1_796_414_798_432_929_435, 1_796_414_798_432_929_435))  # a nanosecond later
    _tree(tmp_path)
    out = io.BytesIO()
    write_layer(tmp_path, ["opt/gpuci/meson-build", "opt/venv"], {}, out, timed=("opt/gpuci/meson-build",))
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        by_name = {m.name: m for m in tar.getmembers()}
    source, output = by_name["opt/gpuci/meson-build/_ext.c"], by_name["opt/gpuci/meson-build/_ext.so"]
    assert source.pax_headers["mtime"] == "1796414798.432929434"
    assert output.pax_headers["mtime"] == "1796414798.432929435" and int(output.mtime) == 1796414798
    assert by_name["opt/venv/site/pkg/__init__.py"].mtime == FIXED_MTIME  # every other root as before
    assert by_name["opt/gpuci/meson-build"].mtime == FIXED_MTIME  # folders: ninja never asks their time


def test_a_snapshotted_folder_gives_only_its_changes_and_whiteouts(tmp_path: Path) -> None:
    _tree(tmp_path)
    site = tmp_path / "opt" / "venv" / "site"
    (site / "gone").mkdir()
    (site / "gone" / "a.py").write_text("")
    (site / "old.py").write_text("")
    before = {"opt/venv": snapshot(tmp_path / "opt" / "venv")}
    (site / "new").mkdir()
    (site / "new" / "mod.py").write_text("y = 2\n")
    (site / "pkg" / "__init__.py").write_text("x = 22\n")
    (site / "old.py").unlink()
    (site / "gone" / "a.py").unlink()
    (site / "gone").rmdir()
    _, data = _layer(tmp_path, ["opt/venv"], before)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = {m.name for m in tar.getmembers()}
    assert {"opt/venv/site/new/mod.py", "opt/venv/site/pkg/__init__.py"} <= names
    assert {"opt/venv/site/.wh.old.py", "opt/venv/site/.wh.gone"} <= names
    assert "opt/venv/site/gone/.wh.a.py" not in names  # the folder's whiteout covers it
    assert "opt/venv/site/pkg/tool" not in names and "opt/venv/site/outside" not in names  # unchanged


def test_a_layer_over_its_bounds_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    monkeypatch.setattr(layer_tar, "MAX_ENTRIES", 3)
    with pytest.raises(UsageError, match="over 3 files"):
        _layer(tmp_path, ["opt/venv"])


def test_a_root_that_is_a_link_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "opt").mkdir()
    os.symlink("/etc", tmp_path / "opt" / "venv")
    _, data = _layer(tmp_path, ["opt/venv"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getmembers() == []


def test_a_tree_nested_past_the_bound_is_refused_in_one_line(tmp_path: Path) -> None:
    """The project's install left 3,000 nested folders in a folder the layer keeps: os.walk recursed once a
    level and raised RecursionError out of the build (a traceback, not the project's error)."""
    outputs = tmp_path / "opt" / "gpuci" / "outputs"
    outputs.mkdir(parents=True)
    nest_folders(outputs)
    try:
        with pytest.raises(UsageError, match="deeper than"):
            _layer(tmp_path, ["opt/gpuci/outputs"])
        with pytest.raises(UsageError, match="deeper than"):
            snapshot(outputs)
    finally:
        remove_tree(outputs)  # pytest's own clean-up of old temporary folders recurses: never leave it one


def test_the_walk_keeps_the_order_os_walk_gave(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "opt" / "venv" / "site" / "a" / "b").mkdir(parents=True)
    (tmp_path / "opt" / "venv" / "site" / "a" / "z.py").write_text("")
    (tmp_path / "opt" / "venv" / "site" / "a" / "b" / "c.py").write_text("")
    top = tmp_path / "opt" / "venv"
    expected = []
    for folder, dirs, files in os.walk(top, followlinks=False):
        dirs.sort()
        expected += [str((Path(folder) / name).relative_to(top)) for name in sorted([*dirs, *files])]
    assert [rel for rel, _, _ in layer_tar._walk(top)] == expected


def test_a_sparse_file_is_refused_before_its_zeros_are_written(tmp_path: Path) -> None:
    """A file of 8 GiB that takes no disk (`truncate -s 8G`, what the install may leave) made an 8 GiB layer:
    the container pays nothing, the host writes the zeros twice (the tar, then the engine's copy), up to
    MAX_BYTES (64 GiB). Refused here before a byte of it is written."""
    outputs = tmp_path / "opt" / "gpuci" / "outputs"
    outputs.mkdir(parents=True)
    with open(outputs / "zeros.so", "wb") as out:
        out.truncate(256 * 2**20)
    written = io.BytesIO()
    with pytest.raises(UsageError, match="sparse"):
        write_layer(tmp_path, ["opt/gpuci/outputs"], {}, written)
    assert len(written.getvalue()) < 2**20


def test_the_layer_is_sized_before_a_byte_is_written_and_matches_tarfiles_own(tmp_path: Path) -> None:
    """The engine gets the layer as it is written (its tar header needs the size first): the sizing walk
    must give exactly the bytes the writing walk yields, which are tarfile's own for the same members."""
    _tree(tmp_path)
    (tmp_path / "opt" / "venv" / "site" / ("long-" * 40 + "name.py")).write_text("z = 3\n" * 300)  # a PAX header
    layer = layer_tar.Layer(tmp_path, ["opt/venv"], {})
    data = b"".join(layer.chunks())
    assert layer.size == len(data) and layer.diff_id == _layer(tmp_path, ["opt/venv"])[0]
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, path in layer_tar._members(tmp_path, ["opt/venv"], {}):
            if path is None:
                tar.addfile(info)
            else:
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
    assert data == expected.getvalue()


def test_a_tree_that_changes_between_sizing_and_writing_is_refused(tmp_path: Path) -> None:
    _tree(tmp_path)
    layer = layer_tar.Layer(tmp_path, ["opt/venv"], {})
    (tmp_path / "opt" / "venv" / "site" / "pkg" / "__init__.py").write_text("x = 1\n" * 1000)
    with pytest.raises(ImageBuildError, match="changed while"):
        b"".join(layer.chunks())
    assert layer.diff_id == ""  # never named: the load's config is never sent


def test_many_sparse_files_each_under_the_bound_are_refused_together(tmp_path: Path) -> None:
    """Hostile review 2026-12-04 (second): the sparse bound was a file's, over 64 MiB: a thousand files of exactly
    64 MiB made by `truncate` (28 KiB of disk) sized a 62.5 GiB layer, which the engine writes twice (its
    load's copy, then the layer) on a host with 74 GB free. The layer's files are judged together."""
    outputs = tmp_path / "opt" / "gpuci" / "outputs"
    outputs.mkdir(parents=True)
    for i in range(3):
        with open(outputs / f"zeros-{i}.so", "wb") as out:
            out.truncate(layer_tar.SPARSE_FROM)
    written = io.BytesIO()
    with pytest.raises(UsageError, match="sparse"):
        write_layer(tmp_path, ["opt/gpuci/outputs"], {}, written)
    assert written.getvalue() == b""


def test_a_file_that_grew_after_sizing_never_sends_a_byte_past_the_layer_s_size(tmp_path: Path) -> None:
    """Hostile review 2026-12-04 (second): the load's archive says the layer's size in its header, then the layer's
    bytes: a file that grew between the two walks was sent whole before the size was checked, so what the
    engine read after the layer's size (the project's bytes) stood where the archive's own members go: a
    manifest and config of the project's naming any tag. (Docker 20.10 reads the whole body before it
    loads, so the abort made nothing there; an engine that stops at the archive's end need not.)"""
    _tree(tmp_path)
    layer = layer_tar.Layer(tmp_path, ["opt/venv"], {})
    (tmp_path / "opt" / "venv" / "site" / "pkg" / "tool").write_bytes(b"\0" * (3 << 20))
    sent = 0
    with pytest.raises(ImageBuildError, match="changed while"):
        for piece in layer.chunks():
            sent += len(piece)
    assert layer.size > 0 and sent <= layer.size


def _as_another_user(work: Any) -> str:
    """`work()`'s answer from a child process that is not root (root reads any file): a fork, then setuid."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        answer = "crashed"
        try:
            os.close(read)
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            answer = work()
        except BaseException as exc:  # the parent reports it
            answer = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write, answer.encode()[:4000])
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def test_a_file_gpucis_user_cannot_read_is_refused_before_the_load(tmp_path: Path) -> None:
    """Hostile review 2026-12-04 (second): the install (as gpuci's user) left a file of mode 000; the sizing walk never
    opens a file, so the writing walk's PermissionError came out of the load's HTTP body as requests'
    ConnectionError (an OSError with no errno): a traceback, the project's file not named."""
    stage = Path(tempfile.mkdtemp(prefix="gpuci-test-unreadable-"))  # pytest's folders are root's own (0700)
    try:
        (stage / "opt" / "x").mkdir(parents=True)
        (stage / "opt" / "x" / "secret.so").write_bytes(b"x" * 4096)
        (stage / "opt" / "x" / "secret.so").chmod(0)
        if os.getuid() == 0:
            for path in (stage, stage / "opt", stage / "opt" / "x", stage / "opt" / "x" / "secret.so"):
                os.chown(path, 65534, 65534)

        def size_it() -> str:
            try:
                layer_tar.Layer(stage, ["opt/x"], {})
            except UsageError as exc:
                return f"refused: {exc}"
            return "sized"

        answer = _as_another_user(size_it)
        assert answer.startswith("refused:") and "secret.so" in answer, answer
    finally:
        remove_tree(stage)


def test_a_folder_of_more_entries_than_a_layer_holds_is_refused_while_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hostile review 2026-12-04 (second): the walk listed a folder whole before the layer's count saw any of it, and
    the snapshot of gpuci's venv (copied out of the recipe's image) counted nothing: a folder of 16 million
    names of 255 characters (the host's free inodes) was some 5 GB of the host's memory."""
    top = tmp_path / "opt" / "venv"
    top.mkdir(parents=True)
    for i in range(5):
        (top / f"f{i}").write_text("x")
    monkeypatch.setattr(layer_tar, "MAX_ENTRIES", 3)
    with pytest.raises(UsageError, match="over 3"):
        next(layer_tar._walk(top))
    with pytest.raises(UsageError, match="over 3"):
        snapshot(top)
