"""One run, handed on once: what it was asked, where it writes, and what it has learnt so far.

As nox's `SessionRunner` holds one session's configuration and results, a `Run` holds one run's: the
options, the declared step and its area (none for `supervise`), the resolved platform, the run folder,
the redactor, the start time, its timeout, stop budget and stop policy, and the report as it fills, so
that a failure at any point still writes one. Every value is data: the stages after it read fields.
`begin_run` makes one as a step's run begins: its id and folder, its outbox, the report's first facts.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.ci_provider import CIJob, job
from harness.console import say
from harness.declare.platforms import Platform
from harness.declare.stop_policy import StopPolicy
from harness.git import refused, run_git
from harness.owned import make_owned_dir, remove_stale
from harness.redact import Redactor
from harness.reports.report import RUNS_DIR, RunReport
from harness.run.options import RunOptions
from harness.run.outbox import OUTBOX_DIR, OUTBOX_PREFIX
from harness.untrusted import private_dir

if TYPE_CHECKING:  # YAML is imported only where used
    from harness.declare.areas import Step
    from harness.declare.request import RunRequest, StepRequest


@dataclass
class Run:
    options: RunOptions
    run_id: str
    directory: Path
    platform: Platform
    redactor: Redactor
    report: RunReport
    stop_policy: StopPolicy  # how its workload is stopped: by the supervisor, the watcher in its container, the janitor
    budget_s: float  # the stop budget: the step's for this platform, else the platform's
    timeout_s: float | None = None  # --timeout, else the step's timeout_in_minutes
    started: float = field(default_factory=time.monotonic)
    step: Step | None = None
    area: str | None = None
    # The workload's outbox (.gpuci/outbox/run-…): the only folder of gpuci's it can write.
    outbox: Path | None = None
    ci: CIJob = field(default_factory=job)  # the CI job's facts, as the request read them

    @property
    def soft_fail(self) -> bool:
        return bool(self.step and self.step.soft_fail)


def begin_run(options: RunOptions, request: RunRequest, planned: StepRequest) -> Run:
    """A step's run as it begins, its report already saying what it was (a run that fails at any point
    still says so). Every value passed by --env or declared secret is masked by value, whatever its name."""
    step = planned.step
    options = replace(options, python=planned.python)  # the step's image's Python, as the request resolved it
    report = begin_report(options.root, request.session, options.report_dir, options.platform)
    report.area, report.step = request.area, step.label
    report.pytest_args = list(options.pytest_args)
    report.repro_of = options.reproduction.of if options.reproduction else None
    report.mode = "container" if options.container else "host"
    return Run(
        options,
        report.run_id,
        Path(report.report_dir or ""),
        request.platform,
        Redactor(os.environ, step.env, secrets=[os.environ.get(n, "") for n in options.pass_env]),
        report,
        request.stop,
        planned.budget_s,
        planned.timeout_s,
        step=step,
        area=request.area,
        outbox=make_outbox(options.root),
        ci=request.ci,
    )


def begin_report(root: Path, session: str, report_dir: Path | None, platform: str) -> RunReport:
    """What every report starts with: the run's id and folder, its start, the commit and the host."""
    run_id = new_run_id(session)
    report = RunReport(run_id, platform, report_dir=str(run_directory(root, run_id, report_dir)))
    report.session = session
    report.started_at = time.time()
    report.git = git_state(root)
    report.host = {"hostname": socket.gethostname(), "pid": os.getpid()}
    return report


def new_run_id(session: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{session}-{secrets.token_hex(3)}"


def run_directory(root: Path, run_id: str, report_dir: Path | None) -> Path:
    if report_dir:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        return Path(report_dir)
    return private_dir(root, *RUNS_DIR.parts, run_id)


def make_outbox(root: Path) -> Path:
    """A fresh outbox (harness.run.outbox), named by this process (harness/owned.py): those of SIGKILLed
    runs go here."""
    parent = private_dir(root, *OUTBOX_DIR)
    remove_stale(parent, OUTBOX_PREFIX)
    return make_owned_dir(parent, OUTBOX_PREFIX)


def git_state(root: Path) -> dict[str, Any]:
    """The commit and whether tracked files differ from it: one `git status` call."""
    try:
        out = run_git(
            root, "status", "--porcelain=v2", "--branch", "--untracked-files=no", "--ignore-submodules=all", timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if out.returncode != 0:
        why = refused(root, out.stderr)
        if why:
            say(f"warning: {why}")
        return {"commit": None, "dirty": None}
    lines = out.stdout.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    return {
        "commit": None if commit in (None, "(initial)") else commit,
        "dirty": any(not line.startswith("#") for line in lines),
    }
