"""`python -m harness …` (also `gpuci …`): parses, calls one function, maps errors to exit codes."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from harness.arguments import named_command, parser
from harness.errors import ExitCode, GpuciError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["nox"]:  # nox's own options follow, which gpuci's parser must not read
        from harness.ci.commands import nox_command

        return nox_command(given[1:])
    args = parser(named_command(given)).parse_args(given)
    if args.command != "run":
        from harness.run.cancel import GATE

        GATE.uninstall()  # only `run` has something to stop in order
    try:
        return int(_dispatch(args))
    except GpuciError as exc:
        from harness.redact import Redactor

        # A message may quote a command line or a value: secrets are masked here too.
        passed = [os.environ.get(name, "") for name in getattr(args, "env", None) or []]
        from harness.console import printable

        message = printable(Redactor(os.environ, secrets=passed).text(str(exc)), keep_lines=True)
        print(f"gpuci: error: {message}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("gpuci: interrupted", file=sys.stderr)
        return int(ExitCode.TESTS_FAILED)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A full disk is the host's trouble, not the tests': one paragraph and 75, so CI retries.
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"gpuci: error: no space left on the device{where}; free space and run again.", file=sys.stderr)
        return int(ExitCode.INFRASTRUCTURE)


def _dispatch(args: argparse.Namespace) -> int:
    """Call the function the subcommand registered (`module:function`, imported only now: a
    command never pays for another's imports, the Docker SDK's 0.1 s among them)."""
    module, _, name = args.func.partition(":")
    return int(getattr(importlib.import_module(module), name)(args))
