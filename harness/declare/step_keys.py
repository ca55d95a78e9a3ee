"""gpuci's own keys of one step: its stop budgets, its container's limits, its Python."""

from __future__ import annotations

import math
import re
from typing import Any

from harness.declare.platforms import platform_names
from harness.declare.pythons import SUITES
from harness.declare.reader import Reader


def shutdown_budget(reader: Reader) -> dict[str, float]:
    raw = reader.get("shutdown_budget", (int, float, dict), None)
    if raw is None:
        return {}
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return {name: float(raw) for name in platform_names()}
    budgets: dict[str, float] = {}
    for name, seconds in raw.items():
        if name not in platform_names() or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise reader.fail(
                "shutdown_budget",
                f"'shutdown_budget' maps a platform ({', '.join(platform_names())}) to seconds "
                f"greater than 0, or is one number for all; got {name!r}: {seconds!r}.",
            )
        budgets[name] = float(seconds)
    return budgets


MEMORY_FORM = re.compile(r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$")
NETWORK_FORM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def limits(reader: Reader) -> dict[str, Any]:
    """memory, cpus, pids_limit and network of one step, checked for form."""
    memory = reader.get("memory", (str, int), None)
    if memory is not None and not MEMORY_FORM.match(str(memory)):
        raise reader.fail("memory", f"'memory' is Docker's size form (16g, 512m), not {str(memory)[:40]!r}.")
    cpus = reader.get("cpus", float, None)
    pids = reader.get("pids_limit", int, None)
    for key, value in (("cpus", cpus), ("pids_limit", pids)):
        if value is not None and not (math.isfinite(value) and value > 0):  # nan passes `<= 0`
            raise reader.fail(key, f"{key!r} must be a number greater than 0.")
    network = reader.get("network", str, None)
    if network is not None and not NETWORK_FORM.match(network):
        raise reader.fail("network", f"'network' is a Docker network name (none, bridge), not {network[:40]!r}.")
    return {"memory": None if memory is None else str(memory), "cpus": cpus, "pids_limit": pids, "network": network}


def python_of(reader: Reader) -> str | None:
    version = reader.get("python", (str, float), None)
    if version is None:
        return None
    version = str(version)  # `python: 3.13` is a YAML number
    if version not in SUITES:
        raise reader.fail(
            "python", f"'python' must be one of {', '.join(SUITES)} (gpuci's Debian base), not {version!r}."
        )
    return version
