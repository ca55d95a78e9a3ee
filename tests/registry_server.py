"""A real Distribution registry (Debian's docker-registry) on a loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class RegistryServer:
    """A real Distribution registry (Debian's docker-registry) on a loopback port, own storage."""

    def __init__(self, directory: Path, user: str | None = None, password: str | None = None) -> None:
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        if not os.path.exists(binary):
            raise RuntimeError("docker-registry is missing: `apt-get install docker-registry` (as .ci/run does)")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        auth = ""
        if user and password:
            import bcrypt

            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            (directory / "htpasswd").write_text(f"{user}:{hashed}\n")
            auth = f"auth:\n  htpasswd:\n    realm: gpuci-test\n    path: {directory / 'htpasswd'}\n"
        # A free port is only free until someone binds it: on a shared machine another suite's
        # registry may take it first, so ours counts as up only once it is the one listening there.
        for _attempt in range(5):
            self.port = _free_port()
            (directory / "config.yml").write_text(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {directory / 'data'}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: 127.0.0.1:{self.port}\n{auth}"
            )
            self.log = open(directory / "registry.log", "ab")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(
                [binary, "serve", str(directory / "config.yml")], stdout=self.log, stderr=self.log
            )
            if self._wait_ready():
                self.address = f"127.0.0.1:{self.port}/ci"
                return
            self.log.close()
        raise RuntimeError(f"the registry did not start: {(directory / 'registry.log').read_text()[-2000:]}")

    def _wait_ready(self) -> bool:
        """True once this process listens on the port and answers; False if it exited (port taken)."""
        import time
        import urllib.error
        import urllib.request

        import psutil

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            listening = any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
                for c in psutil.Process(self.proc.pid).net_connections("tcp")
            )
            if listening:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1)
                    return True
                except urllib.error.HTTPError:
                    return True  # 401: up, and asking for credentials
                except OSError:
                    pass
            time.sleep(0.05)
        if self.proc.poll() is None:
            raise RuntimeError(f"the registry did not start: {(self.directory / 'registry.log').read_text()[-2000:]}")
        return False

    def manifest_digest(self, repository: str, reference: str, auth: tuple[str, str] | None = None) -> str | None:
        """The registry's own answer, over its HTTP API: the digest it serves for a tag."""
        import base64
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v2/{repository}/manifests/{reference}",
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError:
            return None

    def delete(self, repository: str, digest: str) -> None:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v2/{repository}/manifests/{digest}", method="DELETE"
        )
        urllib.request.urlopen(request, timeout=5).close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
