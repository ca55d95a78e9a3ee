"""The end of a run: its report assembled from what each stage answered (the lease, the backend's part:
image, devices, spec; what the supervisor saw; the tests the workload reported), the outcome and exit
code, and report.json written (the only writer of a run's report)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Union

from harness.console import say
from harness.errors import SEVERITY, ExitCode, GpuciError
from harness.gpu.for_run import Leased
from harness.gpu.vram.release import VramWatch
from harness.reports.records import Budget, Hang, TestRecord, TestResult
from harness.reports.report import RunReport, write_report
from harness.run.host.workload import HostPart
from harness.run.outbox import collect
from harness.run.run import Run
from harness.run.supervise.stop import outcome, teardown_failures
from harness.run.supervise.supervised import Supervised, Workload

if TYPE_CHECKING:  # the Docker SDK is imported only where used: host mode runs without it
    from harness.run.container.docker import ContainerPart

# What a backend made ready: the workload and its part of the report.
Prepared = Union["ContainerPart", HostPart]


def _record_supervised(report: RunReport, sup: Supervised, watch: VramWatch | None) -> None:
    """What the supervisor saw, into the report: exit, stop, timings, the budget, the VRAM wait."""
    release = sup.release
    report.exit_code = sup.exit_code
    report.stop_reason = sup.stop_reason
    report.signals_sent = sup.signals_sent
    report.timings = {**report.timings, **{k: round(v, 6) for k, v in sup.timings.items()}}
    report.budget = Budget(
        seconds=sup.budget_s,
        stop_seconds=None if sup.stop_s is None else round(sup.stop_s, 6),
        margin_seconds=None if sup.budget_margin_s is None else round(sup.budget_margin_s, 6),
        within=None if sup.budget_margin_s is None else sup.budget_margin_s >= 0,
    )
    report.vram = (
        None
        if watch is None or release is None
        else {
            "backend": watch.backend.name,
            "devices": [d.id for d in watch.devices],
            "baseline_bytes": sup.baseline,
            "final_bytes": release.final_used,
            "tolerance_bytes": release.tolerance_bytes,
            "released": release.released,
            "wait_seconds": round(release.seconds, 6),
            "polls": release.polls,
            "holders": [vars(h) for h in release.holders],
            "killed_holders": [vars(h) for h in sup.killed_holders],
            "baseline_holders": [vars(h) for h in sup.baseline_holders],
        }
    )
    report.removed = sup.removed
    report.teardown_failures = teardown_failures(sup)


def record_supervised(run: Run, workload: Workload, watch: VramWatch | None, sup: Supervised) -> ExitCode:
    """What the supervisor saw of the workload, into the run's report; the run's exit code from it."""
    _record_supervised(run.report, sup, watch)
    leftovers = getattr(workload, "leftovers", [])
    if leftovers:
        run.report.leftover_pids = leftovers
        run.report.survivor_pids = getattr(workload, "survivors", [])
    ended, code = outcome(sup)
    run.report.outcome = ended
    run.report.soft_fail = run.soft_fail
    return code


def record_tests(run: Run, workload: Workload, code: ExitCode) -> ExitCode:
    """What the workload left in its outbox (each test's outcome, the counts, the test a timeout caught
    with its stacks) and its log, into the run's report; a log that could not be written fails the run."""
    log_failure = getattr(getattr(workload, "pump", None), "failure", None)
    if log_failure:  # a full disk: the tests ran, but what they said is not all kept
        run.report.log_error = log_failure
        say(f"the log could not be written ({log_failure}); the run counts as an infrastructure failure")
        code = max(code, ExitCode.INFRASTRUCTURE, key=SEVERITY.index)
    assert run.outbox is not None
    collected = collect(run.outbox, run.directory, run.redactor.xml)
    _report_tests(run, collected)
    if collected.skipped:
        run.report.outbox_skipped = [vars(s) for s in collected.skipped]
        say(f"ignored {len(collected.skipped)} file(s) the workload left: links, odd or oversized files")
    run.report.log = str(run.directory / "output.log")
    return code


def _report_tests(run: Run, collected: Any) -> None:
    """Each test's outcome and the counts; the test a timeout caught, with its stacks."""
    from harness.reports.results import counts, hung_results, masked, summary_lines, write_junit

    # What the workload wrote, secrets masked before any line is printed or file written from it.
    results = masked([TestResult.from_json(r) for r in collected.results], run.redactor.text)
    collected.running = [run.redactor.text(test) for test in collected.running]
    stopped = run.report.outcome != "passed" and collected.running
    # gpuci's own JUnit holds every pytest command of the step and the test a stop caught; pytest's
    # (the last command's, if it got to write one) is kept beside it.
    junit = write_junit(results, run.directory / "junit.xml", collected.running) if results or stopped else None
    run.report.junit = str(junit) if junit else None
    run.report.pytest_junit = str(collected.pytest_junit) if collected.pytest_junit else None
    run.report.tests = [TestRecord.from_json(r) for r in collected.records]
    run.report.results = results + hung_results(collected.running, collected.stacks, run.report.outcome)
    run.report.counts = counts(run.report.results)
    if collected.running:
        run.report.hang = Hang(tuple(collected.running), collected.stacks or None)
        if collected.stacks:
            with open(run.directory / "output.log", "a") as log:  # the supervisor's own file: safe to append
                log.write("\n[gpuci: Python stacks of the test still running at the step's timeout]\n")
                log.write(run.redactor.text(collected.stacks))
    for line in summary_lines(run.report.results, collected.running):
        say(line)


def record_parts(run: Run, part: Prepared | None, leased: Leased | None) -> None:
    """What the GPUs stage and the backend answered (the lease; the image, the devices, the spec),
    into the run's report: recorded whether the run got to its end or failed on the way."""
    report = run.report
    if leased is not None:
        report.lease = [d.id for d in leased.held.devices] if leased.held else []
        watch = leased.watch
        report.gpus = [
            {"id": d.id, "name": d.name, "total_bytes": d.total_bytes} for d in (watch.devices if watch else [])
        ]
    if part is None:
        return
    if isinstance(part, HostPart):  # the host backend's spec, redacted already
        report.spec = part.spec
    else:
        image = part.image
        report.image = image.to_report()
        report.timings = {"image_ensure_s": image.seconds, **report.timings}
        options = part.devices.options
        report.devices = {"route": options.route, "nodes": list(options.nodes), "groups": list(options.groups)}
        if part.test_engine:
            from harness.run.buildkite.collector import COLLECTOR

            report.test_engine = {"collector": COLLECTOR[0]}
        report.spec = part.spec.to_report(run.redactor)


def finish(run: Run, code: ExitCode, part: Prepared | None = None, leased: Leased | None = None) -> ExitCode:
    """The report assembled (`record_parts`) and written; the run's exit code."""
    record_parts(run, part, leased)
    run.report.gpuci_exit_code = int(code)
    run.report.timings = {**run.report.timings, "total_s": round(time.monotonic() - run.started, 6)}
    run.report.finished_at = time.time()
    # The last pass: pytest arguments, errors, anything quoted from the run.
    run.report = RunReport.from_json(json.loads(run.redactor.text(json.dumps(run.report.to_json(), default=str))))
    options = run.options
    path = write_report(run.directory, run.report, None if options.report_dir else options.root)
    say(f"{run.report.outcome or '?'}: report {path}")
    from harness.reports.summary import on_buildkite

    on_buildkite(run.report, run.directory)
    return code


def finish_failed(run: Run, exc: GpuciError, part: Prepared | None = None, leased: Leased | None = None) -> None:
    """A run that could not run (no engine, bad image, no free GPU) still leaves its report."""
    run.report.outcome = "infrastructure" if exc.exit_code == ExitCode.INFRASTRUCTURE else "error"
    run.report.error = str(exc)
    signal_name = getattr(exc, "signal_name", None)  # a cancel before the workload started
    if signal_name:
        run.report.outcome, run.report.stop_reason = "cancelled", str(signal_name)
    finish(run, exc.exit_code, part, leased)
