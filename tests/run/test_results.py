"""A run's report says what happened to each test, and a step stopped at its timeout names the hung test."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.reports.results import counts, summary_lines, write_junit

AREA = """\
platforms: [cpu]
steps:
  - label: suite
    commands: ["python3 -m pytest -q test_demo.py"]
"""
TESTS = """\
import time, pytest

def test_ok():
    pass

def test_bad():
    assert 1 == 2, "one is not two"

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass

def test_hangs():
    time.sleep(600)
"""


def test_a_timed_out_step_reports_each_test_and_the_one_that_hung(make_project, run_harness, cpu_image) -> None:
    root = make_project(AREA, name="results")
    (root / "test_demo.py").write_text(TESTS)
    done = run_harness("run", "--platform", "cpu", "--area", "results", "--root", str(root), "--timeout", "15")
    assert done.returncode == 1, done.stderr
    run = root / ".gpuci" / "runs" / "latest"
    report = json.loads((run / "report.json").read_text())
    assert report["outcome"] == "timeout"
    assert report["counts"] == {"failed": 1, "passed": 1, "skipped": 1}
    bad = next(r for r in report["results"] if r["test"] == "test_demo.py::test_bad")
    assert bad["outcome"] == "failed" and "one is not two" in bad["message"]
    assert report["hang"]["running"] == ["test_demo.py::test_hangs"]
    assert "in test_hangs" in report["hang"]["stacks"]  # faulthandler's dump, before the stop
    assert "in test_hangs" in (run / "output.log").read_text()
    assert "still running when the step was stopped: test_demo.py::test_hangs" in done.stderr
    assert "failed: test_demo.py::test_bad — AssertionError: one is not two" in done.stderr
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")  # written for what ran
    assert suite is not None and suite.get("tests") == "4" and suite.get("errors") == "1"


def test_the_summary_and_a_junit_file_from_results(tmp_path: Path) -> None:
    results = [
        {"test": "a.py::t1", "outcome": "passed", "seconds": 0.1},
        {"test": "a.py::t2", "outcome": "failed", "seconds": 0.2, "message": 'x < y & "z"\nmore'},
        {"test": "a.py::t3", "outcome": "skipped", "seconds": 0.0},
    ]
    assert counts(results) == {"failed": 1, "passed": 1, "skipped": 1}
    lines = summary_lines(results, ["a.py::t4"])
    assert lines[0] == "tests: 1 failed, 1 passed, 1 skipped"
    assert lines[1] == '  failed: a.py::t2 — x < y & "z"'
    root = ET.parse(write_junit(results, tmp_path / "junit.xml", ["a.py::t4"])).getroot()
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["t1", "t2", "t3", "t4"]
    assert cases[1].find("failure").text == 'x < y & "z"\nmore'  # type: ignore[union-attr]
