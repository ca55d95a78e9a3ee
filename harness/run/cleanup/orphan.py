"""A step's container outlives its supervisor by at most its grace: it stops itself when the
supervisor is gone, with nothing else to run (no reaper, no next job).

The supervisor holds the container's stdin open through an attach (Docker's StdinOnce: stdin
closes when that one client disconnects). A watcher started before the step's commands reads it;
when the supervisor dies, however (SIGKILL, OOM, a lost agent), the kernel closes its socket, the
watcher reads end-of-file at once and stops every process of the container: SIGTERM, the run's
grace, SIGKILL. It also stops them at the step's own deadline (its timeout, plus the grace and a
margin), should the end-of-file never come. Worst case: the grace plus about a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.declare.stop_policy import StopPolicy

# $1 is the step's script. fd 3 keeps the attached stdin for the watcher; the step gets /dev/null.
# The grace and the deadline come in the environment (`watch_env`), the signals from the run's
# StopPolicy: the watcher keeps no number of its own.
WATCH_SCRIPT = r"""exec 3<&0 0</dev/null
(
  if [ -n "${{GPUCI_DEADLINE_S:-}}" ]; then read -r -t "$GPUCI_DEADLINE_S" -u 3 _ || true
  else read -r -u 3 _ || true; fi
  echo "gpuci: the supervisor is gone (or the step's deadline passed); stopping the container" >&2
  kill -{ask} -1 2>/dev/null; sleep "$GPUCI_GRACE_S"; kill -{force} -1 2>/dev/null
) &
exec bash -ec "$1" 3<&-
"""
# Past the step's timeout the supervisor stops it itself; the watcher's deadline is the backstop.
DEADLINE_MARGIN_S = 30.0


@dataclass(frozen=True)
class Watch:
    """The watcher's and the janitor's orders: the run's stop, and the step's deadline as a backstop
    (seconds from the start; None: no deadline, only the supervisor's end)."""

    stop: StopPolicy
    deadline_s: float | None = None


def watch_for(stop: StopPolicy, timeout_s: float | None) -> Watch:
    deadline = int(timeout_s + stop.grace_s + DEADLINE_MARGIN_S) if timeout_s else None
    return Watch(stop, deadline)


def watched_command(script: str, watch: Watch) -> tuple[str, ...]:
    ask, force = (name.removeprefix("SIG") for name in watch.stop.signals)
    return ("bash", "-c", WATCH_SCRIPT.format(ask=ask, force=force), "gpuci-watch", script)


def watch_env(watch: Watch) -> dict[str, str]:
    env = {"GPUCI_GRACE_S": f"{watch.stop.grace_s:g}"}
    if watch.deadline_s:
        env["GPUCI_DEADLINE_S"] = f"{watch.deadline_s:g}"
    return env
