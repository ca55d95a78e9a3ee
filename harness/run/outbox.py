"""The workload's outbox: the one folder a run's container may write for gpuci, read back as input
(made as the run begins: harness.run.run.begin_run).

The run folder (report.json, output.log) is the supervisor's alone and never mounted. The
workload writes pytest's JUnit file and the plugin's records into `.gpuci/outbox/run-<pid>-…`
(mounted at /gpuci/report); after the run gpuci reads them there as regular files only,
bounded, copies what it accepts into the run folder and deletes the outbox. pytest's JUnit file is
kept as `pytest-junit.xml`, its secrets masked; `junit.xml` is gpuci's own, from every test's outcome
(harness.reports.results.write_junit), since each pytest command of a step overwrites pytest's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.in_container import RECORDS_NAME, RESULTS_PREFIX, RUNNING_PREFIX, STACKS_PREFIX
from harness.untrusted import Skipped, list_names, parse_json, read_names, remove_tree

OUTBOX_DIR = (".gpuci", "outbox")
OUTBOX_PREFIX = "run-"
JUNIT_NAME = "junit.xml"  # what pytest writes in the outbox (--junitxml, harness.run.plan)
PYTEST_JUNIT_NAME = "pytest-junit.xml"  # where the run folder keeps it
WANTED_PREFIXES = (RECORDS_NAME, RESULTS_PREFIX, RUNNING_PREFIX, STACKS_PREFIX)
MAX_STACKS = 256 * 1024
MAX_STACK = 8000  # one failed test's traceback, as the plugin wrote it
# Generous for a large suite's records and JUnit file, small enough that a flood costs nothing.
MAX_FILE_BYTES = 64 * 2**20
# Bounds in all, not only file by file: the workload names as many files as it likes, and gpuci reads
# them on the host with no memory limit (two 60 MiB files of results once held it at 4.4 GB).
MAX_TOTAL_BYTES = 160 * 2**20
MAX_RESULTS = MAX_RECORDS = 200_000  # tests of one step: far above a large suite's
MAX_RUNNING = 256  # the plugin writes one `running-` file per xdist worker
MAX_FILES = 1024  # about four a worker: the rest are named by their count, never opened


@dataclass
class Collected:
    records: list[dict[str, Any]] = field(default_factory=list)
    pytest_junit: Path | None = None  # pytest's own JUnit file, masked, in the run folder
    skipped: list[Skipped] = field(default_factory=list)
    # Each test's outcome as the plugin wrote it (harness/plugin/results.py), in the order they ran.
    results: list[dict[str, Any]] = field(default_factory=list)
    # Tests that were running when the workload stopped, and their stacks if the plugin dumped them.
    running: list[str] = field(default_factory=list)
    stacks: str = ""


def collect(outbox: Path, directory: Path, mask: Callable[[bytes], bytes]) -> Collected:
    """What the workload left for gpuci: its records and pytest's JUnit file, copied into `directory`
    through `mask` (the run's redactor: a test's output in it may hold a secret's value)."""
    names = [n for n in list_names(outbox) if n == JUNIT_NAME or n.startswith(WANTED_PREFIXES)]
    if len(names) > MAX_FILES:  # one line for the rest: a list of a million skipped names is a flood too
        rest = len(names) - MAX_FILES
        names = sorted(names)[:MAX_FILES]
        found, skipped = _read_bounded(outbox, names)
        skipped.append(Skipped(f"{rest} more files", f"not read: gpuci reads at most {MAX_FILES} from an outbox"))
    else:
        found, skipped = _read_bounded(outbox, names)
    collected = Collected(skipped=skipped)
    stacks: dict[str, str] = {}
    extra_running = 0
    for name in sorted(found):
        if name.startswith(RESULTS_PREFIX):
            results = _results(found[name], MAX_RESULTS - len(collected.results) + 1)
            if len(collected.results) + len(results) > MAX_RESULTS:
                results = results[: MAX_RESULTS - len(collected.results)]
                collected.skipped.append(Skipped(name, f"partly read: more than {MAX_RESULTS} test results"))
            collected.results.extend(results)
            continue
        if name.startswith(RUNNING_PREFIX):
            text = found[name].decode(errors="replace").strip()
            if text and len(collected.running) >= MAX_RUNNING:
                extra_running += 1
            elif text:
                collected.running.append(text[:1000])
            continue
        if name.startswith(STACKS_PREFIX):
            stacks[name.removeprefix(STACKS_PREFIX)] = found[name].decode(errors="replace")[-MAX_STACKS:]
            continue
        if name == JUNIT_NAME:
            collected.pytest_junit = _copy(mask(found[name]), directory / PYTEST_JUNIT_NAME, collected.skipped)
            continue
        if not name.endswith(".json"):
            continue
        try:  # a nesting as deep as the workload likes is a skipped file, never a RecursionError
            records = parse_json(found[name])
        except ValueError as exc:
            collected.skipped.append(Skipped(name, f"not JSON gpuci reads ({str(exc)[:100]})"))
            continue
        if isinstance(records, list):
            kept = [r for r in records if isinstance(r, dict)][: MAX_RECORDS - len(collected.records) + 1]
            if len(collected.records) + len(kept) > MAX_RECORDS:
                kept = kept[: MAX_RECORDS - len(collected.records)]
                collected.skipped.append(Skipped(name, f"partly read: more than {MAX_RECORDS} records"))
            collected.records.extend(kept)
    if extra_running:
        collected.skipped.append(Skipped(f"{extra_running} {RUNNING_PREFIX}files", f"past the first {MAX_RUNNING}"))
    # The plugin arms its dump once for the deadline: a worker between tests then dumps too, and
    # only the stacks of a worker whose running file names a test are of a hung test.
    for worker, text in stacks.items():
        running = found.get(RUNNING_PREFIX + worker, b"")
        collected.stacks += text if running.strip() else ""
    return collected


def _copy(data: bytes, target: Path, skipped: list[Skipped]) -> Path | None:
    """`data` written to the run folder (the supervisor's own: no link there); a full disk is said in
    the report instead of failing it."""
    try:
        target.write_bytes(data)
    except OSError as exc:
        skipped.append(Skipped(JUNIT_NAME, f"could not be copied ({exc.strerror})"))
        return None
    return target


def _read_bounded(outbox: Path, names: list[str]) -> tuple[dict[str, bytes], list[Skipped]]:
    """The files one at a time, each within what is left of MAX_TOTAL_BYTES; JUnit last (the report's
    results come first), the rest skipped and named."""
    found: dict[str, bytes] = {}
    skipped: list[Skipped] = []
    left = MAX_TOTAL_BYTES
    for name in sorted(names, key=lambda n: (n == JUNIT_NAME, n)):
        one, refused = read_names(outbox, [name], min(MAX_FILE_BYTES, left))
        if name in one:
            found[name] = one[name]
            left -= len(one[name])
        elif refused and left < MAX_FILE_BYTES and refused[0].reason.startswith("larger than"):
            skipped.append(Skipped(name, f"past the {MAX_TOTAL_BYTES // 2**20} MiB gpuci reads from an outbox in all"))
        else:
            skipped += refused
    return found, skipped


def _results(data: bytes, most: int) -> list[dict[str, Any]]:
    """JSON lines of test outcomes, at most `most`; a malformed line (the workload's to write) is skipped."""
    results: list[dict[str, Any]] = []
    for line in data.decode(errors="replace").splitlines():
        if len(results) >= most:
            break
        try:
            entry = parse_json(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("test"), str) and isinstance(entry.get("outcome"), str):
            results.append(
                {
                    "test": entry["test"][:1000],
                    "outcome": entry["outcome"][:20],
                    "seconds": entry.get("seconds") if isinstance(entry.get("seconds"), (int, float)) else None,
                    **({"message": str(entry["message"])[:2000]} if entry.get("message") else {}),
                    **({"stack": str(entry["stack"])[-MAX_STACK:]} if entry.get("stack") else {}),
                }
            )
    return results


def discard(outbox: Path) -> None:
    """Links are removed themselves, never what they point at; a tree of any depth goes (remove_tree)."""
    remove_tree(outbox)
