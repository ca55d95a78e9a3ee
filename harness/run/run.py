"""One run, handed on once: what it was asked, where it writes, and what it has learnt so far.

As nox's `SessionRunner` holds one session's configuration and results, a `Run` holds one run's:
the options, the declared step and its area (none for `supervise`), the resolved platform, the run
folder, the redactor and the start time, and the report as it fills, so that a failure at any
point still writes one. The container and host workloads, the supervision and the finishing each
take the `Run`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.declare.platforms import Platform
from harness.declare.stop_policy import StopPolicy, stop_policy
from harness.redact import Redactor
from harness.reports.report import RunReport, git_state, host_facts
from harness.run.logs import LogTarget
from harness.run.options import RunOptions

if TYPE_CHECKING:  # YAML is imported only where used
    from harness.declare.areas import Step


@dataclass
class Run:
    options: RunOptions
    run_id: str
    directory: Path
    platform: Platform
    redactor: Redactor
    started: float = field(default_factory=time.monotonic)
    step: Step | None = None
    area: str | None = None
    report: RunReport = field(init=False)
    # The workload's outbox (.gpuci/outbox/run-…): the only folder of gpuci's it can write.
    outbox: Path | None = None
    # The private folder of the secrets file the container sources, removed when the run ends.
    secrets: Path | None = None

    def __post_init__(self) -> None:
        self.report = RunReport(self.run_id, self.options.platform, report_dir=str(self.directory))

    def begin_report(self, *, container: bool, session: str) -> None:
        """What every report starts with, so a run that fails at any point still says what it was."""
        report = self.report
        report.session = session
        if self.step is not None:
            report.area, report.step = self.area, self.step.label
            report.pytest_args = list(self.options.pytest_args)
        report.repro_of = self.options.reproduction.of if self.options.reproduction else None
        report.started_at = time.time()
        report.git = git_state(self.options.root)
        report.host = host_facts()
        report.mode = "container" if container else "host"

    def log_target(self) -> LogTarget:
        """The run's output.log, redacted, echoed unless --quiet."""
        return LogTarget(self.directory / "output.log", self.redactor, echo=self.options.echo)

    @property
    def timeout_s(self) -> float | None:
        """--timeout, else the step's timeout_in_minutes."""
        return self.options.timeout_for(self.step.timeout_in_minutes if self.step else None)

    @property
    def budget_s(self) -> float:
        """The stop budget: the step's for this platform, else the platform's."""
        default = self.platform.shutdown_budget_s
        return self.step.shutdown_budget.get(self.platform.name, default) if self.step else default

    @property
    def stop_policy(self) -> StopPolicy:
        """How this run's workload is stopped, by the supervisor, the watcher in its container and the janitor."""
        return stop_policy(self.options.grace_s, self.options.vram_timeout_s)

    @property
    def soft_fail(self) -> bool:
        return bool(self.step and self.step.soft_fail)
