"""The log keeps its head and its tail, says how much was cut, and says when it could not be written."""

from __future__ import annotations

import io
from pathlib import Path

from harness.redact import Redactor
from harness.run.logs import LogPump


def test_past_the_cap_the_head_and_the_tail_are_kept(tmp_path: Path) -> None:
    console = io.BytesIO()
    pump = LogPump(tmp_path / "out.log", 1000, Redactor({}), console)
    lines = [f"line {i:04d}\n".encode() for i in range(500)]  # 5500 bytes
    pump.run(iter([b"".join(lines[:250]), b"".join(lines[250:])]))
    text = (tmp_path / "out.log").read_text()
    assert text.startswith("line 0000\n") and text.endswith("line 0499\n")
    assert "[gpuci: log cut here: 4000 bytes dropped; the last 500 bytes follow]" in text
    assert len(text) < 1100
    assert console.getvalue().decode() == text  # the console shows the same, the tail at the end


def test_a_log_that_cannot_be_written_is_said_and_the_console_still_shows_it() -> None:
    console = io.BytesIO()
    pump = LogPump(Path("/dev/full"), 1000, Redactor({}), console)  # every write: no space left
    pump.run(iter([b"hello\n"]))
    assert pump.failure is not None and "No space left" in pump.failure
    assert console.getvalue() == b"hello\n"


def test_an_unfinished_last_line_is_ended_on_the_console_so_gpuci_lines_start_their_own(tmp_path: Path) -> None:
    # A step stopped mid-line (pytest's `....F` progress at a timeout): gpuci's `tests: …` came after
    # it on the same terminal line. The console gets the line's end; the log file keeps the bytes as they came.
    console = io.BytesIO()
    pump = LogPump(tmp_path / "out.log", 1000, Redactor({}), console)
    pump.run(iter([b"collected 3 items\n", b"..F"]))
    assert console.getvalue() == b"collected 3 items\n..F\n"
    assert (tmp_path / "out.log").read_bytes() == b"collected 3 items\n..F"
    ended = io.BytesIO()
    LogPump(tmp_path / "ended.log", 1000, Redactor({}), ended).run(iter([b"3 passed\n"]))
    assert ended.getvalue() == b"3 passed\n"  # a finished line gets no second end
