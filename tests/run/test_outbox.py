"""The outbox read back: pytest's JUnit file is copied into the run folder masked, bounded and never
through a link; what is refused is named with why; what is read is bounded in all, not only file by file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.redact import Redactor
from harness.run import outbox
from harness.run.outbox import MAX_FILE_BYTES, PYTEST_JUNIT_NAME, collect

SECRET = "s3cret-0123456789-token"
JUNIT = f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="1"><testcase name="t"><system-out>{SECRET}</system-out></testcase></testsuite></testsuites>'  # noqa: E501


def folders(tmp_path: Path) -> tuple[Path, Path]:
    outbox, run = tmp_path / "outbox", tmp_path / "run"
    outbox.mkdir(parents=True)
    run.mkdir()
    return outbox, run


def test_pytests_junit_is_copied_with_its_secrets_masked(tmp_path: Path) -> None:
    outbox, run = folders(tmp_path)
    (outbox / "junit.xml").write_text(JUNIT)
    collected = collect(outbox, run, Redactor(secrets=[SECRET]).bytes)
    assert collected.pytest_junit == run / PYTEST_JUNIT_NAME and not collected.skipped
    kept = (run / PYTEST_JUNIT_NAME).read_text()
    assert SECRET not in kept and "[redacted]" in kept and kept.startswith('<?xml version="1.0"')


def test_a_secret_is_masked_as_xml_escaped_it_too(tmp_path: Path) -> None:
    """pytest's JUnit writes a test's output escaped: a secret with `&`, `<` or a quote is not there as it is."""
    secret = 'p&ss<w0rd>"quoted"-0123'
    outbox, run = folders(tmp_path)
    escaped = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    (outbox / "junit.xml").write_text(
        f'<testsuites><testcase name="t" message="{escaped.replace(chr(34), "&quot;")}">'
        f"<system-out>{escaped}</system-out></testcase></testsuites>"
    )
    collect(outbox, run, Redactor(secrets=[secret]).xml)
    kept = (run / PYTEST_JUNIT_NAME).read_text()
    assert "w0rd" not in kept and kept.count("[redacted]") == 2


def test_a_linked_oversized_or_odd_junit_is_skipped_and_nothing_is_copied(tmp_path: Path) -> None:
    for name, make in (
        ("a symbolic link", lambda path: path.symlink_to(tmp_path / "victim.xml")),
        ("not a regular file", lambda path: os.mkfifo(path)),
        (f"larger than {MAX_FILE_BYTES} bytes", lambda path: os.truncate(path.open("w").name, MAX_FILE_BYTES + 1)),
    ):
        (tmp_path / "victim.xml").write_text("<host-only/>")
        outbox, run = folders(tmp_path / name.split()[0])
        make(outbox / "junit.xml")
        collected = collect(outbox, run, lambda data: data)
        assert collected.pytest_junit is None and [(s.name, s.reason) for s in collected.skipped] == [
            ("junit.xml", name)
        ]
        assert list(run.iterdir()) == []


def test_only_the_stacks_of_a_worker_running_a_test_are_kept(tmp_path: Path) -> None:
    """The plugin dumps once at the deadline: a worker between tests dumps its idle stacks too."""
    outbox, run = folders(tmp_path)
    (outbox / "running-gw0.txt").write_text(" " * 40)  # cleared: idle at the stop
    (outbox / "stacks-gw0.txt").write_text('  File "xdist/remote.py", line 9 in idle\n')
    (outbox / "running-gw1.txt").write_text("t.py::test_hangs" + " " * 20)
    (outbox / "stacks-gw1.txt").write_text('  File "t.py", line 3 in test_hangs\n')
    collected = collect(outbox, run, lambda data: data)
    assert collected.running == ["t.py::test_hangs"]
    assert "in test_hangs" in collected.stacks and "idle" not in collected.stacks


def _same(data: bytes) -> bytes:
    return data


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
    collected = outbox.collect(box, out, _same)
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
    collected = outbox.collect(box, out, _same)
    assert len(collected.records) == 10
    assert any(s.name == "pytest-records-a.json" and "records" in s.reason for s in collected.skipped)


def test_a_suite_of_ordinary_size_is_read_whole(tmp_path: Path) -> None:
    box, out = tmp_path / "outbox", tmp_path / "run"
    box.mkdir()
    out.mkdir()
    (box / "tests-gw0").write_bytes(b"".join(_line(i) for i in range(5000)))
    (box / "junit.xml").write_text("<testsuites/>")
    collected = outbox.collect(box, out, _same)
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
    collected = outbox.collect(box, out, _same)
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
    collected = outbox.collect(box, out, _same)
    assert len(collected.skipped) == 21  # 20 links named, and one line for the 80 not opened
    assert collected.skipped[-1].name == "80 more files"
