"""What gpuci says to people: one prefix, on stderr, so test output on stdout stays clean.

Every line said here is gpuci's own, and may quote what a workload or a project wrote (a test's
name or message, a label, a tool's output): such text arrives with its secrets masked and its
control characters shown, never acted on. A test's `\\r`, `\\x1b[2J` or OSC 52 (`\\x1b]52;c;…`)
cannot rewrite the terminal, and a `\\ngpuci: passed` cannot start a line of its own.
"""

from __future__ import annotations

import os
import sys

__all__ = ["printable", "say"]


def _shown(char: str) -> str:
    return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")


def printable(text: str, keep_lines: bool = False) -> str:
    """`text` with every character a terminal would act on escaped (`\\x1b`, `\\r`, `\\u202e`, line
    breaks too); with `keep_lines`, line breaks stay, each further line indented by two spaces."""
    if text.isprintable():
        return text
    if keep_lines:
        return "\n  ".join(printable(line) for line in text.split("\n"))
    return "".join(_shown(c) for c in text)


def say(message: str) -> None:
    from harness.redact import Redactor

    # The environment's secrets, masked here too: a message may quote a command line or a value.
    print(f"gpuci: {printable(Redactor(os.environ).text(message))}", file=sys.stderr, flush=True)
