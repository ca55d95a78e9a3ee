"""Gates: variables a test script or module checks to enable tests."""

from __future__ import annotations

import re

# Set by the CI environment or by gpuci itself, never by a step: not gates a step must set.
AMBIENT = re.compile(r"^(BUILDKITE.*|CI|HOME|PATH|USER|PWD|TMPDIR|PYTHONPATH|GPUCI_.*|[A-Z]+_VISIBLE_DEVICES)$")


SHELL_GATE = re.compile(r"(?:-[nz]\s+\"?\$\{?|\$\{)([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}?")


PY_GATE = re.compile(
    r"""os\.(?:environ\.get|getenv)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']|os\.environ\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
    r"""|["']([A-Za-z_][A-Za-z0-9_]*)["']\s+(?:not\s+)?in\s+os\.environ"""
)


def shell_gates(text: str) -> set[str]:
    """Variables a script tests to decide what runs (`if`/`elif` with -n/-z or ${VAR:-…})."""
    gates = set()
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"^(if|elif)\b", stripped) or stripped.startswith("[[") or stripped.startswith("["):
            gates.update(m.group(1) for m in SHELL_GATE.finditer(stripped))
    return gates


def python_gates(text: str) -> set[str]:
    """Variables a test module checks in skip conditions (skipif, pytest.skip, pytestmark)."""
    gates = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        window = " ".join(lines[max(0, i - 2) : i + 1])
        if "skip" in window or "pytestmark" in window:
            for match in PY_GATE.finditer(line):
                gates.add(next(g for g in match.groups() if g))
    return gates
