"""The typed run report: what report.json holds, read back with each field's kind checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.reports.report import SCHEMA_VERSION, MalformedReport, RunReport, write_report

# A report as gpuci wrote them before the report was typed (schema 1), trimmed.
OLDER = {
    "schema": 1,
    "run_id": "20261129T101010Z-cpu_sampler-abc123",
    "platform": "cpu",
    "session": "cpu_sampler",
    "area": "sampler",
    "step": "sampler",
    "pytest_args": [],
    "started_at": 1796000000.0,
    "git": {"commit": "a" * 40, "dirty": False},
    "host": {"hostname": "ci-1", "pid": 7},
    "mode": "container",
    "image": {"tag": "gpuci/cpu:0123456789abcdef", "id": "sha256:" + "b" * 64},
    "timings": {"image_ensure_s": 0.002, "run_s": 3.1, "total_s": 3.5},
    "outcome": "passed",
    "gpuci_exit_code": 0,
    "counts": {"passed": 9},
    "a_later_gpucis_field": {"kept": True},
}


def test_an_older_report_reads_and_writes_back_with_its_fields() -> None:
    report = RunReport.from_json(OLDER)
    assert report.outcome == "passed" and report.counts == {"passed": 9} and report.image["tag"].startswith("gpuci/")  # type: ignore[index]
    data = report.to_json()
    assert data["schema"] == SCHEMA_VERSION and data["a_later_gpucis_field"] == {"kept": True}
    assert {k: v for k, v in data.items() if k in OLDER} == OLDER


def test_keys_that_say_something_happened_are_absent_until_it_did(tmp_path: Path) -> None:
    report = RunReport("run-1", "cpu")
    data = report.to_json()
    for key in ("hang", "error", "log_error", "leftover_pids", "outbox_skipped", "repro_of", "test_engine"):
        assert key not in data
    assert data["junit"] is None and data["vram"] is None  # always there, null when there is none
    report.log_error = "No space left on device"
    written = json.loads(write_report(tmp_path, report).read_text())
    assert written["log_error"] == "No space left on device" and written["run_id"] == "run-1"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"timings": {"run_s": "fast"}}, "has timings.run_s = 'fast', not a number"),
        ({"outcome": 3}, "has outcome = 3, not str"),
        ({"gpuci_exit_code": True}, "has gpuci_exit_code = True, not int"),
        ({"git": {"commit": 12}}, "has git.commit = 12, not a commit id"),
        ({"tests": [{"test": "t", "seconds": "slow"}]}, "that is not {phase, test, seconds}"),
        ({"run_id": None}, "lacks run_id"),
    ],
)
def test_a_field_of_the_wrong_kind_is_one_sentence(change: dict, says: str) -> None:
    with pytest.raises(MalformedReport) as err:
        RunReport.from_json({**OLDER, **change})
    assert says in str(err.value) and "\n" not in str(err.value)


def test_what_is_not_an_object_is_no_report() -> None:
    with pytest.raises(MalformedReport, match="is a JSON list, not a run report"):
        RunReport.from_json([OLDER])
    with pytest.raises(MalformedReport, match="lacks area, image"):
        RunReport.from_json({"run_id": "x", "git": {}}, required=("run_id", "area", "image"))
