"""The report's typed sub-records: report.json keeps its keys, and a value of the wrong kind reads as absent."""

from __future__ import annotations

from harness.reports.records import Budget, Hang, TestRecord, TestResult
from harness.reports.report import RunReport

WRITTEN = {
    "run_id": "r1",
    "budget": {"seconds": 2.1, "stop_seconds": 0.4, "margin_seconds": 1.7, "within": True},
    "tests": [{"test": "t.py::a", "phase": "shutdown", "seconds": 1.5, "budget": 2.1, "gpus": ["sim0"], "holders": []}],
    "results": [
        {"test": "t.py::a", "outcome": "passed", "seconds": 0.1},
        {"test": "t.py::b", "outcome": "failed", "seconds": 0.2, "message": "boom", "stack": "> assert 0"},
        {"test": "t.py::c", "outcome": "timeout", "seconds": None, "message": "still running"},
    ],
    "hang": {"running": ["t.py::c"], "stacks": 'File "t.py", line 3 in test_c'},
}


def test_sub_records_are_typed_and_written_back_with_the_same_keys() -> None:
    report = RunReport.from_json(WRITTEN)
    assert report.budget == Budget(2.1, 0.4, 1.7, True)
    assert report.tests == [TestRecord("t.py::a", "shutdown", 1.5, 2.1, {"gpus": ["sim0"], "holders": []})]
    assert report.results is not None and report.results[1] == TestResult(
        "t.py::b", "failed", 0.2, "boom", "> assert 0"
    )
    assert report.hang == Hang(("t.py::c",), 'File "t.py", line 3 in test_c')
    again = report.to_json()
    assert {k: again[k] for k in WRITTEN} == WRITTEN


def test_a_value_of_the_wrong_kind_reads_as_absent_never_as_a_crash() -> None:
    odd = {
        "run_id": "r1",
        "budget": {"seconds": "2.1", "stop_seconds": True, "within": "yes"},
        "tests": [{"test": "t.py::a", "phase": "shutdown", "seconds": 1, "budget": "2"}],
        "results": [{"test": "t.py::a", "outcome": "failed", "message": {"deep": 1}}],
        "hang": {"running": "t.py::a", "stacks": 7},
    }
    report = RunReport.from_json(odd)
    assert report.budget == Budget() and report.hang == Hang()  # a bool is no number of seconds
    assert report.tests == [TestRecord("t.py::a", "shutdown", 1.0)]
    assert report.results == [TestResult("t.py::a", "failed")]
    assert report.timing("total_s") == 0.0
