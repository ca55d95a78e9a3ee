"""Test servers: own process group, a ready check, torn down as a tree with one VRAM wait."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from harness.declare.stop_policy import DEFAULT_VRAM_TIMEOUT_S, StopPolicy
from harness.gpu.vram.base import Device, VramBackend
from harness.gpu.vram.release import take_baseline, wait_for_release
from harness.plugin.state import PluginState
from harness.teardown.process_tree import Baseline, shutdown_many, terminate_tree

# A test server (an inference engine) gets longer than a run's workload to stop: its teardown frees the GPU.
SERVER_GRACE_S = 10.0


def ready_check(check: Callable[[], bool] | str | None) -> Callable[[], bool]:
    if check is None:
        return lambda: True
    if callable(check):
        return check
    url = check
    # Imported here: urllib.request brings ssl and http.client, a tenth of a second at every pytest start in
    # every container, for the few suites whose servers have a URL to poll.
    import urllib.request

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(200 <= response.status < 500)
        except OSError:
            return False

    return probe


@dataclass(eq=False)  # a server is itself, not its options
class ServerProcess:
    """A test server: own process group, a ready check, tree teardown and a VRAM wait on exit.

    `ServerProcess(command, ready=URL_OR_CALLABLE, env=…, grace=…)`: every option but the command by keyword.
    """

    command: list[str]
    _: KW_ONLY
    ready: Callable[[], bool] | str | None = None
    ready_timeout: float = 300.0
    env: dict[str, str] | None = None
    cwd: str | Path | None = None
    grace: float = SERVER_GRACE_S
    backend: VramBackend | None = None
    devices: list[Device] = field(default_factory=list)
    vram_timeout: float = DEFAULT_VRAM_TIMEOUT_S
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    baseline: Baseline | None = field(default=None, init=False)
    stop_seconds: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.ready_check = ready_check(self.ready)
        self.devices = self.devices or []

    @property
    def stop_policy(self) -> StopPolicy:
        return StopPolicy(grace_s=self.grace, vram_timeout_s=self.vram_timeout)

    def start(self) -> ServerProcess:
        if self.backend is not None:
            self.baseline = Baseline(time.time(), take_baseline(self.backend, self.devices))
        self.proc = subprocess.Popen(self.command, env=self.env, cwd=self.cwd, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        while not self.ready_check():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.command[0]} exited {self.proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server {self.command[0]} not ready within {self.ready_timeout:.0f}s")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def stop(self) -> float:
        """Tree teardown, then one wait for VRAM back at this server's baseline; the seconds it took."""
        if self.proc is None or self.stop_seconds is not None:
            return self.stop_seconds or 0.0
        started = time.monotonic()
        terminate_tree(self.proc.pid, self.stop_policy)
        self.proc.wait()
        if self.backend is not None and self.baseline is not None:
            wait_for_release(self.backend, self.devices, self.baseline.used, self.stop_policy.vram_timeout_s)
        self.stop_seconds = time.monotonic() - started
        return self.stop_seconds

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerPool:
    """Servers of one test; stopped together by `shutdown_many` (parallel terminate, one wait)."""

    def __init__(self, state: PluginState) -> None:
        self.state = state
        self.servers: list[ServerProcess] = []

    def start(self, command: list[str], **options: Any) -> ServerProcess:
        options.setdefault("backend", self.state.backend)
        options.setdefault("devices", self.state.devices)
        server = ServerProcess(command, **options).start()
        self.servers.append(server)
        return server

    def stop_all(self) -> float:
        running = [s for s in self.servers if s.proc is not None and s.stop_seconds is None]
        if not running:
            return 0.0
        started = time.monotonic()
        shutdown_many(
            [s.pid for s in running],
            StopPolicy(grace_s=max(s.grace for s in running), vram_timeout_s=max(s.vram_timeout for s in running)),
            [s.baseline for s in running],
            self.state.backend,
            self.state.devices or None,
        )
        for server in running:
            server.proc.wait()  # type: ignore[union-attr]
            server.stop_seconds = time.monotonic() - started
        seconds = time.monotonic() - started
        self.state.record("shutdown-many", seconds, self.state.budget)
        return seconds
