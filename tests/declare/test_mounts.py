"""Mounts: the project's within the host policy (its checkout, or folders the policy grants), the host's
own (GPUCI_MOUNTS); mounts that give the host away need the host's opt-in."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from harness.declare.mounts import dangerous_because, project_mounts
from harness.declare.policy import HostPolicy, MountGrant
from harness.errors import UsageError

NO_POLICY = HostPolicy()


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


def test_a_dangerous_mount_needs_the_hosts_opt_in(tmp_path: Path, capsys) -> None:
    with pytest.raises(UsageError) as err:
        project_mounts((), tmp_path, NO_POLICY, ("/etc:/host-etc:ro",))
    assert "':dangerous'" in str(err.value) and "allow_dangerous_mounts" in str(err.value)
    [marked] = project_mounts((), tmp_path, NO_POLICY, ("/etc:/host-etc:ro:dangerous",))
    assert marked.read_only and marked.source == "/etc"
    opted_in = HostPolicy(allow_dangerous_mounts=True, mounts=(MountGrant(Path("/etc"), writable=True),))
    assert project_mounts(("/etc:/host-etc",), tmp_path, opted_in)[0].read_only is False
    assert capsys.readouterr().err.count("warning: mount") == 2


def test_a_relative_source_is_in_the_checkout_and_a_link_is_judged_by_its_target(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    [mount] = project_mounts(("cache:/cache:ro",), tmp_path, NO_POLICY)
    assert mount.source == str((tmp_path / "cache").resolve())
    (tmp_path / "innocent").symlink_to("/")
    with pytest.raises(UsageError):
        project_mounts(("innocent:/data",), tmp_path, NO_POLICY)


@pytest.mark.parametrize("name", [".git", ".gpuci", ".nox", ".git/hooks", "."])
def test_the_project_never_mounts_what_the_host_trusts_writable(tmp_path: Path, name: str) -> None:
    checkout = tmp_path / "checkout"
    for folder in (".git/hooks", ".gpuci", ".nox"):
        (checkout / folder).mkdir(parents=True)
    with pytest.raises(UsageError, match="writable"):
        project_mounts((f"{name}:/gitrw",), checkout, NO_POLICY)
    if name == ".":
        return  # the checkout itself is mounted at the workspace already; again elsewhere, it is "dangerous"
    [read_only] = project_mounts((f"{name}:/gitro:ro",), checkout, NO_POLICY)
    assert read_only.read_only


@pytest.mark.parametrize("source", ["/var/lib", "/opt", "/usr/bin", "/tmp", "~/.config", "../sibling"])
def test_a_host_folder_the_policy_does_not_grant_is_refused(tmp_path: Path, source: str) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (tmp_path / "sibling").mkdir()
    (Path.home() / ".config").mkdir(exist_ok=True)
    with pytest.raises(UsageError, match=r"does not grant|does not exist"):
        project_mounts((f"{source}:/x:ro",), checkout, NO_POLICY)


def test_a_granted_folder_is_read_only_unless_the_grant_says_rw(tmp_path: Path) -> None:
    models, cache = tmp_path / "models", tmp_path / "cache"
    (models / "llama").mkdir(parents=True)
    cache.mkdir()
    policy = HostPolicy(mounts=(MountGrant(models.resolve()), MountGrant(cache.resolve(), writable=True)))
    [mount] = project_mounts((f"{models / 'llama'}:/models:ro",), tmp_path / "checkout", policy)
    assert mount.read_only
    with pytest.raises(UsageError, match="read-only"):
        project_mounts((f"{models}:/models",), tmp_path / "checkout", policy)
    assert project_mounts((f"{cache}:/cache",), tmp_path / "checkout", policy)[0].read_only is False
    (tmp_path / "checkout").mkdir()
    (tmp_path / "checkout" / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(UsageError, match="does not grant"):  # a link out of the checkout: judged by its target
        project_mounts(("escape:/e:ro",), tmp_path / "checkout", policy)
