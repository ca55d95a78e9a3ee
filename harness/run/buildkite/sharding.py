"""A Buildkite job's share of a `parallelism` step's tests, balanced by earlier durations: the host's
half of test sharding (the arguments a run gives pytest); `harness.plugin.sharding` is the pytest half."""

from __future__ import annotations

import json
from pathlib import Path


def shard_args(directory: Path, report_dir_inside: str, session: str, root: Path, share: tuple[int, int]) -> list[str]:
    """In a CI job of a step with `parallelism`, this job's `share` of the tests ((index, count) as the
    run's request read it: harness.ci_provider.CIJob), balanced by the durations of the session's latest
    earlier report when one is at hand."""
    index, count = share
    if count <= 1:
        return []
    durations = _earlier_durations(root, session)
    if not durations:
        return [f"--gpuci-shard={index}/{count}"]
    (directory / "durations.json").write_text(json.dumps(durations))
    return [f"--gpuci-shard={index}/{count}", f"--gpuci-durations={report_dir_inside}/durations.json"]


def _earlier_durations(root: Path, session: str) -> dict[str, float]:
    from harness.reports.report import RUNS_DIR
    from harness.untrusted import parse_json, read_capped

    reports = sorted((Path(root) / RUNS_DIR).glob(f"*-{session}-*/report.json"), reverse=True)
    for path in reports:
        try:  # the checkout may hold any file there: bounded, regular, not too deep
            data = parse_json(read_capped(path, 32 * 2**20))
            records = (data.get("tests") if isinstance(data, dict) else None) or []
        except (OSError, ValueError):
            continue
        durations = {
            str(r["test"]): float(r["seconds"])
            for r in records
            if isinstance(r, dict)
            and r.get("phase") == "call"
            and isinstance(r.get("seconds"), (int, float))
            and "test" in r
        }
        if durations:
            return durations
    return {}
