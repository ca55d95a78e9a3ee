"""Project mounts: relative sources are the checkout's; mounts that give the host away need an opt-in."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.run.mounts import dangerous_because, project_mounts


def test_sources_that_give_the_host_away(tmp_path: Path) -> None:
    checkout = tmp_path / "agent" / "builds" / "project"
    checkout.mkdir(parents=True)
    sock_path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        assert "socket" in str(dangerous_because(sock_path, checkout))
    finally:
        server.close()
    assert "holds the host's" in str(dangerous_because(Path("/"), checkout))
    assert "/etc" in str(dangerous_because(Path("/etc/ssl"), checkout))
    assert "contains the checkout" in str(dangerous_because(tmp_path / "agent", checkout))
    assert "contains the checkout" in str(dangerous_because(checkout, checkout))
    home = Path(os.path.expanduser("~")).resolve()
    assert dangerous_because(home, checkout) is not None
    assert "credentials" in str(dangerous_because(home / ".ssh", checkout))
    assert dangerous_because(checkout / "model-cache", checkout) is None
    assert dangerous_because(tmp_path / "cache", checkout) is None


def test_a_dangerous_mount_needs_its_mark_or_the_projects_opt_in(tmp_path: Path, capsys) -> None:
    with pytest.raises(UsageError) as err:
        project_mounts(("/etc:/host-etc:ro",), tmp_path, allow_dangerous=False)
    assert "':dangerous'" in str(err.value) and "allow_dangerous_mounts" in str(err.value)
    [marked] = project_mounts(("/etc:/host-etc:ro:dangerous",), tmp_path, allow_dangerous=False)
    assert marked.read_only and marked.source == "/etc"
    assert project_mounts(("/etc:/host-etc",), tmp_path, allow_dangerous=True)[0].read_only is False
    assert capsys.readouterr().err.count("warning: mount") == 2


def test_a_relative_source_is_in_the_checkout_and_a_link_is_judged_by_its_target(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    [mount] = project_mounts(("cache:/cache:ro",), tmp_path, allow_dangerous=False)
    assert mount.source == str((tmp_path / "cache").resolve())
    (tmp_path / "innocent").symlink_to("/")
    with pytest.raises(UsageError):
        project_mounts(("innocent:/data",), tmp_path, allow_dangerous=False)
