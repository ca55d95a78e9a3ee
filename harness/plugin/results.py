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

from harness.run.outbox import RESULTS_PREFIX, RUNNING_PREFIX, STACKS_PREFIX

MAX_MESSAGE = 2000
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


class ResultWriter:
    """Registered by the plugin where a run's outbox is known."""

    def __init__(self, outbox: Path, worker: str, timeout_s: float | None) -> None:
        self.worker = worker
        self.results: IO[str] = open(outbox / f"{RESULTS_PREFIX}{worker}.jsonl", "a")  # noqa: SIM115
        self.running = outbox / f"{RUNNING_PREFIX}{worker}.txt"
        self.stacks: IO[str] | None = None
        self.deadline: float | None = None
        if timeout_s:
            self.stacks = open(outbox / f"{STACKS_PREFIX}{worker}.txt", "w")  # noqa: SIM115
            self.deadline = time.monotonic() + timeout_s - min(DUMP_MARGIN_S, timeout_s / 10)

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.running.write_text(nodeid)
        if self.stacks is not None and self.deadline is not None:
            left = max(0.5, self.deadline - time.monotonic())
            self.stacks.write(f"== stacks of {nodeid}, still running near the step's timeout ==\n")
            self.stacks.flush()
            faulthandler.dump_traceback_later(left, exit=False, file=self.stacks)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = _outcome(report)
        if outcome is None:
            return
        entry: dict[str, Any] = {"test": report.nodeid, "outcome": outcome, "seconds": round(report.duration, 6)}
        if report.failed and report.longrepr is not None:
            entry["message"] = _message(report)
        self.results.write(json.dumps(entry) + "\n")
        self.results.flush()

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        if self.stacks is not None:
            faulthandler.cancel_dump_traceback_later()
            self.stacks.seek(0)
            self.stacks.truncate()  # only the stacks of a test that is still running count
        self.running.write_text("")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        faulthandler.cancel_dump_traceback_later()
        self.results.close()
        if self.stacks is not None:
            self.stacks.close()


def _message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = f"{crash.message}" if crash is not None else str(report.longrepr)
    return text[:MAX_MESSAGE]


def writer_for(config: pytest.Config) -> ResultWriter | None:
    outbox = os.environ.get("GPUCI_REPORT_DIR")
    if not outbox or not os.environ.get("GPUCI_RUN_ID") or not Path(outbox).is_dir():
        return None
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    timeout = os.environ.get("GPUCI_STEP_TIMEOUT_S")
    return ResultWriter(Path(outbox), worker, float(timeout) if timeout else None)
