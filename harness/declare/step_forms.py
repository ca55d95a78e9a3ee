"""Buildkite's other step forms, read as a project's pipeline files write them.

Wait, block, input and trigger steps are skipped (gpuci runs steps one at a time), group steps
flattened, a repeated label numbered; keys that change what runs but that gpuci cannot honour
(`matrix`, `if`, `branches`, `plugins`) are kept and named in a warning with file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.declare.yaml_nodes import Node
from harness.errors import DeclarationError

# Steps are `harness.declare.areas.Step`; typed loosely so this module never imports its importer.
Step = Any

NON_COMMAND_STEPS = ("wait", "block", "input", "trigger")
# Keys Buildkite honours that change what runs, which gpuci does not: said, never silently dropped.
IGNORED_WITH_WARNING_WHY = {
    "matrix": "is not expanded: gpuci runs the step once, as written",
    "if": "is not evaluated: gpuci runs the step whenever its area and platform are asked for",
    "branches": "is not evaluated: gpuci runs the step on every branch",
    "plugins": "are not run: gpuci runs the step in its own container (a docker plugin's image is not used)",
}
IGNORED_WITH_WARNING = frozenset(IGNORED_WITH_WARNING_WHY)


def command_steps(path: Path, items: list[Node], warnings: list[str]) -> Iterator[Node]:
    """Command steps, with `group` steps flattened; wait/block/input/trigger steps skipped and said."""
    for item in items:
        value = item.value
        if isinstance(value, str) and value in NON_COMMAND_STEPS:
            warnings.append(f"{path}:{item.line}: a {value!r} step: gpuci runs steps one at a time, skipped")
            continue
        if not isinstance(value, dict):
            raise DeclarationError(path, item.line, "a step must be a mapping of keys (or 'wait').")
        kind = next((k for k in NON_COMMAND_STEPS if k in value), None)
        if kind and "command" not in value and "commands" not in value:
            warnings.append(f"{path}:{item.line}: a {kind!r} step: not a command step, skipped")
            continue
        if "plugins" in value and "command" not in value and "commands" not in value:
            warnings.append(f"{path}:{item.line}: a step run by its plugins alone: gpuci runs commands, skipped")
            continue
        if "group" in value and "steps" in value:
            inner = value["steps"].value.value
            yield from command_steps(path, inner if isinstance(inner, list) else [], warnings)
            continue
        yield item


def unique_labels(path: Path, steps: tuple[Step, ...], warnings: list[str]) -> tuple[Step, ...]:
    """Buildkite allows one label twice; `--step LABEL` needs one step, so the later gets a number."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for step in steps:
        label = step.label
        count = max(seen.get((label, p), 0) for p in step.platforms) if step.platforms else 0
        if count:
            label = f"{step.label} #{count + 1}"
            warnings.append(
                f"{path}:{step.line}: a second step labelled {step.label!r}: selected as {label!r} (--step)"
            )
        for p in step.platforms:
            seen[(step.label, p)] = seen.get((step.label, p), 0) + 1
        out.append(replace(step, label=label) if label != step.label else step)
    return tuple(out)
