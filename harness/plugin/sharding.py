"""A parallel job's share of the tests, balanced by recorded durations, and the recorder of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.plugin.state import PluginState, Record


def load_durations(path: str | None) -> dict[str, float]:
    if not path:
        return {}
    try:
        return {str(k): float(v) for k, v in json.loads(Path(path).read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def shard_of(test_ids: list[str], count: int, durations: dict[str, float]) -> list[list[str]]:
    """Split tests into `count` shares: longest first onto the least loaded share when durations
    are known (unknown tests count as the median), round-robin over sorted ids otherwise. The
    same inputs always give the same split, so every parallel job agrees without talking."""
    shares: list[list[str]] = [[] for _ in range(count)]
    ordered = sorted(test_ids)
    if not durations:
        for i, test in enumerate(ordered):
            shares[i % count].append(test)
        return shares
    known = sorted(durations.values())
    typical = known[len(known) // 2]
    load = [0.0] * count
    for test in sorted(ordered, key=lambda t: (-durations.get(t, typical), t)):
        target = min(range(count), key=lambda i: (load[i], i))
        shares[target].append(test)
        load[target] += durations.get(test, typical)
    return shares


class DurationRecorder:
    """Each test's own duration, for the trend across runs and for balancing shards."""

    def __init__(self, state: PluginState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.state.records.append(Record(report.nodeid, "call", report.duration))
