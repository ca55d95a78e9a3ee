"""CI-coverage lint: the declarations against the tree, so CI never silently loses a test.

Each step's commands are resolved as a shell would see them, enough for CI scripts (`cd`,
`working_dir` through the workspace, `&&` chains, `VAR=x cmd`, `export`, pytest targets with
`::`, `-k`, `--ignore`, `--deselect`, `python -m pytest`, `find … | xargs pytest`, scripts run
with bash or python). Findings:

- missing-path: a path a command names that does not exist (with the likely new place);
- unrun-test: a test file, as the project's pytest config collects them, that no step reaches;
- unset-gate: a variable a test script or module checks to enable tests that no step running it sets;
- dead-dependency: a `source_file_dependencies` entry that matches no file;
- platform-skip: a test module that skips itself whole on every platform whose steps run it.

Parts: `files` (the checkout, or a commit read from git for `--since`), `tree` (the files and what
pytest collects), `resolver` with `shell_text` and `shell_values` (commands as a shell runs them),
`top_level` (the statements a check reads, parsed alone), `gates` and `shell_gates` (variables that
enable tests), `platform_skips`, `scripts_not_tests`,
`pytest_options`, `cache` (what each file says, kept by content hash between runs), `allow`
(findings accepted on purpose), `check` (the checks), `since` (only what a change did), `findings`
(what is reported).
"""

from __future__ import annotations

from typing import Any

__all__ = ["KINDS", "Finding", "as_json", "as_text", "lint", "load_allowed"]

# Imported when first asked for: a warm lint replays its findings (memo) without loading the checks.
_HOMES = {
    "KINDS": "findings",
    "Finding": "findings",
    "as_json": "findings",
    "as_text": "findings",
    "lint": "check",
    "load_allowed": "allow",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
