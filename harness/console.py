"""What gpuci says to people: one prefix, on stderr, so test output on stdout stays clean."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    print(f"gpuci: {message}", file=sys.stderr, flush=True)
