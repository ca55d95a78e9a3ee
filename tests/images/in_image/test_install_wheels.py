"""The image's wheel installer's bytecode step (it runs inside builds; here with the host's Python as the
venv's): a file a package ships that this Python cannot compile is named and left as source, the rest
is compiled hash-checked, and the packages' own test folders are not compiled."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.images.in_image import install_wheels


def test_a_file_that_does_not_compile_is_named_and_the_rest_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    monkeypatch.setattr(install_wheels, "VENV", str(venv))
    package = tmp_path / "site" / "pkg"
    (package / "tests").mkdir(parents=True)
    (package / "good.py").write_text("X = 1\n")
    (package / "old.py").write_text('print "python 2"\n')
    (package / "tests" / "test_it.py").write_text("Y = 2\n")
    install_wheels.compile_bytecode([str(package)])
    said = capsys.readouterr().out
    assert "1 file(s) did not compile" in said and str(package / "old.py") in said
    cached = sorted(p.name.split(".")[0] for p in (package / "__pycache__").iterdir())
    assert cached == ["good"]
    assert not (package / "tests" / "__pycache__").exists()
    flags = int.from_bytes(
        (package / "__pycache__" / next((package / "__pycache__").iterdir()).name).read_bytes()[4:8], "little"
    )
    assert flags == 3  # PEP 552: hash-based, checked
