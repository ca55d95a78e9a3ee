"""Folders owned by one process: named with its PID and start time, found stale once it is gone."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from harness.owned import make_owned_dir, own_start_time, stale_owned_dirs


def test_the_start_time_read_from_proc_is_psutil_s() -> None:
    # The reaper and the stale-folder check compare it with psutil's create_time() of the same PID.
    assert abs(own_start_time() - psutil.Process().create_time()) < 0.01


def test_a_folder_of_this_process_is_not_stale_and_one_of_a_reused_pid_is(tmp_path: Path) -> None:
    mine = make_owned_dir(tmp_path, "context-")
    assert mine.name.startswith(f"context-{os.getpid()}-")
    assert stale_owned_dirs(tmp_path, "context-") == []
    reused = tmp_path / f"context-{os.getpid()}-{own_start_time() - 100:.2f}-abcdef"  # same PID, older process
    reused.mkdir()
    assert stale_owned_dirs(tmp_path, "context-") == [reused]
