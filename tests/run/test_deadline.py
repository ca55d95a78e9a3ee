"""A stretch of the run without a timeout of its own is bounded: the error is raised where the code waits."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from harness.errors import ImageBuildError
from harness.run.deadline import deadline


def test_a_wait_on_a_child_is_left_at_the_deadline_and_the_child_is_killed() -> None:
    started = time.monotonic()
    with pytest.raises(ImageBuildError, match="too slow"), deadline(1.0, lambda: ImageBuildError("too slow")):
        subprocess.run(["sleep", "300"], check=False)
    assert time.monotonic() - started < 120  # left at the deadline, not after the child's 300 s
    survivors = subprocess.run(["pgrep", "-P", str(os.getpid()), "sleep"], capture_output=True, text=True)
    assert survivors.stdout.strip() == ""  # subprocess.run killed its child on the way out


def test_a_stretch_within_its_time_is_left_alone_and_the_timer_and_handler_are_restored() -> None:
    import signal

    before = signal.getsignal(signal.SIGALRM)
    with deadline(5.0, lambda: ImageBuildError("too slow")):
        time.sleep(0.1)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before
