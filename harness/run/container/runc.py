"""A workload run by an OCI runtime (runc) from a bundle gpuci wrote: a container with no Docker Engine.

`runc run --detach`: runc hands the container our output pipe directly and exits; this process,
a child subreaper, inherits the container's init and waits for it (a foreground `runc run`
would instead wait for every holder of the output pipe, escapees included). The container stays
after its init exits, so gpuci finds what outlived it (processes in the container's cgroup:
escapees of a container sharing the host's PID namespace), names them, and removes the container
with `runc delete --force`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from harness.errors import InfrastructureError
from harness.run.logs import LogTarget
from harness.teardown.process_tree import become_subreaper, wait_exited

CGROUP_ROOT = Path("/sys/fs/cgroup")
STATE_ROOT = Path("/run/gpuci-runc")


class RuncWorkload:
    def __init__(
        self, runc: str, bundle: Path, container_id: str, log: LogTarget, cgroup: str, state_root: Path = STATE_ROOT
    ) -> None:
        self.runc, self.bundle, self.id, self.state_root = runc, bundle, container_id, state_root
        # cgroup v2 has one tree; on v1 any controller's tree lists the same processes.
        self.cgroups = [CGROUP_ROOT / sub / cgroup.lstrip("/") for sub in ("", "pids", "freezer", "memory", "devices")]
        self.init_pid = 0
        self.pump = log.pump()
        self.leftovers: list[int] = []
        self.survivors: list[int] = []

    def _runc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.runc, "--root", str(self.state_root), *args], capture_output=True, text=True)

    def start(self) -> None:
        become_subreaper()
        read, write = os.pipe()
        pid_file = self.bundle / "init.pid"
        try:
            runc = subprocess.run(
                [
                    self.runc,
                    "--root",
                    str(self.state_root),
                    "run",
                    "--detach",
                    "--pid-file",
                    str(pid_file),
                    "--bundle",
                    str(self.bundle),
                    self.id,
                ],
                stdin=subprocess.DEVNULL,
                stdout=write,
                stderr=write,
                start_new_session=True,
                timeout=120,
            )
        finally:
            os.close(write)
        self.pump.start(iter(lambda: os.read(read, 65536), b""))
        if runc.returncode != 0:
            self.pump.join(timeout=5)
            said = self.pump.path.read_text(errors="replace").strip()[-600:] if self.pump.path.exists() else ""
            raise InfrastructureError(f"runc could not start {self.id} (exit {runc.returncode}): {said}")
        self.init_pid = int(pid_file.read_text())

    def wait(self) -> int:
        """The init's own exit status: runc has exited, so the init is our (the subreaper's) child."""
        _, status = os.waitpid(self.init_pid, 0)
        return os.waitstatus_to_exitcode(status)

    def signal(self, signum: int) -> None:
        """To the container's init, as `docker kill --signal` does."""
        self._runc("kill", self.id, signal.Signals(signum).name)

    def host_pids(self) -> set[int]:
        """Every process in the container's cgroup, by host PID (escapees included)."""
        pids: set[int] = set()
        for cgroup in self.cgroups:
            for procs in cgroup.rglob("cgroup.procs") if cgroup.is_dir() else []:
                try:
                    pids.update(int(line) for line in procs.read_text().split() if line.isdigit())
                except OSError:
                    continue  # removed while we read it
        return pids

    def remove(self) -> bool:
        """Name what outlived the init, then `runc delete --force` (which kills it); True when gone."""
        self.leftovers = sorted(self.host_pids())
        self._runc("delete", "--force", self.id)
        self.survivors = sorted(wait_exited(self.leftovers, 5.0))
        self.pump.join(timeout=30)
        return not self.survivors and not self.host_pids()
