"""Host mode: a command run on the host under the same supervisor, for hosts without Docker.

The command gets its own session; this process becomes a child subreaper, so whatever the
command leaves behind (setsid escapees, double-forked daemons) is re-parented here and found.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from harness.declare.stop_policy import StopPolicy
from harness.run.logs import LogTarget
from harness.teardown.process_tree import become_subreaper, descendants, reap_zombies, send, terminate

# Grace for escapees found after the command itself has exited.
LEFTOVER_GRACE_S = 1.0


class HostWorkload:
    def __init__(self, command: list[str], env: dict[str, str], cwd: Path, log: LogTarget) -> None:
        self.command, self.env, self.cwd = command, env, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.pump = log.pump()
        self.leftovers: list[int] = []
        self.survivors: list[int] = []

    def start(self) -> None:
        become_subreaper()
        try:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            from harness.errors import UsageError

            raise UsageError(f"cannot start {self.command[0]!r}: {exc.strerror}.") from None
        assert self.proc.stdout is not None
        self.pump.start(iter(lambda: os.read(self.proc.stdout.fileno(), 65536), b""))  # type: ignore[union-attr]

    def wait(self) -> int:
        assert self.proc is not None
        return self.proc.wait()

    def signal(self, signum: int) -> None:
        """The whole tree: the command's process group and every descendant, escapees included."""
        if self.proc is None:
            return
        targets = [p.pid for p in descendants()]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)
        send(targets, signum)

    def host_pids(self) -> set[int]:
        return {p.pid for p in descendants()}

    def remove(self) -> bool:
        """Terminate what outlived the command; True when nothing remains."""
        left = [p.pid for p in descendants()]
        self.leftovers = left
        result = terminate(left, StopPolicy(grace_s=LEFTOVER_GRACE_S))
        reap_zombies(left)
        self.survivors = result.survivors
        # Escapees held the output pipe open; now that they are gone the stream ends.
        self.pump.join(timeout=30)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        return result.clean
