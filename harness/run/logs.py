"""Workload output to the terminal and to a file, redacted, capped in size: head and tail kept.

Past the cap a log keeps its first half and its last half, with a line saying how many bytes were
cut there: the end of a failing run (pytest's summary, the traceback) is never the part dropped.
The terminal shows the head as it comes, then the cut note and the tail when the workload ends.
"""

from __future__ import annotations

import collections
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from harness.redact import Redactor

DEFAULT_LOG_CAP = 64 * 1024**2


@dataclass(frozen=True)
class LogTarget:
    """Where a workload's output goes: the run's log file (redacted, head and tail kept past `cap`),
    and the terminal too when `echo`."""

    path: Path
    redactor: Redactor
    echo: bool = True
    cap: int = DEFAULT_LOG_CAP

    def pump(self) -> LogPump:
        return LogPump(self.path, self.cap, self.redactor, sys.stdout.buffer if self.echo else None)


class LogPump:
    """Copies a workload's output to the terminal and to a file: head and tail within a byte cap."""

    def __init__(self, path: Path, cap: int, redactor: Redactor, echo: BinaryIO | None) -> None:
        self.path, self.cap, self.redactor, self.echo = path, cap, redactor, echo
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.written = 0
        self.dropped = 0
        self.failure: str | None = None  # the file could not be written (a full disk): said once
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_bytes = 0
        self._pending = b""
        self._echo_ended = True  # the terminal's last byte from here was a line's end (or none came)
        self.thread: threading.Thread | None = None

    def run(self, chunks: Any) -> None:
        try:
            out: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed below, after the tail
        except OSError as exc:
            out, self.failure = None, f"{self.path}: {exc.strerror}"
        try:
            for chunk in chunks:
                self._take(chunk, out)
        except Exception:
            pass  # the stream broke (the engine went away): keep what came
        if self._pending:
            self._emit(self._pending, out)
        self._finish(out)

    def _finish(self, out: BinaryIO | None) -> None:
        tail = b"".join(self._tail)
        if self.dropped:
            note = f"\n[gpuci: log cut here: {self.dropped} bytes dropped; the last {len(tail)} bytes follow]\n"
            self._write(out, note.encode() + tail, echo=True)
        if self.echo and not self._echo_ended:  # a step stopped mid-line: gpuci's next line starts its own
            self.echo.write(b"\n")
            self.echo.flush()
        if out is not None:
            try:
                out.close()
            except OSError as exc:
                self.failure = self.failure or f"{self.path}: {exc.strerror}"

    def _take(self, chunk: bytes, out: BinaryIO | None) -> None:
        # Redact whole lines only, so a secret split across chunks is still caught.
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        if len(self._pending) > 65536:  # a line with no end: let it through in pieces
            cut, self._pending = len(data), b""
        if cut:
            self._emit(data[:cut], out)

    def _emit(self, data: bytes, out: BinaryIO | None) -> None:
        text = self.redactor.bytes(data)
        room = self.head_cap - self.written
        if room > 0:
            kept, text = text[:room], text[room:]
            self.written += len(kept)
            self._write(out, kept, echo=True)
        if text:
            self._keep_tail(text)

    def _keep_tail(self, text: bytes) -> None:
        self._tail.append(text)
        self._tail_bytes += len(text)
        while self._tail_bytes > self.tail_cap:
            first = self._tail.popleft()
            excess = self._tail_bytes - self.tail_cap
            if len(first) > excess:
                self._tail.appendleft(first[excess:])
                self.dropped += excess
                self._tail_bytes -= excess
            else:
                self.dropped += len(first)
                self._tail_bytes -= len(first)

    def _write(self, out: BinaryIO | None, data: bytes, echo: bool) -> None:
        if out is not None and self.failure is None:
            try:
                out.write(data)
            except OSError as exc:  # ENOSPC: the console still gets it; the run says so once
                self.failure = f"{self.path}: {exc.strerror}"
        if echo and self.echo and data:
            self.echo.write(data)
            self.echo.flush()
            self._echo_ended = data.endswith(b"\n")

    def start(self, chunks: Any) -> None:
        self.thread = threading.Thread(target=self.run, args=(chunks,), daemon=True, name="gpuci-logs")
        self.thread.start()

    def join(self, timeout: float) -> None:
        if self.thread:
            self.thread.join(timeout)
