"""Finishing a run, in-process: the report written once, redacted, `latest` pointing at it, the code kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.declare.platforms import get_platform
from harness.declare.stop_policy import StopPolicy
from harness.errors import ExitCode, InfrastructureError
from harness.gpu.for_run import Leased
from harness.redact import Redactor
from harness.run.finish import _report_tests, finish, finish_failed
from harness.run.host.workload import HostPart
from harness.run.options import RunOptions
from harness.run.outbox import Collected
from harness.run.run import Run, begin_report

SECRET = "hf_" + "q8Zr2LmN4pXv7TbK1sWy9CdE3fGh6JkA"  # shaped like a Hugging Face token


def a_run(root: Path) -> Run:
    options = RunOptions(root=root, platform="cpu")
    report = begin_report(root, "cpu_demo", root / "runs" / "one", "cpu")  # the folder made, as a run's
    report.mode = "host"
    platform = get_platform("cpu")
    return Run(
        options,
        report.run_id,
        root / "runs" / "one",
        platform,
        Redactor({}),
        report,
        StopPolicy(),
        platform.shutdown_budget_s,
    )


def test_a_finished_run_writes_its_report_redacted_and_keeps_its_code(tmp_path: Path) -> None:
    run = a_run(tmp_path)
    run.report.outcome = "failed"
    run.report.spec = {"command": ["pytest", "-k", f"token={SECRET}"]}  # quoted from the run, unmasked
    assert finish(run, ExitCode.TESTS_FAILED) == ExitCode.TESTS_FAILED
    text = (run.directory / "report.json").read_text()
    report = json.loads(text)
    assert report["gpuci_exit_code"] == 1 and report["outcome"] == "failed" and report["mode"] == "host"
    assert report["timings"]["total_s"] >= 0 and report["finished_at"] >= report["started_at"]
    assert SECRET not in text and "token=" in text  # masked by its shape, the rest kept


def test_a_run_that_could_not_run_still_leaves_its_report(tmp_path: Path) -> None:
    run = a_run(tmp_path)
    finish_failed(run, InfrastructureError("the Docker Engine is not running"))
    report = json.loads((run.directory / "report.json").read_text())
    assert report["outcome"] == "infrastructure" and report["gpuci_exit_code"] == 75
    assert report["error"] == "the Docker Engine is not running"


def test_the_caller_assembles_the_report_from_each_stages_answer(tmp_path: Path) -> None:
    """No stage edits the report: the lease and the backend's part are recorded when the run finishes,
    and a run stopped before its lease answered says no lease at all."""
    run = a_run(tmp_path)
    part = HostPart(None, {"command": ["bash", "-ec", "pytest"], "cwd": str(tmp_path)})  # type: ignore[arg-type]
    finish(run, ExitCode.PASSED, part, Leased())
    report = json.loads((run.directory / "report.json").read_text())
    assert report["spec"]["command"][-1] == "pytest" and report["lease"] == [] and report["gpus"] == []
    stopped = a_run(tmp_path / "stopped")
    finish_failed(stopped, InfrastructureError("cancelled while waiting for a GPU"))
    report = json.loads((stopped.directory / "report.json").read_text())
    assert report["lease"] is None and report["spec"] is None


def test_the_console_counts_the_test_a_timeout_caught_as_the_report_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # markupsafe with a planted hang: the console said "tests: 1 failed, 39 passed", report.json and
    # `gpuci report` "1 failed, 39 passed, 1 timeout".
    run = a_run(tmp_path)
    run.report.outcome = "timeout"
    results = [{"test": "t.py::ok", "outcome": "passed"}, {"test": "t.py::bad", "outcome": "failed", "message": "no"}]
    _report_tests(run, Collected(results=results, running=["t.py::hang"], stacks='  File "t.py", line 9 in hang\n'))
    said = capsys.readouterr().err.splitlines()
    assert run.report.counts == {"failed": 1, "passed": 1, "timeout": 1}
    assert "gpuci: tests: 1 failed, 1 passed, 1 timeout" in said
    assert "gpuci:   still running when the step was stopped: t.py::hang" in said
    assert not any("error: t.py::hang" in line or "timeout: t.py::hang" in line for line in said)  # named once
