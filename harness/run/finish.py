"""The end of a run: what the supervisor saw, the outcome and exit code, and report.json written (the
only writer of a run's report). The rest of the report is filled in before, where it is learnt:
the container workload (image, devices, spec), execute (lease, tests, log) and command (spec)."""

from __future__ import annotations

import json
import time

from harness.console import say
from harness.errors import ExitCode, GpuciError
from harness.reports.records import Budget
from harness.reports.report import RunReport, write_report
from harness.run.run import Run
from harness.run.supervise.stop import outcome, teardown_failures
from harness.run.supervise.supervised import Supervised, VramWatch, Workload
from harness.run.supervise.supervisor import supervise


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


def supervise_into(run: Run, workload: Workload, watch: VramWatch | None) -> ExitCode:
    """The workload supervised to its end; what happened goes into the run's report."""
    stop = run.stop_policy
    sup = supervise(workload, timeout_s=run.timeout_s, budget_s=run.budget_s, stop=stop, vram=watch)
    _record_supervised(run.report, sup, watch)
    leftovers = getattr(workload, "leftovers", [])
    if leftovers:
        run.report.leftover_pids = leftovers
        run.report.survivor_pids = getattr(workload, "survivors", [])
    ended, code = outcome(sup)
    run.report.outcome = ended
    run.report.soft_fail = run.soft_fail
    return code


def finish(run: Run, code: ExitCode) -> ExitCode:
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


def finish_failed(run: Run, exc: GpuciError) -> None:
    """A run that could not run (no engine, bad image, no free GPU) still leaves its report."""
    run.report.outcome = "infrastructure" if exc.exit_code == ExitCode.INFRASTRUCTURE else "error"
    run.report.error = str(exc)
    signal_name = getattr(exc, "signal_name", None)  # a cancel before the workload started
    if signal_name:
        run.report.outcome, run.report.stop_reason = "cancelled", str(signal_name)
    finish(run, exc.exit_code)
