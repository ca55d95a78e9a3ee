"""CI-coverage lint: the declarations against the tree, so CI never silently loses a test.

Each step's commands are resolved as a shell would see them, enough for CI scripts (`cd`,
`working_dir` through the workspace, `&&` chains, `VAR=x cmd`, `export`, pytest targets with
`::`, `-k`, `--ignore`, `--deselect`, `python -m pytest`, `find … | xargs pytest`, scripts run
with bash or python). Findings:

- missing-path: a path a command names that does not exist (with the likely new place);
- unrun-test: a test file, as the project's pytest config collects them, that no step reaches;
- unset-gate: a variable a test script or module checks to enable tests that no step running it sets;
- dead-dependency: a `source_file_dependencies` entry that matches no file.

Parts: `tree` (the files and what pytest collects), `resolver` (commands as a shell runs them),
`gates` (variables that enable tests), `allow` (findings accepted on purpose), `check` (the checks),
`findings` (what is reported).
"""

from harness.ci.lint.allow import load_allowed
from harness.ci.lint.check import lint
from harness.ci.lint.findings import KINDS, Finding, as_json, as_text

__all__ = ["KINDS", "Finding", "as_json", "as_text", "lint", "load_allowed"]
