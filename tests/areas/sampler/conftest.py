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


class Engine:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ENGINE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]),
            },
        )
        ready = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not ready:
            raise RuntimeError(f"engine failed to start (exit {self.proc.wait()})")
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
    started = Engine()
    yield started
    started.shutdown()
