"""Workload output to the terminal and to a file, redacted and capped in size."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, BinaryIO

from harness.redact import Redactor

DEFAULT_LOG_CAP = 64 * 1024**2


class LogPump:
    """Copies a container's output to the terminal and to a file, up to a byte cap."""

    def __init__(self, path: Path, cap: int, redactor: Redactor, echo: BinaryIO | None) -> None:
        self.path, self.cap, self.redactor, self.echo = path, cap, redactor, echo
        self.written = 0
        self.dropped = 0
        self._pending = b""
        self.thread: threading.Thread | None = None

    def run(self, chunks: Any) -> None:
        with open(self.path, "wb") as out:
            try:
                for chunk in chunks:
                    self._take(chunk, out)
            except Exception:
                pass
            if self._pending:
                self._emit(self._pending, out)
            if self.dropped:
                note = f"[gpuci: log capped at {self.cap} bytes; {self.dropped} more bytes dropped]\n"
                out.write(note.encode())
                if self.echo:
                    self.echo.write(note.encode())
                    self.echo.flush()

    def _take(self, chunk: bytes, out: BinaryIO) -> None:
        # Redact whole lines only, so a secret split across chunks is still caught.
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        if len(self._pending) > 65536:  # a line with no end: let it through in pieces
            cut, self._pending = len(data), b""
        if cut:
            self._emit(data[:cut], out)

    def _emit(self, data: bytes, out: BinaryIO) -> None:
        if self.written >= self.cap:
            self.dropped += len(data)
            return
        text = self.redactor.bytes(data)
        room = self.cap - self.written
        kept, self.dropped = text[:room], self.dropped + max(0, len(text) - room)
        out.write(kept)
        self.written += len(kept)
        if self.echo:
            self.echo.write(kept)
            self.echo.flush()

    def start(self, chunks: Any) -> None:
        self.thread = threading.Thread(target=self.run, args=(chunks,), daemon=True, name="gpuci-logs")
        self.thread.start()

    def join(self, timeout: float) -> None:
        if self.thread:
            self.thread.join(timeout)
