"""A short soak in CI: 15 runs, faults at random moments (fixed seed), nothing may leak or lie."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, harness_env

# `reap --yes` cleans every dead run on the host: tests that reap share one xdist worker, so one
# never removes the containers another is still looking at (--dist loadgroup in pyproject.toml).
pytestmark = pytest.mark.xdist_group("reap")


def test_a_short_soak_has_no_leak_no_lost_report_no_hang_no_wrong_code(cpu_image, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--runs", "15", "--seed", "5", "--out", str(out)],
        capture_output=True,
        text=True,
        env=harness_env(),
        timeout=900,
    )
    summary = json.loads(out.read_text())["summary"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert summary["runs"] == 15
    for problem in ("leak", "missing-report", "hang", "wrong-code", "false-failure", "reap-failed"):
        assert summary[problem] == 0, (problem, done.stdout[-3000:])
    assert summary["by_where"]["container"] and summary["by_where"]["host"]
