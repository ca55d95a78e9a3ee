"""The outbox read back: pytest's JUnit file is copied into the run folder masked, bounded and never
through a link; what is refused is named with why."""

from __future__ import annotations

import os
from pathlib import Path

from harness.redact import Redactor
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
