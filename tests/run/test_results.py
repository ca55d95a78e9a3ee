"""A run's report says what happened to each test, and a step stopped at its timeout names the hung test."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.reports.records import TestResult
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
    assert report["counts"] == {"failed": 1, "passed": 1, "skipped": 1, "timeout": 1}
    hung = next(r for r in report["results"] if r["test"] == "test_demo.py::test_hangs")
    assert hung["outcome"] == "timeout" and "in test_hangs" in hung["message"]  # the innermost frame
    bad = next(r for r in report["results"] if r["test"] == "test_demo.py::test_bad")
    assert bad["outcome"] == "failed" and "one is not two" in bad["message"]
    assert "assert 1 == 2" in bad["stack"]  # pytest's report of the failure, for the HTML page
    assert report["hang"]["running"] == ["test_demo.py::test_hangs"]
    assert "in test_hangs" in report["hang"]["stacks"]  # faulthandler's dump, before the stop
    assert "in test_hangs" in (run / "output.log").read_text()
    assert "still running when the step was stopped: test_demo.py::test_hangs" in done.stderr
    assert "failed: test_demo.py::test_bad — AssertionError: one is not two" in done.stderr
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")  # written for what ran
    assert suite is not None and suite.get("tests") == "4" and suite.get("errors") == "1"
    # `gpuci report RUN_ID` names the failed and the hung test, with their messages.
    listed = run_harness("report", report["run_id"], "--no-pictures", "--html", str(root / "r.html"), cwd=root)
    assert listed.returncode == 0, listed.stderr
    assert "2 test(s) to look at" in listed.stdout
    assert "failed: test_demo.py::test_bad" in listed.stdout and "one is not two" in listed.stdout
    assert "timeout: test_demo.py::test_hangs" in listed.stdout
    assert "still running at the step's timeout" in listed.stdout


COUNTED = """\
platforms: [cpu]
steps:
  - label: suite
    commands: ["python3 -m pytest -q -n 2 --continue-on-collection-errors tests"]
"""
COUNTED_TESTS = {
    "test_plain.py": "import pytest\n\ndef test_ok():\n    pass\n\ndef test_bad():\n    assert 0, 'nope'\n\n"
    "@pytest.mark.skip(reason='later')\ndef test_skip():\n    pass\n\n"
    "@pytest.mark.xfail(reason='known')\ndef test_xfail():\n    assert 0\n\n"
    "@pytest.mark.parametrize('n', range(5))\ndef test_many(n):\n    pass\n",
    # Skipped as it is imported: pytest counts each module once, whatever the number of xdist workers.
    "test_needs_a.py": "import pytest\n\npytest.importorskip('no_such_module_a')\n\ndef test_a():\n    pass\n",
    "test_needs_b.py": "import pytest\n\npytest.importorskip('no_such_module_b')\n\ndef test_b():\n    pass\n",
    "test_broken.py": "import no_such_module_c\n\ndef test_c():\n    pass\n",  # a collection error
}


def test_counts_are_pytests_with_collection_skips_and_errors_under_xdist(
    make_project, run_harness, cpu_image, tmp_path: Path
) -> None:
    import re
    import subprocess
    import sys

    root = make_project(COUNTED, name="counted")
    (root / "tests").mkdir()
    for name, text in COUNTED_TESTS.items():
        (root / "tests" / name).write_text(text)
    done = run_harness("run", "--platform", "cpu", "--area", "counted", "--root", str(root))
    assert done.returncode == 1, done.stderr[-3000:]
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    plain = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--continue-on-collection-errors", "tests"],
        cwd=root, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    summary = plain.stdout.strip().splitlines()[-1]
    said = {("error" if k.startswith("error") else k): int(n) for n, k in re.findall(r"(\d+) ([a-z]+)", summary)}
    assert said == {"failed": 1, "passed": 6, "skipped": 3, "xfailed": 1, "error": 1}, summary
    assert report["counts"] == said
    broken = next(r for r in report["results"] if r["test"] == "tests/test_broken.py")
    assert broken["outcome"] == "error" and "no_such_module_c" in broken["message"]
    skipped = next(r for r in report["results"] if r["test"] == "tests/test_needs_a.py")
    assert skipped["outcome"] == "skipped" and "no_such_module_a" in skipped["message"]


def test_the_summary_and_a_junit_file_from_results(tmp_path: Path) -> None:
    results = [
        TestResult("a.py::t1", "passed", 0.1),
        TestResult("a.py::t2", "failed", 0.2, 'x < y & "z"\nmore'),
        TestResult("a.py::t3", "skipped", 0.0),
    ]
    assert counts(results) == {"failed": 1, "passed": 1, "skipped": 1}
    lines = summary_lines(results, ["a.py::t4"])
    assert lines[0] == "tests: 1 failed, 1 passed, 1 skipped"
    assert lines[1] == '  failed: a.py::t2 — x < y & "z"'
    root = ET.parse(write_junit(results, tmp_path / "junit.xml", ["a.py::t4"])).getroot()
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["t1", "t2", "t3", "t4"]
    assert cases[1].find("failure").text == 'x < y & "z"\nmore'  # type: ignore[union-attr]


def test_the_summary_names_a_few_running_tests_not_every_one() -> None:
    lines = summary_lines([], [f"a.py::t{n}" for n in range(500)])
    assert len(lines) == 11 and lines[-1].startswith("  … and 490 more")
