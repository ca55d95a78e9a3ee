"""harness/arguments.py: a parser built for one subcommand says what the whole parser says of it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from harness.arguments import COMMANDS, named_command, parser


@pytest.fixture(autouse=True)
def _fresh_parsers() -> Iterator[None]:
    """Parsers are cached per process: those built here are not left for tests that declare settings."""
    parser.cache_clear()
    yield
    parser.cache_clear()


def _helps(built: argparse.ArgumentParser) -> dict[str, str]:
    sub = next(a for a in built._actions if isinstance(a, argparse._SubParsersAction))
    return {name: made.format_help() for name, made in sub.choices.items()}


def test_each_subcommand_built_alone_has_the_whole_parsers_help() -> None:
    whole = _helps(parser())
    for name, *_ in COMMANDS:
        alone = parser(name)
        assert alone.format_help() == parser().format_help()  # the list of commands, unchanged
        assert _helps(alone)[name] == whole[name], name


def test_the_command_line_names_the_subcommand_or_nothing() -> None:
    assert named_command(["lint", "--root", "."]) == "lint"
    assert named_command(["--help"]) is None
    assert named_command(["lnit"]) is None  # a typo: every command is built, argparse's error is the same
    assert named_command([]) is None


def test_a_lint_imports_no_vendor_module() -> None:
    code = (
        "import sys; from harness.arguments import parser, named_command; argv = ['lint', '--format', 'json'];"
        "parser(named_command(argv)).parse_args(argv); print(sorted(m for m in sys.modules if 'vendors' in m))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
