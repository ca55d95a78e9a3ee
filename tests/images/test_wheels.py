"""Wheels going into an image match the hashes recorded when gpuci fetched them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.images.wheels import copy_verified, record_fetched, record_path, recording


def wheelhouse(tmp_path: Path) -> Path:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    (house / "pkg-1.0-py3-none-any.whl").write_bytes(b"genuine wheel")
    return house


def test_a_wheel_changed_after_it_was_fetched_stops_the_build(tmp_path: Path) -> None:
    root, house = tmp_path / "project", wheelhouse(tmp_path)
    root.mkdir()
    record_fetched(root, house, {"pkg-1.0-py3-none-any.whl"})
    first = copy_verified(root, house, tmp_path / "context1")
    assert (tmp_path / "context1" / "pkg-1.0-py3-none-any.whl").read_bytes() == b"genuine wheel"
    (house / "pkg-1.0-py3-none-any.whl").write_bytes(b"genuine wheel + evil.pth")
    with pytest.raises(UsageError) as err:
        copy_verified(root, house, tmp_path / "context2")
    assert "changed since gpuci fetched it" in str(err.value) and "nothing was built" in str(err.value)
    assert len(first) == 64


def test_unrecorded_wheels_are_recorded_once_and_links_never_copied(tmp_path: Path, capsys) -> None:
    root, house = tmp_path / "project", wheelhouse(tmp_path)
    root.mkdir()
    secret = tmp_path / "host-file"
    secret.write_text("host")
    (house / "linked-1.0-py3-none-any.whl").symlink_to(secret)
    copy_verified(root, house, tmp_path / "context")
    assert "recorded the hashes of 1 wheel(s)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "context").iterdir()) == ["pkg-1.0-py3-none-any.whl"]
    assert "pkg-1.0-py3-none-any.whl" in record_path(root).read_text()
    copy_verified(root, house, tmp_path / "context-again")
    assert "recorded" not in capsys.readouterr().err


def test_wheels_fetched_inside_recording_are_gpuci_s_and_never_called_hand_put(tmp_path: Path, capsys) -> None:
    root, house = tmp_path / "project", wheelhouse(tmp_path)
    root.mkdir()
    record_fetched(root, house, {"pkg-1.0-py3-none-any.whl"})
    with recording(root, house):  # as a resolver saves a wheel
        (house / "fetched-2.0-py3-none-any.whl").write_bytes(b"fetched by gpuci")
    assert "fetched-2.0-py3-none-any.whl" in record_path(root).read_text()
    copy_verified(root, house, tmp_path / "context")
    assert "did not fetch" not in capsys.readouterr().err
    (house / "byhand-1.0-py3-none-any.whl").write_bytes(b"put here by hand")  # outside any fetch
    copy_verified(root, house, tmp_path / "context-2")
    assert "recorded the hashes of 1 wheel(s) gpuci did not fetch" in capsys.readouterr().err
