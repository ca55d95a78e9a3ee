"""The one stop policy: how anything gpuci stops is stopped, and each of its defaults written once.

The grace and the VRAM wait are the settings' declared defaults (harness.declare.settings, where their
numbers are written); the kill wait is the stop's own. The supervisor, the watcher in the container,
the janitor on the host and the pytest plugin take them from here.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from harness.ci_provider import detect
from harness.declare.settings import default

DEFAULT_GRACE_S: float = default("grace")
DEFAULT_KILL_WAIT_S = 30.0
DEFAULT_VRAM_TIMEOUT_S: float = default("vram_timeout")


@dataclass(frozen=True)
class StopPolicy:
    """How anything gpuci stops is stopped: a run's workload (by the supervisor, the watcher in its
    container, the janitor on the host), a test server's tree, a run's leftovers."""

    grace_s: float = DEFAULT_GRACE_S  # the first signal, then this long before the second
    # After the second signal: how long exit may take before the process counts as stuck (a survivor).
    kill_wait_s: float = DEFAULT_KILL_WAIT_S
    # Once the processes are gone: how long the GPUs' memory may take to come back to its baseline.
    vram_timeout_s: float = DEFAULT_VRAM_TIMEOUT_S
    # The signal order: the first asks (an init forwards it), the second cannot be refused.
    signals: tuple[str, str] = ("SIGTERM", "SIGKILL")

    @property
    def ask(self) -> signal.Signals:
        return signal.Signals[self.signals[0]]

    @property
    def force(self) -> signal.Signals:
        return signal.Signals[self.signals[1]]


def stop_policy(
    grace_s: float, vram_timeout_s: float = DEFAULT_VRAM_TIMEOUT_S, agent_grace_s: float | None = None
) -> StopPolicy:
    """A run's policy. Inside a CI job whose agent has a cancel grace (Buildkite's), the whole stop must
    fit it; `agent_grace_s` None: read it from the environment."""
    agent_grace = detect().cancel_grace_s() if agent_grace_s is None else agent_grace_s
    if agent_grace > 0:
        grace_s = min(grace_s, max(0.5, agent_grace * 0.4))
        return StopPolicy(grace_s, max(1.0, agent_grace * 0.3), vram_timeout_s)
    return StopPolicy(grace_s, vram_timeout_s=vram_timeout_s)
