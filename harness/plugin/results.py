"""Each test's outcome, written as it happens, and the stacks of a test that hangs.

Inside a gpuci run (GPUCI_REPORT_DIR is the run's outbox) every worker appends one JSON line per
test to `tests-<worker>.jsonl` (outcome, seconds, the failure's message) and keeps the test it is
running in `running-<worker>.txt`: a step stopped at its timeout still says which tests ran and
which one was running. With the step's timeout known (GPUCI_STEP_TIMEOUT_S), the running test's
Python stacks are dumped by faulthandler into `stacks-<worker>.txt` shortly before the supervisor
would stop it.
"""

from __future__ import annotations

import faulthandler
import json
import os
import time
from pathlib import Path
from typing import IO, Any

import pytest

from harness.in_container import RESULTS_PREFIX, RUNNING_PREFIX, STACKS_PREFIX

MAX_MESSAGE = 2000
MAX_STACK = 8000  # the end of pytest's report of a failure: where it failed
# Stacks are dumped this long before the supervisor's stop (or a tenth of the timeout if smaller).
DUMP_MARGIN_S = 10.0


def _outcome(report: pytest.TestReport) -> str | None:
    """One outcome per test: its call's, or its setup's when that failed or skipped."""
    if report.when == "call":
        return "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
    if report.when == "setup" and not report.passed:
        return "error" if report.failed else "skipped"
    if report.when == "teardown" and report.failed:
        return "error"
    return None


class RunningFile:
    """The test this worker is running, in `running-<worker>.txt`, kept current at one pwrite per
    change: the file stays open and each name is written over the last, padded with spaces (the
    reader strips them), so a test stopped by SIGKILL or the step's timeout is still named."""

    MAX_BYTES = 4000  # the reader keeps 1000 characters of the name

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.written = 0

    def name(self, nodeid: str) -> None:
        data = nodeid.encode(errors="replace")[: self.MAX_BYTES]
        os.pwrite(self.fd, data.ljust(self.written), 0)
        self.written = len(data)

    def clear(self) -> None:
        if self.written:
            os.pwrite(self.fd, b" " * self.written, 0)
            self.written = 0

    def close(self) -> None:
        self.clear()
        os.close(self.fd)


class ResultWriter:
    """Registered by the plugin where a run's outbox is known.

    The stacks are dumped by faulthandler's watchdog (its own C thread: a hang that holds the GIL
    cannot stop it), armed once for the deadline rather than per test: per test it costs a thread
    started and joined. A dump taken while no test runs is left for the reader to drop
    (harness.run.outbox keeps a worker's stacks only with the test its running file names). Only
    past the deadline, where a dump may already have happened, is it re-armed per test, so that the
    stacks are of the test still running.
    """

    def __init__(
        self, outbox: Path, worker: str, timeout_s: float | None, deadline: float | None = None, per_test: bool = False
    ) -> None:
        self.worker = worker
        # pytest's faulthandler_timeout arms and cancels faulthandler's one dump around each test:
        # ours is then armed per test after it, as it always was.
        self.per_test = per_test
        self.results: IO[str] = open(outbox / f"{RESULTS_PREFIX}{worker}.jsonl", "a")  # noqa: SIM115
        self.running = RunningFile(outbox / f"{RUNNING_PREFIX}{worker}.txt")
        self.stacks: IO[str] | None = None
        self.deadline: float | None = None
        self.past_deadline = False
        self.disarmed = False  # pytest cancels faulthandler's dump where a test fails (exception_interact)
        if timeout_s:
            self.stacks = open(outbox / f"{STACKS_PREFIX}{worker}.txt", "w")  # noqa: SIM115
            # From the stop's time on the host's clock where given, else from now (a later start).
            left = timeout_s if deadline is None else min(timeout_s, deadline - time.time())
            self.deadline = time.monotonic() + left - min(DUMP_MARGIN_S, timeout_s / 10)
            self._arm(None)

    def _arm(self, nodeid: str | None) -> None:
        """The stacks file emptied and a dump set for the deadline, or half a second from now past it."""
        assert self.stacks is not None and self.deadline is not None
        faulthandler.cancel_dump_traceback_later()
        self.disarmed = False
        self.stacks.seek(0)
        self.stacks.truncate()  # only the stacks of a test that is still running count
        left = self.deadline - time.monotonic()
        self.past_deadline = left < 0.5
        if nodeid is None and (self.past_deadline or self.per_test):
            return  # between tests: the next test's start arms it
        name = nodeid or "the test in running-" + self.worker + ".txt"
        self.stacks.write(f"== stacks of {name}, still running near the step's timeout ==\n")
        self.stacks.flush()
        faulthandler.dump_traceback_later(max(0.5, left), exit=False, file=self.stacks)

    def _rearm_now(self) -> bool:
        """Whether the dump set for the deadline may be gone: taken, near, or cancelled by another."""
        if self.deadline is None:
            return False
        return self.per_test or self.disarmed or self.past_deadline or time.monotonic() >= self.deadline - 0.5

    @pytest.hookimpl(trylast=True)
    def pytest_exception_interact(self) -> None:
        self.disarmed = True  # pytest's faulthandler plugin cancelled the dump: armed again at the next change

    @pytest.hookimpl(trylast=True)
    def pytest_enter_pdb(self) -> None:
        self.disarmed = True

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.running.name(nodeid)
        if self._rearm_now():
            self._arm(nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = _outcome(report)
        if outcome is None:
            return
        entry: dict[str, Any] = {"test": report.nodeid, "outcome": outcome, "seconds": round(report.duration, 6)}
        if report.failed and report.longrepr is not None:
            entry["message"] = _message(report)
            entry["stack"] = _stack(report)
        self.results.write(json.dumps(entry) + "\n")
        self.results.flush()

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.running.clear()
        # Near the deadline the dump may have been of this test: drop it, re-arm for the next one.
        if self._rearm_now():
            self._arm(None)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        faulthandler.cancel_dump_traceback_later()
        self.running.close()
        self.results.close()
        if self.stacks is not None:
            self.stacks.close()


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = f"{crash.message}"
    elif isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:  # a skip: (path, line, reason)
        text = str(report.longrepr[2])
    else:
        text = str(report.longrepr)
    return text[:MAX_MESSAGE]


def _stack(report: pytest.TestReport | pytest.CollectReport) -> str:
    return report.longreprtext[-MAX_STACK:]


class CollectWriter:
    """Collection that did not pass: a module skipped as it was imported (`pytest.importorskip` at
    module level) counts one skipped, a module that failed to import one error, as pytest counts
    them. Registered in the process pytest counts in (the only one, or xdist's controller, which
    hears each such report once, whatever the number of workers)."""

    def __init__(self, outbox: Path) -> None:
        self.results: IO[str] = open(outbox / f"{RESULTS_PREFIX}collect.jsonl", "a")  # noqa: SIM115

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.passed:
            return
        entry = {"test": report.nodeid, "outcome": "error" if report.failed else "skipped", "seconds": 0.0}
        if report.longrepr is not None:
            entry["message"] = _message(report)
            if report.failed:
                entry["stack"] = _stack(report)
        self.results.write(json.dumps(entry) + "\n")
        self.results.flush()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.results.close()


def collect_writer_for(config: pytest.Config) -> CollectWriter | None:
    outbox = os.environ.get("GPUCI_REPORT_DIR")
    if not outbox or not os.environ.get("GPUCI_RUN_ID") or not Path(outbox).is_dir():
        return None
    return CollectWriter(Path(outbox))


def writer_for(config: pytest.Config) -> ResultWriter | None:
    outbox = os.environ.get("GPUCI_REPORT_DIR")
    if not outbox or not os.environ.get("GPUCI_RUN_ID") or not Path(outbox).is_dir():
        return None
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    timeout = os.environ.get("GPUCI_STEP_TIMEOUT_S")
    deadline = os.environ.get("GPUCI_STEP_DEADLINE")
    try:
        at = float(deadline) if deadline else None
    except ValueError:
        at = None
    per_test = _faulthandler_timeout(config) > 0
    return ResultWriter(Path(outbox), worker, float(timeout) if timeout else None, at, per_test)


def _faulthandler_timeout(config: pytest.Config) -> float:
    try:
        return float(config.getini("faulthandler_timeout") or 0)
    except (ValueError, TypeError):  # the project's setting, whatever it wrote; pytest says so itself
        return 0.0
