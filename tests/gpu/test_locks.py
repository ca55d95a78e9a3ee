"""Host locks: a lock file removed while someone waits on it never leaves two holders."""

from __future__ import annotations

import os
import threading
import time

import pytest

from harness.gpu import locks


@pytest.fixture(autouse=True)
def private_locks(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPUCI_LOCK_DIR", str(tmp_path))


def test_an_unheld_lock_file_is_removed_and_a_held_one_is_not() -> None:
    path = locks.lock_path("build-a")
    with locks.host_lock("build-a"):
        assert locks.remove_if_unheld(path) is False and path.exists()
    assert locks.remove_if_unheld(path) is True and not path.exists()
    assert locks.remove_if_unheld(path) is False  # gone already


def _until_open_twice(path: os.PathLike[str], cap_s: float = 60) -> None:
    """Until two descriptors of this process are open on `path` (the holder's and the waiter's, by the
    kernel's own account in /proc): not a fixed sleep, which a loaded machine can outlast before the
    waiter has even opened the file."""
    deadline = time.monotonic() + cap_s
    while True:
        opened = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                opened += os.readlink(f"/proc/self/fd/{fd}") == os.fspath(path)
            except OSError:
                continue
        if opened >= 2:
            return
        assert time.monotonic() < deadline, f"the waiter did not open {path} within {cap_s}s"
        time.sleep(0.01)


def test_a_waiter_whose_lock_file_was_removed_locks_the_new_one() -> None:
    path = locks.lock_path("build-b")
    got, release = threading.Event(), threading.Event()

    def waiter() -> None:
        with locks.host_lock("build-b"):
            got.set()
            release.wait(10)

    with locks.host_lock("build-b"):
        thread = threading.Thread(target=waiter)
        thread.start()
        _until_open_twice(path)  # it opened the file and waits on it
        os.unlink(path)  # what gc does to a lock file it finds unheld
    assert got.wait(10)
    try:
        # The waiter holds the file that is there now, not the removed one: a third comer waits.
        with locks.try_host_lock("build-b") as had:
            assert had is False
        assert locks.remove_if_unheld(path) is False
    finally:
        release.set()
        thread.join()


def test_shared_holders_coexist_and_keep_an_exclusive_one_out() -> None:
    with (
        locks.host_lock("image-x", shared=True),
        locks.host_lock("image-x", shared=True),
        locks.try_host_lock("image-x", wait_s=0.2) as had,
    ):
        assert had is False
    with locks.try_host_lock("image-x") as had:
        assert had is True
