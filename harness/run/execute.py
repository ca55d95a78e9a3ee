"""`python -m harness run`: one step, or every step of an area on a platform, each as its own run."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from harness.console import say
from harness.declare.platforms import get_platform
from harness.errors import SEVERITY, ExitCode, GpuciError, UsageError, gpuci_cause
from harness.redact import Redactor
from harness.reports.report import new_run_id, run_directory
from harness.run.cancel import GATE
from harness.run.container.workload import container_workload
from harness.run.finish import finish, finish_failed, supervise_into
from harness.run.gpus import lease_gpus, let_go
from harness.run.host.workload import host_workload
from harness.run.options import RunOptions
from harness.run.outbox import Collected, collect, discard, make_outbox
from harness.run.run import Run
from harness.run.secrets import remove_secrets

if TYPE_CHECKING:  # Docker and YAML are imported only where used: host mode runs without them.
    from harness.declare.areas import Step


def execute_step(options: RunOptions, area_name: str, step_label: str | None) -> ExitCode:
    """Run one step, or every non-optional step of the area on the platform, each as its own run."""
    from harness.declare.sources import find_area

    area = find_area(options.root, area_name, options.config.declarations)
    steps = (
        [area.step(step_label, options.platform)]
        if step_label
        else [s for s in area.steps_for(options.platform) if not s.optional]
    )
    if not steps:
        raise UsageError(f"area {area.name!r} has no step that runs on {options.platform} ({area.path}).")
    if options.container:  # the declared limits and network are the project's asks (host mode trusts it whole)
        from harness.declare.within_policy import check_step

        for step in steps:
            check_step(options.policy, area, step)
    worst = ExitCode.PASSED
    for step in steps:
        # The step's own Python, where the command line chose none (harness.declare.pythons).
        options_for_step = replace(options, python=options.python or step.python)
        code = _execute_one(
            options_for_step, area.name, step, f"nox -s cpu_{area.name}" if "cpu" in area.platforms else None
        )
        worst = max(worst, code, key=_severity)
    return worst


def report_tests(run: Run, collected: Collected) -> None:
    """Each test's outcome and the counts; the test a timeout caught, with its stacks."""
    from harness.reports.records import Hang, TestRecord, TestResult
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
    for line in summary_lines(results, collected.running):
        say(line)


def _severity(code: ExitCode) -> int:
    return SEVERITY.index(code)


def _execute_one(options: RunOptions, area: str, step: Step, cpu_session: str | None = None) -> ExitCode:
    from harness.declare.areas import session_name

    session = session_name(options.platform, area)
    run_id = new_run_id(session)
    run = Run(
        options,
        run_id,
        run_directory(options.root, run_id, options.report_dir),
        get_platform(options.platform),
        # Every value passed by --env or declared secret is masked by value, whatever its name.
        Redactor(os.environ, step.env, secrets=[os.environ.get(n, "") for n in options.pass_env]),
        step=step,
        area=area,
        outbox=make_outbox(options.root),
    )
    say(f"{session} · step {step.label!r} · run {run_id}")
    run.begin_report(container=options.container, session=session)
    assert run.outbox is not None
    watch, held = None, None
    try:
        with GATE.cancellable():  # a cancel before the workload runs stops the run here, reported
            # A cancel while waiting for a GPU stops the wait at once; the lease takes nothing half.
            watch, held = lease_gpus(options, step.num_gpus, run_id, cpu_session)
            run.report.lease = [d.id for d in held.devices] if held else []
            run.report.gpus = [
                {"id": d.id, "name": d.name, "total_bytes": d.total_bytes} for d in (watch.devices if watch else [])
            ]
            workload = container_workload(run, watch) if options.container else host_workload(run, watch)
            if options.reproduction and options.reproduction.shell:
                from harness.run.container.docker import interactive_shell

                if not options.container:
                    raise UsageError("--shell opens a shell in the run's container; drop --no-container.")
                say("opening a shell in the run's container (exit it to end the run)")
                code = ExitCode.PASSED if interactive_shell(workload.spec) == 0 else ExitCode.TESTS_FAILED
                run.report.outcome = "shell"
                return finish(run, code)
            code = supervise_into(run, workload, watch)
        log_failure = getattr(getattr(workload, "pump", None), "failure", None)
        if log_failure:  # a full disk: the tests ran, but what they said is not all kept
            run.report.log_error = log_failure
            say(f"the log could not be written ({log_failure}); the run counts as an infrastructure failure")
            code = max(code, ExitCode.INFRASTRUCTURE, key=_severity)
        collected = collect(run.outbox, run.directory, run.redactor.bytes)
        report_tests(run, collected)
        if collected.skipped:
            run.report.outbox_skipped = [vars(s) for s in collected.skipped]
            say(f"ignored {len(collected.skipped)} file(s) the workload left: links, odd or oversized files")
        run.report.log = str(run.directory / "output.log")
    except GpuciError as exc:
        finish_failed(run, exc)
        raise
    except Exception as exc:
        cause = gpuci_cause(exc)  # a cancel a library wrapped (the Docker SDK, requests)
        if cause is None:
            raise
        finish_failed(run, cause)
        raise cause from None
    finally:
        let_go(watch, held)
        discard(run.outbox)
        remove_secrets(run.secrets)
    return finish(run, code)
