"""The run report: `report.json` is the source of truth; `latest` points at the newest run."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.errors import InfrastructureError
from harness.git import run_git
from harness.untrusted import private_dir

RUNS_DIR = Path(".gpuci") / "runs"
SCHEMA_VERSION = 1


def new_run_id(session: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{session}-{secrets.token_hex(3)}"


def run_directory(root: Path, run_id: str, report_dir: Path | None) -> Path:
    if report_dir:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        return Path(report_dir)
    return private_dir(root, *RUNS_DIR.parts, run_id)


def git_state(root: Path) -> dict[str, Any]:
    """The commit and whether tracked files differ from it: one `git status` call."""
    try:
        out = run_git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=no", timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if out.returncode != 0:
        return {"commit": None, "dirty": None}
    lines = out.stdout.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    return {
        "commit": None if commit in (None, "(initial)") else commit,
        "dirty": any(not line.startswith("#") for line in lines),
    }


def host_facts() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "pid": os.getpid()}


def write_report(directory: Path, report: dict[str, Any], root: Path | None = None) -> Path:
    """Write report.json atomically; point `latest` of the runs folder it lives in at it (a repro
    runs in a worktree but reports into the checkout's runs folder, whose newest it then is)."""
    path = directory / "report.json"
    # A fresh name (O_EXCL) then a rename: never written through whatever sits at a fixed name.
    text = json.dumps({"schema": SCHEMA_VERSION, **report}, indent=2, sort_keys=False, default=str)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".report.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:  # no half-written file left behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise InfrastructureError(
            f"cannot write the report {path} ({exc.strerror}); the run's outcome was "
            f"{report.get('outcome', 'unknown')}. Free space on that disk and run again."
        ) from None
    parent = directory.resolve().parent
    if parent.name == RUNS_DIR.name and parent.parent.name == RUNS_DIR.parent.name:
        root = parent.parent.parent
    if root is not None:
        runs = private_dir(Path(root), *RUNS_DIR.parts)
        latest = runs / "latest"
        link = runs / f".latest.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(os.path.relpath(directory.resolve(), runs.resolve()), link)
        link.replace(latest)
    return path
