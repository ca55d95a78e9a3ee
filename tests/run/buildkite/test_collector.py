"""Buildkite Test Engine: with its token set, Buildkite's own collector uploads each test's result."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

AREA = """\
group: engine
platforms: [cpu]
steps:
  - label: suite
    num_gpus: 0
    network: host   # the stand-in for Buildkite's API listens on this machine's loopback
    commands: [pytest -q test_engine_demo.py]
"""
TESTS = """\
import pytest


def test_passes():
    assert 1 + 1 == 2


@pytest.mark.skip(reason="shown as skipped")
def test_skipped():
    pass
"""
TOKEN = "bkct_" + "7f3a9c2e5b8d4f6a1c0e9b7d5a3f8c2e"  # shaped like a Test Engine token


class Uploads(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], dict]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Uploads.received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": "upload-1", "queued": 2, "skipped": 0, "errors": []}')

    def log_message(self, *args: object) -> None:
        pass


def test_each_result_reaches_test_engine_through_buildkites_collector(make_project, run_harness, cpu_image) -> None:
    root = make_project(AREA, "engine")
    (root / "test_engine_demo.py").write_text(TESTS)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Uploads)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    build = {
        "BUILDKITE_ANALYTICS_TOKEN": TOKEN,
        "BUILDKITE_ANALYTICS_API_URL": f"http://127.0.0.1:{server.server_address[1]}/v1",
        "BUILDKITE_BUILD_ID": "0190b6c4-build-42",
        "BUILDKITE_JOB_ID": "0190b6c4-job-7",
        "BUILDKITE_BRANCH": "feature/x",
        "BUILDKITE_COMMIT": "a" * 40,
        "BUILDKITE_BUILD_NUMBER": "42",
        # The step asks for the host's network (the stand-in API is on loopback): the agent's policy grants it.
        "GPUCI_POLICY": str(_policy(root.parent, 'networks = ["host"]\n')),
    }
    try:
        done = run_harness("run", "--platform", "cpu", "--area", "engine", "--root", str(root), timeout=900, **build)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert Uploads.received, "the collector sent nothing"
    path, headers, payload = Uploads.received[-1]
    assert path == "/v1/uploads" and headers["Authorization"] == f'Token token="{TOKEN}"'
    results = {t["name"]: t["result"] for t in payload["data"]}
    assert results == {"test_passes": "passed", "test_skipped": "skipped"}
    assert payload["run_env"]["key"] == "0190b6c4-build-42" and payload["run_env"]["branch"] == "feature/x"
    # The token is a secret: the workload had it, nothing gpuci shows or keeps does.
    report = root / ".gpuci" / "runs" / "latest"
    kept = [done.stdout, done.stderr, (report / "report.json").read_text(), (report / "output.log").read_text()]
    assert not any(TOKEN in text for text in kept)
    assert json.loads((report / "report.json").read_text())["test_engine"]["collector"].startswith(
        "buildkite-test-collector=="
    )


def _policy(folder: Path, text: str) -> Path:
    path = folder / "agent-policy.toml"
    path.write_text(text)
    return path
