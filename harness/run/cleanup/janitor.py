"""The clock that ends a container when its supervisor is gone, kept where the container cannot reach it.

The watcher inside the container (planned by harness.run.plan) ends an orphan when the workload lets it; a
step can kill it (it runs as the step's user, in the step's PID namespace) and run on. So each
container also gets a janitor on the host: a process in its own session, outside the container's
namespaces, that reads a pipe whose other end only the supervisor holds. The supervisor writes
`done` once it has removed the container itself. End of file without it - the supervisor was
SIGKILLed, OOM-killed, lost with its agent - or the step's deadline passing, and the janitor stops
the container (SIGTERM, the run's grace, SIGKILL) and exits. Nothing in the container can signal it.

Run as a script (`python -I janitor.py CONTAINER GRACE DEADLINE SDK_FOLDER`): isolated from the working
directory and PYTHON* variables, importing nothing of gpuci, idle until it has to act.
"""

from __future__ import annotations

import os
import select
import sys
import time

# Every container's janitor starts a Python: the script side imports only what watching needs (no
# subprocess, pathlib, typing: about 10 ms of CPU a run) and starts without site (-S, another 10 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import IO

DONE = b"done\n"


def start(container_id: str, grace_s: float, deadline_s: float | None) -> subprocess.Popen[bytes]:
    """A janitor for one container; write DONE to its stdin once the container is removed."""
    import subprocess
    from pathlib import Path

    import docker

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # Where this process found the Docker SDK (a venv, or a folder PYTHONPATH named): -I drops PYTHONPATH.
    sdk = str(Path(docker.__file__).resolve().parents[1])
    script = str(Path(__file__).resolve())
    return subprocess.Popen(
        [sys.executable, "-I", "-S", script, container_id, f"{grace_s:g}", f"{deadline_s or 0:g}", sdk],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        env=env,
        start_new_session=True,  # a kill of the supervisor's process group leaves it standing
        close_fds=True,
    )


def release(janitor: subprocess.Popen[bytes] | None) -> None:
    """The supervisor has removed its container: the janitor goes without acting."""
    import subprocess

    if janitor is None or janitor.stdin is None:
        return
    try:
        janitor.stdin.write(DONE)
        janitor.stdin.close()
    except OSError:
        pass
    try:
        janitor.wait(timeout=5)
    except subprocess.TimeoutExpired:
        janitor.kill()


def watch(pipe: IO[bytes], deadline_s: float) -> bool:
    """True when the container must be stopped: the pipe closed without DONE, or the deadline passed."""
    fd = pipe.fileno()
    ends = time.monotonic() + deadline_s if deadline_s > 0 else None
    received = b""
    while True:
        wait = None if ends is None else max(0.0, ends - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return True  # the deadline: the step's timeout, its grace and a margin have all passed
        chunk = os.read(fd, 64)
        if not chunk:
            return received != DONE
        received = (received + chunk)[-len(DONE) :]
        if received == DONE:
            return False


def stop(container_id: str, grace_s: float, sdk: str) -> None:
    import contextlib
    import site

    site.main()  # only now: the site-packages (isolated: no user site) an idle janitor never needed
    if sdk not in sys.path:
        sys.path.append(sdk)  # after the standard library: nothing there shadows it
    import docker  # only now: an idle janitor costs no import

    client = docker.from_env(timeout=int(grace_s) + 30)
    with contextlib.suppress(docker.errors.NotFound):  # already gone
        client.containers.get(container_id).stop(timeout=max(1, round(grace_s)))


def main(argv: list[str]) -> int:
    container_id, grace_s, deadline_s, sdk = argv[0], float(argv[1]), float(argv[2]), argv[3]
    if watch(sys.stdin.buffer, deadline_s):
        stop(container_id, grace_s, sdk)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
