"""A cancel that comes before the workload exists: while the image is checked or built, the GPUs leased.

The supervisor turns SIGTERM/SIGINT into an orderly stop once the workload runs. Before that the
default action would kill gpuci with no report (the agent's cancel often lands in the first
second). From the start of `run`, a cancel is noted; once the run's report has a home it stops
the run there, with outcome `cancelled` and the signal's name, and nothing was started.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from harness.errors import ExitCode, GpuciError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Cancelled(GpuciError):
    exit_code = ExitCode.TESTS_FAILED  # as a cancel during the tests: nothing for the agent to retry

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"cancelled by {signal_name} before the workload started; nothing was left running.")
        self.signal_name = signal_name


class CancelGate:
    def __init__(self) -> None:
        self.pending: str | None = None
        self.raising = False

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._on_signal)

    def uninstall(self) -> None:
        """Back to the default actions (commands other than `run`); a cancel already noted acts now."""
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.pending:
            signal.raise_signal(signal.Signals[self.pending])

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.pending = signal.Signals(signum).name
        if self.raising:
            self.raising = False
            raise Cancelled(self.pending)

    @contextlib.contextmanager
    def cancellable(self) -> Iterator[None]:
        """Within: a cancel (already noted, or arriving) raises Cancelled; the supervisor takes over inside it."""
        if self.pending:
            raise Cancelled(self.pending)
        self.raising = True
        try:
            yield
        finally:
            self.raising = False


GATE = CancelGate()
