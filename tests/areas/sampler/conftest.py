"""Engine fixtures for the sampler area: start an engine process, talk to it, shut it down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ENGINE = Path(__file__).with_name("engine.py")


def engine_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(Path.cwd()), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


class Engine:
    def __init__(self, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ENGINE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=engine_env(**env),
        )
        ready = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not ready:
            raise RuntimeError(f"engine failed to start (exit {self.proc.wait()}): is the GPU still full?")
        self.info = json.loads(ready)

    def ask(self, **request: object) -> int:
        self.proc.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return int(json.loads(self.proc.stdout.readline())["token"])  # type: ignore[union-attr]

    def shutdown(self) -> int:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"op": "shutdown"}) + "\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        return self.proc.wait(timeout=30)


@pytest.fixture
def engine() -> Iterator[Engine]:
    started = Engine(SAMPLER_RELEASE_LAG="0")
    yield started
    started.shutdown()
