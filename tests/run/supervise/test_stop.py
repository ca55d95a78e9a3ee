"""The run's stop, judged in-process: what counts as a failed teardown, how a run ended, the policy."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from harness.declare.stop_policy import StopPolicy, stop_policy
from harness.errors import ExitCode
from harness.gpu.vram.release import HolderInfo, ReleaseResult
from harness.run.plan import DEADLINE_MARGIN_S, watch_env, watch_for, watched_command
from harness.run.supervise.stop import outcome, stop_workload, teardown_failures
from harness.run.supervise.supervised import Supervised
from harness.teardown.process_tree import terminate


def supervised(**fields: object) -> Supervised:
    base: dict[str, object] = {
        "exit_code": 0,
        "stop_reason": "exited",
        "signals_sent": [],
        "timings": {"vram_back_s": 0.4},
        "budget_s": 2.1,
    }
    return Supervised(**{**base, **fields})  # type: ignore[arg-type]


def release(released: bool) -> ReleaseResult:
    return ReleaseResult(released, 0.4, 16 << 20, {"gpu0": 0}, {"gpu0": 0 if released else 5 << 30}, 3)


@pytest.mark.parametrize(
    ("fields", "reasons", "ended", "code"),
    [
        ({}, [], "passed", ExitCode.PASSED),
        ({"exit_code": 1}, [], "failed", ExitCode.TESTS_FAILED),
        ({"stop_reason": "timeout", "exit_code": -15}, [], "timeout", ExitCode.TESTS_FAILED),
        ({"stop_reason": "SIGTERM", "release": release(False)}, ["VRAM not back"], "cancelled", ExitCode.TESTS_FAILED),
        ({"release": release(False)}, ["VRAM not back at baseline"], "teardown-failed", ExitCode.TEARDOWN_FAILED),
        (
            {"release": release(True), "killed_holders": [HolderInfo(7, "gpu0", 1 << 30, "python -m server")]},
            ["VRAM back only after killing this run's holders"],
            "teardown-failed",
            ExitCode.TEARDOWN_FAILED,
        ),
        ({"removed": False}, ["processes or the container survived"], "teardown-failed", ExitCode.TEARDOWN_FAILED),
        ({"exit_code": None}, ["processes or the container survived"], "teardown-failed", ExitCode.TEARDOWN_FAILED),
        (
            {"timings": {"exited_s": 1.5, "vram_back_s": 1.0}},
            ["stop took 2.50s, over the 2.1s budget"],
            "teardown-failed",
            ExitCode.TEARDOWN_FAILED,
        ),
    ],
)
def test_a_teardown_is_judged_and_the_run_ends_with_its_code(fields, reasons, ended, code) -> None:
    sup = supervised(**fields)
    found = teardown_failures(sup)
    assert [r for r in found if any(r.startswith(want) for want in reasons)] == found and len(found) == len(reasons)
    assert outcome(sup) == (ended, code)


def test_inside_a_buildkite_job_the_stop_fits_the_agents_cancel_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUILDKITE_CANCEL_GRACE_PERIOD", raising=False)
    assert stop_policy(5.0, 12.0) == StopPolicy(grace_s=5.0, kill_wait_s=30.0, vram_timeout_s=12.0)
    monkeypatch.setenv("BUILDKITE_CANCEL_GRACE_PERIOD", "10")
    policy = stop_policy(5.0)
    assert policy.grace_s == 4.0 and policy.kill_wait_s == 3.0 and policy.grace_s + policy.kill_wait_s < 10


class Stubborn:
    """A workload that ignores SIGTERM and dies on SIGKILL, as the supervisor's clock sees it."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def signal(self, signum: int) -> None:
        self.signals.append(signum)


def test_sigterm_then_sigkill_when_the_grace_ends_and_a_second_stop_signal_changes_nothing() -> None:
    workload = Stubborn()
    events = iter(["SIGINT", None, "exit"])  # a second Ctrl-C during the grace, the grace ends, it dies

    def next_event(timeout: float) -> str | None:
        event = next(events)
        if event is None:
            time.sleep(timeout)  # nothing came in the time given
        return event

    sent: list[str] = []
    stop_workload(workload, next_event, StopPolicy(grace_s=0.05, kill_wait_s=1.0), sent)  # type: ignore[arg-type]
    assert sent == ["SIGTERM", "SIGKILL"] and workload.signals == [signal.SIGTERM, signal.SIGKILL]


def test_the_signal_order_is_the_policys_for_the_run_and_for_process_trees() -> None:
    """One implementation: the supervisor's stop and `terminate` both send what the policy names."""
    policy = StopPolicy(grace_s=0.05, kill_wait_s=1.0, signals=("SIGINT", "SIGKILL"))
    workload = Stubborn()
    events = iter([None, "exit"])

    def next_event(timeout: float) -> str | None:
        event = next(events)
        if event is None:
            time.sleep(timeout)
        return event

    sent: list[str] = []
    stop_workload(workload, next_event, policy, sent)  # type: ignore[arg-type]
    assert sent == ["SIGINT", "SIGKILL"] and workload.signals == [signal.SIGINT, signal.SIGKILL]

    catches_sigint = (
        "import signal,sys,time; signal.signal(signal.SIGINT, lambda *a: sys.exit(7)); print('ok', flush=True); "
        "time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", catches_sigint], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # type: ignore[union-attr]
    result = terminate([proc.pid], replace(policy, grace_s=10.0))
    assert proc.wait() == 7 and result.signalled == [proc.pid] and not result.killed  # SIGINT came first, and sufficed


def test_the_watcher_in_the_container_takes_its_numbers_from_the_runs_policy() -> None:
    """The shell keeps no grace or signal of its own: they come from the StopPolicy, as the janitor's do."""
    policy = StopPolicy(grace_s=2.5, signals=("SIGINT", "SIGKILL"))
    watch = watch_for(policy, timeout_s=600)
    script = watched_command("pytest", watch)[2]
    assert "kill -INT -1" in script and "kill -KILL -1" in script and "TERM" not in script
    assert ":-5" not in script and 'sleep "$GPUCI_GRACE_S"' in script
    assert watch_env(watch) == {"GPUCI_GRACE_S": "2.5", "GPUCI_DEADLINE_S": str(int(600 + 2.5 + DEADLINE_MARGIN_S))}
    assert watch_env(watch_for(policy, None)) == {"GPUCI_GRACE_S": "2.5"}
