"""The in-image install: what the build writes into the workspace is moved out and still imported first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.images.in_image.install_project import FAILED, START, main

# Stands in for a build backend: writes a compiled-module twin (a .py here: any importable file) into the
# package folder, a generated _version.py, a top-level module and setuptools' build/ tree.
FAKE_BUILD = """\
import pathlib, sys
ws = pathlib.Path(sys.argv[1])
(ws / "pkg" / "_speed.py").write_text("WHERE = 'built'\\n")
(ws / "pkg" / "_version.py").write_text("version = '1.2'\\n")
(ws / "topext.py").write_text("WHERE = 'top'\\n")
(ws / "build" / "lib").mkdir(parents=True)
(ws / "build" / "lib" / "stray.py").write_text("")
"""


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "__init__.py").write_text("from ._speed import WHERE\nfrom ._version import version\n")
    (ws / "pkg" / "plain.py").write_text("WHERE = 'checkout'\n")
    (tmp_path / "build.py").write_text(FAKE_BUILD)
    return ws


def test_build_outputs_leave_the_workspace_and_are_imported_first(tmp_path: Path, capsys) -> None:
    ws = _workspace(tmp_path)
    outputs, site = tmp_path / "outputs", tmp_path / "site"
    site.mkdir()
    assert (
        main([str(ws), str(outputs), "--site", str(site), "--", sys.executable, str(tmp_path / "build.py"), str(ws)])
        == 0
    )
    assert START in capsys.readouterr().out
    # The workspace holds only what it held (the checkout a mount replaces); the outputs hold the rest.
    assert sorted(p.name for p in ws.rglob("*") if p.is_file()) == ["__init__.py", "plain.py"]
    assert (outputs / "pkg" / "_speed.py").is_file() and (outputs / "topext.py").is_file()
    # With the finder on (its .pth), a fresh workspace (the mount) imports its own code and the build's outputs.
    (ws / "pkg" / "plain.py").write_text("WHERE = 'changed in the checkout'\n")
    probe = (
        f"import site, sys; site.addsitedir({str(site)!r}); sys.path.insert(0, {str(ws)!r}); "
        "import pkg, pkg.plain, topext; print(pkg.WHERE, pkg.version, pkg.plain.WHERE, topext.WHERE, sep='|'); "
        "import importlib.util; print(importlib.util.find_spec('stray'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["built|1.2|changed in the checkout|top", "None"]
    # Without the workspace on sys.path, a top-level output is still found (an editable's own mapping);
    # a module of the same name earlier on the path wins, as Python's own order says.
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / "topext.py").write_text("WHERE = 'earlier'\n")
    probe = (
        f"import site, sys; site.addsitedir({str(site)!r}); import topext; print(topext.WHERE); "
        f"sys.path.insert(0, {str(tmp_path / 'early')!r}); del sys.modules['topext']; "
        "import topext; print(topext.WHERE)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.splitlines() == ["top", "earlier"], done.stderr


def test_a_failed_build_is_marked_and_its_code_returned(tmp_path: Path, capsys) -> None:
    ws = _workspace(tmp_path)
    code = main(
        [str(ws), str(tmp_path / "out"), "--site", str(tmp_path), "--", sys.executable, "-c", "raise SystemExit(7)"]
    )
    assert code == 7 and f"{FAILED} (exit 7)" in capsys.readouterr().out
    assert not (tmp_path / "_gpuci_build_outputs.pth").exists()


def test_a_pure_python_install_leaves_no_finder(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    assert main([str(ws), str(tmp_path / "out"), "--site", str(tmp_path), "--", sys.executable, "-c", "pass"]) == 0
    assert not (tmp_path / "_gpuci_build_outputs.pth").exists() and not (tmp_path / "out").exists()


# maturin's cffi bindings: the build writes a whole package into the Python source folder.
MAKES_A_PACKAGE = """\
import pathlib, sys
native = pathlib.Path(sys.argv[1]) / "pkg" / "_native"
native.mkdir()
(native / "__init__.py").write_text("from .ffi import WHERE\\n")
(native / "ffi.py").write_text("WHERE = 'built package'\\n")
"""


def test_a_package_the_build_makes_whole_is_imported_from_the_outputs(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    (ws / "pkg" / "__init__.py").write_text("from ._native import WHERE\n")
    (tmp_path / "build.py").write_text(MAKES_A_PACKAGE)
    outputs, site = tmp_path / "outputs", tmp_path / "site"
    site.mkdir()
    assert (
        main([str(ws), str(outputs), "--site", str(site), "--", sys.executable, str(tmp_path / "build.py"), str(ws)])
        == 0
    )
    assert not (ws / "pkg" / "_native").exists() and (outputs / "pkg" / "_native" / "ffi.py").is_file()
    probe = (
        f"import site, sys; site.addsitedir({str(site)!r}); sys.path.insert(0, {str(ws)!r}); "
        "import pkg, pkg._native.ffi; print(pkg.WHERE, pkg._native.ffi.__file__.startswith(sys.argv[1]), sep='|'); "
        "import importlib.util; print(importlib.util.find_spec('ffi'))"  # its modules are no top-level ones
    )
    done = subprocess.run([sys.executable, "-c", probe, str(outputs)], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.splitlines() == ["built package|True", "None"], done.stderr


def test_a_ninja_build_folder_is_settled_so_nothing_rebuilds_at_import(tmp_path: Path) -> None:
    """meson-python rebuilds at import with ninja, which compared its outputs with the mounted checkout's
    sources (a clone is newer than its image) and with its logs: every run recompiled PyWavelets. The
    folder's files and the logs' times are set past any checkout's; other log fields are kept."""
    import os

    from harness.images.in_image.install_project import SETTLED_NS, settle_ninja

    build = tmp_path / "meson-build"
    (build / "pkg").mkdir(parents=True)
    (build / "pkg" / "_ext.so").write_bytes(b"\x7fELF")
    (build / ".ninja_log").write_text("# ninja log v7\n1\t69\t1796415024383224579\tpkg/_ext.so\tc5f171bc65a1b325\n")
    path = b"pkg/_ext.so\x00"  # a path record: its name padded to 4 bytes, then its id's checksum (~id)
    deps = b"# ninjadeps\n" + (4).to_bytes(4, "little")
    deps += (len(path) + 4).to_bytes(4, "little") + path + (0xFFFFFFFF).to_bytes(4, "little")
    deps += (12 + 4 | 1 << 31).to_bytes(4, "little") + (0).to_bytes(4, "little")  # a deps record (top bit): id 0,
    deps += (1796415024383224579).to_bytes(8, "little") + (0).to_bytes(4, "little")  # its time, one input
    (build / ".ninja_deps").write_bytes(deps)
    (build / "link").symlink_to("/etc/passwd")  # never followed, never touched

    assert settle_ninja(str(build)) == 3
    log = (build / ".ninja_log").read_text().splitlines()
    assert log == ["# ninja log v7", f"1\t69\t{SETTLED_NS}\tpkg/_ext.so\tc5f171bc65a1b325"]
    settled = (build / ".ninja_deps").read_bytes()
    assert len(settled) == len(deps) and settled.startswith(deps[:-12])
    assert int.from_bytes(settled[-12:-4], "little") == SETTLED_NS and settled[-4:] == deps[-4:]
    for name in ("pkg/_ext.so", ".ninja_log", ".ninja_deps"):
        assert os.stat(build / name).st_mtime_ns == SETTLED_NS
    assert os.lstat(build / "link").st_mtime_ns != SETTLED_NS

    (build / ".ninja_deps").write_bytes(b"# ninjadeps\n" + (3).to_bytes(4, "little") + b"\0" * 8)
    settle_ninja(str(build))  # a format not known here: left as it is
    assert (build / ".ninja_deps").read_bytes() == b"# ninjadeps\n" + (3).to_bytes(4, "little") + b"\0" * 8
