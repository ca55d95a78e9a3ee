"""The running file and the stacks of a hung test, as a real pytest with gpuci's plugin leaves them
in the outbox when it is SIGKILLed, as a step's stop does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

# A step of 3 s: the stacks are dumped 0.3 s before its end (a tenth of the timeout).
TIMEOUT_S = 3.0

SUITE = """\
import os, pathlib, time

def running():
    return (pathlib.Path(os.environ["GPUCI_REPORT_DIR"]) / "running-main.txt").read_text()

def test_names_itself():
    assert running().strip() == "test_suite.py::test_names_itself"

def test_short():
    assert running().strip() == "test_suite.py::test_short"  # a shorter name over a longer one

def test_SECOND():
    time.sleep(max(0.0, float(os.environ["SLEEP_UNTIL"]) - time.time()))

def test_fails():
    assert 0, "pytest cancels faulthandler's dump as it reports a failure"

def test_hangs():
    time.sleep(600)
"""


def run_until_killed(tmp_path: Path, sleep_past_end: float | None, ini: str = "") -> Path:
    """pytest over SUITE, SIGKILLed as a step's stop would be (test_sleeps sleeping until
    `sleep_past_end` after the step's end, if given); its outbox."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (tmp_path / "test_suite.py").write_text(SUITE.replace("SECOND", "sleeps"))
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUCI_", "PYTEST_"))}
    end = time.time() + TIMEOUT_S
    env.update(
        PYTHONPATH=str(ROOT),
        GPUCI_RUN_ID="t",
        GPUCI_REPORT_DIR=str(outbox),
        GPUCI_VRAM_GUARD="0",
        GPUCI_STEP_TIMEOUT_S=f"{TIMEOUT_S}",
        GPUCI_STEP_DEADLINE=f"{end:.3f}",
        SLEEP_UNTIL=f"{0 if sleep_past_end is None else end + sleep_past_end}",
    )
    args = [sys.executable, "-m", "pytest", "-q", "-p", "harness.pytest_plugin", "-p", "no:cacheprovider"]
    proc = subprocess.Popen([*args, "test_suite.py"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    # Killed once test_hangs has run past the dump's time (at the deadline, or half a second after
    # a start past it), whatever the host's load makes of pytest's start.
    results, started = outbox / "tests-main.jsonl", None
    while proc.poll() is None and time.time() < end + 60:
        if started is None and results.exists() and results.read_text().count("\n") == 4:
            started = time.time()
        if started is not None and time.time() > max(end, started) + 4.0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the hanging test should have been running at the kill"
    return outbox


def test_a_killed_hang_is_named_with_its_stacks_and_the_tests_before_it_passed(tmp_path: Path) -> None:
    outbox = run_until_killed(tmp_path, sleep_past_end=None)
    assert (outbox / "running-main.txt").read_text().strip() == "test_suite.py::test_hangs"
    stacks = (outbox / "stacks-main.txt").read_text()
    assert "in test_hangs" in stacks and "in test_sleeps" not in stacks
    results = (outbox / "tests-main.jsonl").read_text()
    assert results.count('"outcome": "passed"') == 3  # the running file named each test as it ran
    assert results.count('"outcome": "failed"') == 1


def test_a_test_that_ends_after_the_dump_leaves_the_stacks_to_the_next_one(tmp_path: Path) -> None:
    """The first dump is of test_sleeps, which then passes: the hang after it gets its own."""
    outbox = run_until_killed(tmp_path, sleep_past_end=0.2)
    assert (outbox / "running-main.txt").read_text().strip() == "test_suite.py::test_hangs"
    stacks = (outbox / "stacks-main.txt").read_text()
    assert "in test_hangs" in stacks and "in test_sleeps" not in stacks
    assert stacks.startswith("== stacks of test_suite.py::test_hangs")


def test_pytests_own_faulthandler_timeout_does_not_take_the_dump_away(tmp_path: Path) -> None:
    """pytest arms faulthandler's one dump for each test (and cancels it): ours is armed after it."""
    outbox = run_until_killed(tmp_path, sleep_past_end=None, ini="faulthandler_timeout = 100")
    assert (outbox / "running-main.txt").read_text().strip() == "test_suite.py::test_hangs"
    assert "in test_hangs" in (outbox / "stacks-main.txt").read_text()
