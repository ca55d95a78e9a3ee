"""A bound on a stretch of the run that has no timeout of its own (the image's build or pull).

On the main thread, an interval timer raises the given error where the code is when the time is
up: a blocking read of the engine's stream or a wait on pip is left at once, `subprocess.run` kills
its child on the way out, and locks held in `with` blocks are released. Elsewhere (a thread) the
stretch runs unbounded, as before.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from harness.errors import GpuciError


@contextmanager
def deadline(seconds: float, error: Callable[[], GpuciError]) -> Iterator[None]:
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum: int, frame: FrameType | None) -> None:
        raise error()

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
