"""pytest's options that take a value, and those a project's conftest files add: their values are
never paths to test (`--metric 0.58`, `--model NAME`)."""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.ci.lint.cache import Analysis
from harness.ci.lint.tree import Tree

PYTEST_VALUE_OPTS = {
    "-k",
    "-m",
    "-c",
    "-p",
    "-o",
    "-n",
    "-W",
    "--ignore",
    "--ignore-glob",
    "--deselect",
    "--rootdir",
    "--junitxml",
    "--durations",
    "--maxfail",
    "--timeout",
    "--dist",
    "--confcutdir",
    "--basetemp",
    "--log-level",
    "--tb",
    "-r",
    "--import-mode",
}


# pytest's own long options (and common plugins') that take no value: a word after one is a target.
PYTEST_FLAGS = {
    "--verbose", "--quiet", "--exitfirst", "--lf", "--last-failed", "--ff", "--failed-first", "--nf",
    "--new-first", "--sw", "--stepwise", "--showlocals", "--pdb", "--trace", "--collect-only", "--co",
    "--strict-markers", "--strict-config", "--strict", "--runxfail", "--disable-warnings", "--no-header",
    "--no-summary", "--cache-clear", "--capture=no", "--setup-only", "--setup-show", "--setup-plan",
    "--fixtures", "--markers", "--doctest-modules", "--forked", "--boxed", "--benchmark-disable",
    "--benchmark-skip", "--benchmark-only", "--full-trace", "--color=yes", "--color=no", "--version", "--help",
}  # fmt: skip


# `parser.addoption("--model", ...)` in a conftest: the project's own pytest options. One that is not
# a flag (store_true/store_false/count) takes a value, which is never a path to test.
ADDOPTION = re.compile(r"addoption\(\s*(?P<names>(?:[\"'][-\w]+[\"']\s*,\s*)+)(?P<rest>[^)]*)\)", re.S)
FLAG_ACTIONS = re.compile(r"action\s*=\s*[\"'](store_true|store_false|count|store_const|append_const)[\"']")


def value_options_of(text: str) -> list[str]:
    """Options one conftest adds that take a value."""
    found: set[str] = set()
    for match in ADDOPTION.finditer(text):
        if FLAG_ACTIONS.search(match.group("rest")):
            continue
        found.update(n for n in re.findall(r"[\"']([-\w]+)[\"']", match.group("names")) if n.startswith("-"))
    return sorted(found)


VALUE_OPTIONS: Analysis[list[str]] = Analysis("value-options", value_options_of)


def project_value_options(tree: Tree, analyse: Callable[[Analysis[list[str]], str], list[str]]) -> set[str]:
    """Options the project's conftest files add that take a value (`--metric 0.58`, `--model NAME`)."""
    found: set[str] = set()
    for path in tree.by_name.get("conftest.py", []):
        if path not in tree.dirs:
            found.update(analyse(VALUE_OPTIONS, path))
    return found
