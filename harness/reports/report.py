"""The run report: `report.json` is the source of truth (a typed `RunReport`); `latest` points at the newest run."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import InfrastructureError
from harness.reports.records import Budget, Hang, TestRecord, TestResult
from harness.untrusted import private_dir

__all__ = ["RUNS_DIR", "SCHEMA_VERSION", "MalformedReport", "RunReport", "write_report"]

RUNS_DIR = Path(".gpuci") / "runs"
SCHEMA_VERSION = 1


def write_report(directory: Path, report: RunReport, root: Path | None = None) -> Path:
    """Write report.json atomically; point `latest` of the runs folder it lives in at it (a repro
    runs in a worktree but reports into the checkout's runs folder, whose newest it then is)."""
    path = directory / "report.json"
    # A fresh name (O_EXCL) then a rename: never written through whatever sits at a fixed name.
    text = json.dumps(report.to_json(), indent=2, sort_keys=False, default=str)
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
            f"{report.outcome or 'unknown'}. Free space on that disk and run again."
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


class MalformedReport(ValueError):
    """A file that is not a run report gpuci can read: said in one sentence, never a traceback."""


NUMBER = (int, float)
# Keys absent from report.json until set: readers test for their presence.
OPTIONAL = (
    "repro_of", "error", "log_error", "hang", "leftover_pids", "survivor_pids", "outbox_skipped", "test_engine",
    "pytest_junit",
)  # fmt: skip


@dataclass
class RunReport:
    """One run's report.json, typed. The sub-records that the table, the page and the pictures read
    are typed too (harness.reports.records: the budget, each test's records and result, the hang);
    the image, the spec and the VRAM wait stay JSON objects, written in one place each.

    A run's stages answer with typed parts and the caller assembles it (harness.run.finish); `to_json`
    is what report.json holds (its fields unchanged since schema 1), `from_json` reads one back,
    checking each field's kind."""

    run_id: str
    platform: str = ""
    session: str | None = None
    area: str | None = None
    step: str | None = None
    pytest_args: list[str] | None = None
    repro_of: dict[str, str] | None = None
    started_at: float | None = None
    git: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    mode: str = "container"
    report_dir: str | None = None
    lease: list[str] | None = None
    gpus: list[dict[str, Any]] | None = None
    image: dict[str, Any] | None = None
    devices: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    test_engine: dict[str, str] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # What the supervisor saw (harness.run.finish): exit, stop, the budget and the VRAM wait.
    exit_code: int | None = None
    stop_reason: str | None = None
    signals_sent: list[str] | None = None
    budget: Budget | None = None
    vram: dict[str, Any] | None = None
    removed: bool | None = None
    teardown_failures: list[str] | None = None
    leftover_pids: list[int] | None = None
    survivor_pids: list[int] | None = None
    outcome: str | None = None
    soft_fail: bool | None = None
    # What the tests said (harness.run.finish): records, outcomes, counts, a hang, JUnit, the log.
    log_error: str | None = None
    junit: str | None = None
    pytest_junit: str | None = None  # pytest's own JUnit file, as the run's last pytest wrote it
    tests: list[TestRecord] | None = None
    results: list[TestResult] | None = None
    counts: dict[str, int] | None = None
    hang: Hang | None = None
    outbox_skipped: list[dict[str, Any]] | None = None
    log: str | None = None
    error: str | None = None
    gpuci_exit_code: int | None = None
    finished_at: float | None = None
    # Keys this version does not know (a newer gpuci's): kept, written back as they were.
    extra: dict[str, Any] = field(default_factory=dict)
    # Where it was read from (`gpuci report`); never written into it.
    path: str | None = None

    def timing(self, phase: str) -> float:
        """A phase's seconds (`total_s`, `vram_back_s`, …); 0 where it was not measured."""
        value = self.timings.get(phase)
        return float(value) if isinstance(value, NUMBER) and not isinstance(value, bool) else 0.0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema": SCHEMA_VERSION}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("extra", "path") or (value is None and item.name in OPTIONAL):
                continue
            data[item.name] = _plain(value)
        return {**data, **self.extra}

    @classmethod
    def from_json(cls, data: object, required: tuple[str, ...] = ("run_id",)) -> RunReport:
        """A report read back: MalformedReport, in a sentence, where a field has the wrong kind."""
        problem = _malformed(data, required)
        if problem:
            raise MalformedReport(problem)
        assert isinstance(data, dict)
        known = {f.name for f in fields(cls)} - {"extra", "path"}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("budget"), dict):
            values["budget"] = Budget.from_json(values["budget"])
        if isinstance(values.get("hang"), dict):
            values["hang"] = Hang.from_json(values["hang"])
        for key, record in (("tests", TestRecord), ("results", TestResult)):
            if isinstance(values.get(key), list):
                values[key] = [record.from_json(r) for r in values[key] if isinstance(r, dict)]
        return cls(**values, extra={k: v for k, v in data.items() if k not in known and k != "schema"})


def _plain(value: Any) -> Any:
    """A field as report.json holds it: typed sub-records as their JSON objects."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.to_json() if hasattr(value, "to_json") else value


# Fields whose kind is checked on reading (absent or null is always allowed, except for the required ones).
KINDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "session": (str,),
    "area": (str,),
    "step": (str,),
    "platform": (str,),
    "mode": (str,),
    "outcome": (str,),
    "gpuci_exit_code": (int,),
    "started_at": (*NUMBER, str),
    "budget": (dict, type(None)),
    "timings": (dict,),
    "tests": (list, type(None)),
    "git": (dict,),
    "image": (dict, type(None)),
    "spec": (dict, type(None)),
    "pytest_args": (list, type(None)),
    "counts": (dict, type(None)),
    "results": (list, type(None)),
}


def _malformed(report: object, required: tuple[str, ...]) -> str | None:
    """Why `report` is not a run report gpuci can read; None when it is."""
    if not isinstance(report, dict):
        return f"is a JSON {type(report).__name__}, not a run report (an object)"
    missing = [key for key in required if report.get(key) is None]
    if missing:
        return f"lacks {', '.join(missing)}"
    for key, kinds in KINDS.items():
        value = report.get(key)
        if value is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
            return f"has {key} = {_short(value)}, not {' or '.join(k.__name__ for k in kinds)}"
    for name, value in (report.get("timings") or {}).items():
        if value is not None and (not isinstance(value, NUMBER) or isinstance(value, bool)):
            return f"has timings.{name} = {_short(value)}, not a number"
    budget = report.get("budget") or {}
    for name in ("stop_seconds", "margin_seconds"):
        if budget.get(name) is not None and not isinstance(budget[name], NUMBER):
            return f"has budget.{name} = {_short(budget[name])}, not a number"
    for record in report.get("tests") or []:
        if not isinstance(record, dict) or not isinstance(record.get("seconds", 0) or 0, NUMBER):
            return f"has a test record {_short(record)} that is not {{phase, test, seconds}}"
    if not isinstance((report.get("git") or {}).get("commit"), (str, type(None))):
        return f"has git.commit = {_short(report['git'].get('commit'))}, not a commit id"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
