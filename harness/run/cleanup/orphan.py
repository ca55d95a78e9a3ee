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

from harness.declare.settings import default

# $1 is the step's script. fd 3 keeps the attached stdin for the watcher; the step gets /dev/null.
WATCH_SCRIPT = r"""exec 3<&0 0</dev/null
(
  if [ -n "${GPUCI_DEADLINE_S:-}" ]; then read -r -t "$GPUCI_DEADLINE_S" -u 3 _ || true
  else read -r -u 3 _ || true; fi
  echo "gpuci: the supervisor is gone (or the step's deadline passed); stopping the container" >&2
  kill -TERM -1 2>/dev/null; sleep "${GPUCI_GRACE_S:-DEFAULT_GRACE}"; kill -KILL -1 2>/dev/null
) &
exec bash -ec "$1" 3<&-
""".replace("DEFAULT_GRACE", f"{default('grace'):g}")
# Past the step's timeout the supervisor stops it itself; the watcher's deadline is the backstop.
DEADLINE_MARGIN_S = 30.0


def watched_command(script: str) -> tuple[str, ...]:
    return ("bash", "-c", WATCH_SCRIPT, "gpuci-watch", script)


def watch_env(grace_s: float, timeout_s: float | None) -> dict[str, str]:
    env = {"GPUCI_GRACE_S": f"{grace_s:g}"}
    if timeout_s:
        env["GPUCI_DEADLINE_S"] = str(int(timeout_s + grace_s + DEADLINE_MARGIN_S))
    return env
