"""What a step's commands reach, as the resolver (harness.ci.lint.resolver) finds it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Reach:
    """What a step's commands reach: pytest targets, ignores, scripts, and variables they set."""

    targets: list[tuple[str, str]] = field(default_factory=list)  # (path, as written)
    # Files some pytest invocation reaches: under its targets and not under its own --ignore.
    files: set[str] = field(default_factory=set)
    scripts: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (resolved path, as written)
    # A word after an option pytest does not know (`--metric 0.58` once the conftest dropped it):
    # as written -> that option, so the finding names the option, the real break.
    after_unknown: dict[str, str] = field(default_factory=dict)
    env: set[str] = field(default_factory=set)
    # Targets of pytest with a variable the lint cannot bound (`pytest $f`): they reach nothing.
    unresolved: list[str] = field(default_factory=list)
    # `--ignore`/`--deselect` of a path that is not there: (resolved path, as written, option).
    stale: list[tuple[str, str, str]] = field(default_factory=list)
