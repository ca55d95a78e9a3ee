"""What the project controls is read bounded: a huge, linked or deeply nested file is a one-line error
(exit 2), or skipped by the lint, with gpuci's memory bounded. How quickly is bench/'s question: here a
whole gpuci process shares 2 cores with other suites, so only a hang is capped (the subprocess timeout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, harness_env

# Runs gpuci's command line and says its own peak memory (KiB) on its last line of stderr.
MEASURED = (
    "import resource, sys\n"
    "from harness.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)


def gpuci(root: Path, *args: str, root_flag: bool = True) -> tuple[subprocess.CompletedProcess[str], int]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, *args, *(["--root", str(root)] if root_flag else [])],
        cwd=root, env=harness_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    *said, peak = done.stderr.strip().splitlines() or ["0"]
    return (
        subprocess.CompletedProcess(done.args, done.returncode, done.stdout, "\n".join(said)),
        int(peak) * 1024,
    )


def project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    areas = root / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "a.yaml").write_text("platforms: [cpu]\nsteps:\n  - label: a\n    commands: [pytest tests/test_a.py]\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    return root


def sparse(path: Path, size: int) -> None:
    with path.open("wb") as file:
        file.truncate(size)


@pytest.mark.parametrize(
    ("where", "make", "said"),
    [
        ("pyproject.toml", lambda p: sparse(p, 3 * 2**30), "larger than 2 MiB"),
        ("pyproject.toml", lambda p: p.symlink_to("/dev/zero"), "link out of"),
        ("pyproject.toml", lambda p: p.write_text("a = " + "[" * 50000 + "]" * 50000), "nests too deeply"),
        (".buildkite/test_areas/b.yaml", lambda p: sparse(p, 3 * 2**30), "larger than 4 MiB"),
        (".buildkite/test_areas/b.yaml", lambda p: p.symlink_to("/dev/zero"), "a link out of the checkout"),
        (".buildkite/test_areas/b.yaml", lambda p: os.mkfifo(p), "not a regular file"),  # never blocks
        (".buildkite/test_areas/b.yaml", lambda p: p.write_text("[" * 50000 + "]" * 50000), "nest"),
        (".buildkite/test_areas/b.yaml", lambda p: p.write_text("steps: " + "{a: " * 50000 + "}" * 50000), "nest"),
    ],
)
def test_a_huge_linked_or_deep_project_file_is_one_line(tmp_path: Path, where, make, said) -> None:
    root = project(tmp_path)
    make(root / where)
    for command in (("pipeline", "--all"), ("lint",)):
        done, peak = gpuci(root, *command)
        assert done.returncode == 2, done.stderr
        assert said in done.stderr and done.stderr.count("\n") == 0, done.stderr  # one line
        assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
        assert peak < 300 * 2**20, peak


def test_a_requirement_file_linked_to_a_device_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path)
    shutil.copytree(ROOT / "containers", root / "containers")
    (root / "reqs.txt").symlink_to("/dev/zero")
    (root / "pyproject.toml").write_text('[tool.gpuci]\nrequirements = ["reqs.txt"]\n')
    done, _ = gpuci(root, "image", "tag", "--platform", "cpu")
    assert done.returncode == 2 and "outside the checkout" in done.stderr, done.stderr
    (root / "reqs.txt").unlink()
    sparse(root / "reqs.txt", 3 * 2**30)
    done, peak = gpuci(root, "image", "tag", "--platform", "cpu")
    assert done.returncode == 2 and "larger than 2 MiB" in done.stderr, done.stderr
    assert peak < 300 * 2**20


def test_the_lint_skips_test_files_that_are_devices_links_out_or_huge(tmp_path: Path) -> None:
    root = project(tmp_path)
    tests = root / "tests"
    (tests / "test_zero.py").symlink_to("/dev/zero")
    (tests / "test_out.py").symlink_to("/etc/passwd")
    sparse(tests / "test_huge.py", 3 * 2**30)
    os.mkfifo(tests / "test_fifo.py")
    done, peak = gpuci(root, "lint", "--no-cache")
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr and "root:" not in done.stdout
    assert peak < 300 * 2**20, peak


def test_report_and_sharding_read_run_folders_a_checkout_can_carry_bounded(tmp_path: Path) -> None:
    from harness.run.buildkite.sharding import _earlier_durations

    root = project(tmp_path)
    runs = root / ".gpuci" / "runs"
    for name in ("20260101T000000Z-cpu_a-aaaaaa", "20260101T000001Z-cpu_a-bbbbbb", "20260101T000002Z-cpu_a-cccccc"):
        (runs / name).mkdir(parents=True)
    sparse(runs / "20260101T000002Z-cpu_a-cccccc" / "report.json", 3 * 2**30)
    (runs / "20260101T000001Z-cpu_a-bbbbbb" / "report.json").write_text('{"run_id": ' + "[" * 100000 + "]" * 100000)
    good = {"run_id": "20260101T000000Z-cpu_a-aaaaaa", "session": "cpu_a", "step": "a", "outcome": "passed",
            "tests": [{"test": "t::x", "phase": "call", "seconds": 1.5}, {"phase": "call"}]}  # fmt: skip
    (runs / "20260101T000000Z-cpu_a-aaaaaa" / "report.json").write_text(json.dumps(good))
    done, peak = gpuci(root, "report", str(runs), "--no-pictures", "--html", str(tmp_path / "r.html"), root_flag=False)
    assert done.returncode == 0, done.stderr
    assert "20260101T000000Z-cpu_a-aaaaaa" in done.stdout and "larger than 32 MiB" in done.stderr
    assert "Traceback" not in done.stderr and peak < 300 * 2**20
    assert _earlier_durations(root, "cpu_a") == {"t::x": 1.5}  # the huge and the deep one skipped
