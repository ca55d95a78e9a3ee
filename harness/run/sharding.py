"""A Buildkite job's share of a `parallelism` step's tests, balanced by earlier durations: the host's
half of test sharding (the arguments a run gives pytest); `harness.plugin.sharding` is the pytest half."""

from __future__ import annotations

import json
import os
from pathlib import Path


def shard_args(directory: Path, report_dir_inside: str, session: str, root: Path) -> list[str]:
    """In a Buildkite job of a step with `parallelism`, this job's share of the tests, balanced by
    the durations of the session's latest earlier report when one is at hand."""
    count = int(os.environ.get("BUILDKITE_PARALLEL_JOB_COUNT", "0") or 0)
    if count <= 1:
        return []
    index = int(os.environ.get("BUILDKITE_PARALLEL_JOB", "0") or 0)
    durations = _earlier_durations(root, session)
    if not durations:
        return [f"--gpuci-shard={index}/{count}"]
    (directory / "durations.json").write_text(json.dumps(durations))
    return [f"--gpuci-shard={index}/{count}", f"--gpuci-durations={report_dir_inside}/durations.json"]


def _earlier_durations(root: Path, session: str) -> dict[str, float]:
    from harness.reports.report import RUNS_DIR

    reports = sorted((Path(root) / RUNS_DIR).glob(f"*-{session}-*/report.json"), reverse=True)
    for path in reports:
        try:
            records = json.loads(path.read_text()).get("tests") or []
        except (OSError, ValueError):
            continue
        durations = {r["test"]: r["seconds"] for r in records if r.get("phase") == "call"}
        if durations:
            return durations
    return {}
