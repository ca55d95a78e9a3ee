"""What the lint reports: a finding's kind, place and message, as text or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.console import printable

ALLOW_FILE = Path(".buildkite") / "gpuci-lint-allow.yaml"
KINDS = (
    "missing-path",
    "unrun-test",
    "unset-gate",
    "dead-dependency",
    "platform-skip",
    "unresolved-target",  # a pytest target with a variable the lint cannot bound (`pytest $f`)
    "script-not-test",  # named like a test, but nothing would fill its tests' parameters: a script
    "stale-ignore",  # `--ignore`/`--deselect` of a path that is gone: nothing lost, nothing to do there
)
# Kinds that are no lost test in themselves: printed as notes, and a lint with only these passes.
# An unresolved target is one: the lint could not read the loop, which is not the maintainer's
# fault; the tests only it runs are reported unrun anyway (errors), so nothing is hidden by it.
NOTES = frozenset({"stale-ignore", "script-not-test", "unresolved-target"})


def severity(finding: Finding) -> str:
    return "note" if finding.kind in NOTES else "error"


def failing(findings: list[Finding]) -> list[Finding]:
    """The findings a lint fails for (not notes)."""
    return [f for f in findings if f.kind not in NOTES]


@dataclass(frozen=True)
class Finding:
    kind: str
    file: str
    line: int
    step: str
    message: str
    path: str | None = None
    variable: str | None = None
    suggestion: str | None = None
    # For an unset gate: a fingerprint of the tests it holds back (more behind it is a new loss).
    holds: str | None = None


def dedupe(findings: list[Finding]) -> list[Finding]:
    seen: dict[tuple[object, ...], Finding] = {}
    for f in findings:
        seen.setdefault((f.kind, f.file, f.step, f.path, f.variable), f)
    return sorted(seen.values(), key=lambda f: (f.kind, f.file, f.line, f.path or "", f.variable or ""))


def as_text(findings: list[Finding], allowed: int) -> str:
    if not findings and not allowed:  # the allow file is named only where it accepted something: it may not exist
        return "gpuci lint: clean\n"
    if not findings:
        return f"gpuci lint: clean ({allowed} finding(s) accepted by {ALLOW_FILE})\n"
    lines = []
    for f in findings:
        where = f"{f.file}:{f.line}" if f.line else f.file
        step = f" [{f.step}]" if f.step else ""
        hint = f" — {f.suggestion}" if f.suggestion else ""
        note = " (note)" if f.kind in NOTES else ""
        # File names, labels and messages quote the checkout: nothing of it acts on the terminal.
        lines.append(printable(f"{where}{step} {f.kind}{note}: {f.message}{hint}"))
    lines.append(f"gpuci lint: {len(findings)} finding(s); accept one on purpose in {ALLOW_FILE} with a reason")
    return "\n".join(lines) + "\n"


def as_json(findings: list[Finding]) -> str:
    # vars, not asdict: the fields are flat, and asdict's deep copy is most of a warm run's printing
    return json.dumps([{**vars(f), "severity": severity(f)} for f in findings], indent=2) + "\n"
