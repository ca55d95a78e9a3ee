"""The one place that turns a run into its report: context, supervised outcome, exit code, report.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness.console import say
from harness.errors import ExitCode, GpuciError
from harness.reports.report import git_state, host_facts, write_report
from harness.run.environment import stop_policy
from harness.run.options import RunContext, RunOptions
from harness.run.supervisor import Supervised, VramWatch, Workload, supervise


def new_context(options: RunOptions, run_id: str, directory: Path, *, container: bool, **fields: Any) -> RunContext:
    """What every report starts with, so a run that fails at any point still says what it was."""
    return RunContext(
        run_id,
        directory,
        {
            "run_id": run_id,
            "platform": options.platform,
            **fields,
            "started_at": time.time(),
            "git": git_state(options.root),
            "host": host_facts(),
            "mode": "container" if container else "host",
            "report_dir": str(directory),
        },
    )


def _outcome(sup: Supervised, soft_fail: bool = False) -> tuple[str, ExitCode]:
    if sup.stop_reason not in ("exited", "timeout"):
        return "cancelled", ExitCode.TESTS_FAILED  # the agent or a person stopped it: nothing to retry
    if sup.teardown_failed:
        return "teardown-failed", ExitCode.TEARDOWN_FAILED
    if sup.stop_reason == "timeout":
        return "timeout", ExitCode.TESTS_FAILED
    if sup.exit_code == 0:
        return "passed", ExitCode.PASSED
    return "failed", ExitCode.TESTS_FAILED


def _supervised_report(sup: Supervised, watch: VramWatch | None) -> dict[str, Any]:
    release = sup.release
    return {
        "exit_code": sup.exit_code,
        "stop_reason": sup.stop_reason,
        "signals_sent": sup.signals_sent,
        "timings": {k: round(v, 6) for k, v in sup.timings.items()},
        "budget": {
            "seconds": sup.budget_s,
            "stop_seconds": None if sup.stop_s is None else round(sup.stop_s, 6),
            "margin_seconds": None if sup.budget_margin_s is None else round(sup.budget_margin_s, 6),
            "within": None if sup.budget_margin_s is None else sup.budget_margin_s >= 0,
        },
        "vram": None
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
        },
        "removed": sup.removed,
        "teardown_failures": sup.teardown_failures(),
    }


def supervise_into(
    ctx: RunContext,
    workload: Workload,
    options: RunOptions,
    watch: VramWatch | None,
    timeout_s: float | None,
    budget_s: float,
    soft_fail: bool = False,
) -> ExitCode:
    sup = supervise(workload, timeout_s=timeout_s, budget_s=budget_s, stop=stop_policy(options.grace_s), vram=watch)
    supervised = _supervised_report(sup, watch)
    ctx.report["timings"] = {**ctx.report.get("timings", {}), **supervised.pop("timings")}
    ctx.report.update(supervised)
    leftovers = getattr(workload, "leftovers", [])
    if leftovers:
        ctx.report["leftover_pids"] = leftovers
        ctx.report["survivor_pids"] = getattr(workload, "survivors", [])
    outcome, code = _outcome(sup, soft_fail)
    ctx.report["outcome"] = outcome
    ctx.report["soft_fail"] = soft_fail
    return code


def finish(ctx: RunContext, root: Path, report_dir: Path | None, started: float, code: ExitCode) -> ExitCode:
    ctx.report["gpuci_exit_code"] = int(code)
    ctx.report["timings"] = {**ctx.report.get("timings", {}), "total_s": round(time.monotonic() - started, 6)}
    ctx.report["finished_at"] = time.time()
    if ctx.redactor is not None:  # the last pass: pytest arguments, errors, anything quoted from the run
        ctx.report = json.loads(ctx.redactor.text(json.dumps(ctx.report, default=str)))
    path = write_report(ctx.directory, ctx.report, None if report_dir else root)
    say(f"{ctx.report.get('outcome', '?')}: report {path}")
    from harness.reports.summary import on_buildkite

    on_buildkite(ctx.report, ctx.directory)
    return code


def finish_failed(ctx: RunContext, options: RunOptions, started: float, exc: GpuciError) -> None:
    """A run that could not run (no engine, bad image, no free GPU) still leaves its report."""
    ctx.report["outcome"] = "infrastructure" if exc.exit_code == ExitCode.INFRASTRUCTURE else "error"
    ctx.report["error"] = str(exc)
    signal_name = getattr(exc, "signal_name", None)  # a cancel before the workload started
    if signal_name:
        ctx.report["outcome"], ctx.report["stop_reason"] = "cancelled", signal_name
    finish(ctx, options.root, options.report_dir, started, exc.exit_code)
