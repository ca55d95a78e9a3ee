"""A full disk is one clear message and exit 75, with whatever report can be written; nothing half-written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")

AREA = """\
platforms: [cpu]
steps:
  - label: chatty
    commands: ["python3 -c \\"import sys; [print('line', i, 'x' * 200) for i in range(20000)]\\""]
"""


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_under_the_run_folder_is_one_message_and_75(
    make_project, run_harness, cpu_image, small_disk
) -> None:
    root = make_project(AREA, name="chatty")
    done = run_harness(
        "run", "--platform", "cpu", "--area", "chatty", "--root", str(root), "--report-dir", str(small_disk)
    )
    assert done.returncode == 75, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "No space left on device" in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("gpuci: error")]
    assert len(errors) <= 1
    for path in small_disk.iterdir():  # no zero-byte or temporary file left, only what could be written
        assert not path.name.startswith(".report."), path
    report = small_disk / "report.json"
    if report.exists():
        assert '"log_error"' in report.read_text()
