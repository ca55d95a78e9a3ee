"""Byte sizes written the way people write them (`2GiB`, `512M`, `1000`)."""

from __future__ import annotations

import re

from harness.errors import UsageError

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise UsageError(f"{text!r} is not a size; write bytes or a number with a unit, like 2GiB or 512MiB.")
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


# Docker's own reading of a memory size (go-units RAMInBytes): k, m, g, t, p are powers of 1024,
# an `i` and a `b` after them change nothing. What Docker gives a container is what is compared.
_DOCKER_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp])?i?b?\s*$", re.IGNORECASE)


def docker_size(text: str) -> int:
    match = _DOCKER_SIZE.match(text)
    if not match:
        raise UsageError(f"{text!r} is not a size as Docker reads one; write a number and k, m, g or t, like 16g.")
    power = "kmgtp".index(match.group(2).lower()) + 1 if match.group(2) else 0
    return int(float(match.group(1)) * 1024**power)
