"""The outbox read back: what a workload wrote for gpuci, bounded in all, not only file by file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.run import outbox


def _line(i: int) -> bytes:
    return json.dumps({"test": f"t{i}", "outcome": "passed"}).encode() + b"\n"


def test_many_files_of_results_cost_gpuci_a_bounded_total(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hostile step wrote two 60 MiB files of one-line results: gpuci (on the host, no memory limit)
    read both whole and held 3.9 million results, 4.4 GB resident, and wrote a 318 MB report.json and a
    204 MB junit.xml. Each file was under the per-file cap; ten of them would take the host's memory.
    Here the caps are shrunk to keep the test quick; the code reads them from the module."""
    monkeypatch.setattr(outbox, "MAX_TOTAL_BYTES", 4000)
    monkeypatch.setattr(outbox, "MAX_RESULTS", 50)
    box, out = tmp_path / "outbox", tmp_path / "run"
    box.mkdir()
    out.mkdir()
    for n in range(5):  # each file about 1,900 bytes: under the per-file cap, over the total together
        (box / f"tests-{n}").write_bytes(b"".join(_line(n * 100 + i) for i in range(60)))
    collected = outbox.collect(box, out)
    assert len(collected.results) == 50  # no more than the cap, whatever the files hold
    reasons = {s.name: s.reason for s in collected.skipped}
    assert "tests-0" in reasons and "results" in reasons["tests-0"]  # what was dropped is said
    assert any("in all" in r for r in reasons.values())  # files past the total are skipped, named


def test_records_are_bounded_in_number_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "MAX_RECORDS", 10)
    box, out = tmp_path / "outbox", tmp_path / "run"
    box.mkdir()
    out.mkdir()
    (box / "pytest-records-a.json").write_text(json.dumps([{"test": f"t{i}"} for i in range(30)]))
    collected = outbox.collect(box, out)
    assert len(collected.records) == 10
    assert any(s.name == "pytest-records-a.json" and "records" in s.reason for s in collected.skipped)


def test_a_suite_of_ordinary_size_is_read_whole(tmp_path: Path) -> None:
    box, out = tmp_path / "outbox", tmp_path / "run"
    box.mkdir()
    out.mkdir()
    (box / "tests-gw0").write_bytes(b"".join(_line(i) for i in range(5000)))
    (box / "junit.xml").write_text("<testsuites/>")
    collected = outbox.collect(box, out)
    assert len(collected.results) == 5000 and collected.skipped == []


def test_running_files_by_the_thousand_are_a_bounded_few(tmp_path: Path) -> None:
    """A step that wrote 50,000 one-line `running-N` files (50 MB) had gpuci print 50,000 lines (52 MB)
    of "still running when the step was stopped" into the CI log, and a 107 MB report.json. The plugin
    writes one such file per xdist worker."""
    box, out = tmp_path / "outbox", tmp_path / "run"
    box.mkdir()
    out.mkdir()
    for n in range(outbox.MAX_RUNNING + 40):
        (box / f"running-{n}").write_text(f"t.py::test_{n}")
    collected = outbox.collect(box, out)
    assert len(collected.running) == outbox.MAX_RUNNING
    assert [(s.name, s.reason) for s in collected.skipped] == [
        ("40 running-files", f"past the first {outbox.MAX_RUNNING}")
    ]


def test_a_million_names_are_not_a_million_opens_or_skipped_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "MAX_FILES", 20)
    box, out = tmp_path / "outbox", tmp_path / "run"
    box.mkdir()
    out.mkdir()
    for n in range(100):
        (box / f"tests-{n:03}").symlink_to("/etc/passwd")
    collected = outbox.collect(box, out)
    assert len(collected.skipped) == 21  # 20 links named, and one line for the 80 not opened
    assert collected.skipped[-1].name == "80 more files"
