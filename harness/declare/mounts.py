"""Mounts of host folders: the project's ([tool.gpuci] mounts) within the host policy, and the host's
own (GPUCI_MOUNTS), and which of them give the host away: resolved with the run's request
(harness.declare.request), before anything runs.

The project names folders of the agent's host; the host decides (harness.declare.policy). A
relative source is in the checkout, which is the project's already: allowed, but never `.git`,
`.gpuci` or `.nox` writable (the host runs git, and trusts gpuci's and nox's state). Anything else
must lie in a folder the policy grants, and is writable only where the grant says `:rw`. A link is
judged by its target. A mount of the Docker socket is root on the host; `/`, `/etc`, a home folder
or a parent of the checkout hands the workload the host's files: such a mount runs only where the
host opts in (the policy's `allow_dangerous_mounts`, or `:dangerous` on a GPUCI_MOUNTS entry), with a
warning each run.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from harness.console import say
from harness.declare.policy import GUARDED, HostPolicy
from harness.errors import UsageError

DANGEROUS_MARK = "dangerous"


@dataclass(frozen=True)
class BindMount:
    """A host folder bound into a run's container."""

    source: str
    target: str
    read_only: bool = False


# Folders whose mount (or anything under them) is the host's configuration or kernel.
SYSTEM_TREES = ("/etc", "/proc", "/sys", "/dev", "/boot", "/var/run", "/run", "/var/lib/docker")
# Folders whose mount itself hands over every user's or root's files.
HOME_ROOTS = ("/", "/root", "/home", "/usr", "/var")
# Credential folders in any home.
CREDENTIALS = (".ssh", ".docker", ".gnupg", ".aws", ".kube", ".config/gcloud")


def project_mounts(
    entries: tuple[str, ...], root: Path, policy: HostPolicy, host_entries: tuple[str, ...] = ()
) -> list[BindMount]:
    """SOURCE:TARGET[:ro|rw][:dangerous] entries as binds: the project's within the policy, then the host's."""
    checkout = Path(root).resolve()
    mounts = []
    for entry, by_host in [*((e, False) for e in entries), *((e, True) for e in host_entries)]:
        source, target, *mode = entry.split(":")
        said = "GPUCI_MOUNTS" if by_host else "[tool.gpuci] mounts"
        path = Path(source).expanduser() if by_host else Path(source)
        if not path.is_absolute():
            path = Path(root) / path
        if not os.path.lexists(path):
            raise UsageError(f"mount {entry!r} ({said}): {path} does not exist on this host; create it or remove it.")
        resolved = path.resolve()
        writable = "ro" not in mode
        if not by_host:
            _within_policy(entry, resolved, writable, checkout, policy)
        why = dangerous_because(resolved, checkout)
        opted_in = policy.allow_dangerous_mounts or (by_host and DANGEROUS_MARK in mode)
        if why and not opted_in:
            raise UsageError(
                f"mount {entry!r} ({said}) {why}: the step's code could take over this host through it. If that "
                "is really meant, the host says so (':dangerous' at the end of a GPUCI_MOUNTS entry, or the host "
                "policy's allow_dangerous_mounts); otherwise mount a narrower folder."
            )
        if why:
            say(f"warning: mount {entry!r} {why}; allowed by the host's opt-in, so this step can reach the host")
        mounts.append(BindMount(str(resolved), target, read_only=not writable))
    return mounts


def still_as_resolved(mounts: tuple[BindMount, ...]) -> tuple[BindMount, ...]:
    """The mounts, each checked to lead where it led when the request resolved it. A step's checkout is
    writable, so a step can replace a folder on a later step's mount path with a link (the request is
    resolved once, before the first step), and Docker follows links as it mounts: once that gave the
    next step the host's `/` read-write. Checked as each container is planned."""
    for mount in mounts:
        now = os.path.realpath(mount.source)
        if now != mount.source or not os.path.lexists(mount.source):
            raise UsageError(
                f"mount {mount.source} -> {mount.target}: {mount.source} no longer leads where it did when the run "
                f"began (now {now if os.path.lexists(now) else 'nothing'}): a step before this one replaced a folder "
                "on its way with a link, or removed it. Nothing was mounted; restore the folder, and mount one the "
                "steps do not replace."
            )
    return mounts


def _within_policy(entry: str, source: Path, writable: bool, checkout: Path, policy: HostPolicy) -> None:
    """A project's mount: the checkout (never its guarded folders writable), or a folder the policy grants."""
    if source == checkout or source.is_relative_to(checkout):
        guarded = [name for name in GUARDED if _overlaps(source, checkout / name)]
        if writable and guarded:
            raise UsageError(
                f"[tool.gpuci] mounts entry {entry!r} would make the checkout's {guarded[0]} writable in the "
                f"container, and the host trusts it ({guarded[0]} holds what host commands run or read); "
                "end the entry with ':ro' or mount a narrower folder."
            )
        return
    grant = policy.grant_for(source)
    if grant is None:
        raise UsageError(
            f"[tool.gpuci] mounts entry {entry!r} names the host folder {source}, which {policy.rule('mounts')} "
            "does not grant; the project may mount its own checkout's folders, and host folders only where the "
            "agent's owner lists them in the policy."
        )
    if writable and not grant.writable:
        raise UsageError(
            f"[tool.gpuci] mounts entry {entry!r} asks for {source} writable, and {policy.rule('mounts')} grants "
            f"{grant.folder} read-only; end the entry with ':ro'."
        )


def _overlaps(source: Path, guarded: Path) -> bool:
    return source == guarded or source.is_relative_to(guarded) or guarded.is_relative_to(source)


def dangerous_because(source: Path, checkout: Path) -> str | None:
    """Why binding `source` (resolved) gives the host away, or None."""
    text = str(source)
    try:
        if stat.S_ISSOCK(os.stat(source).st_mode):
            return f"is a socket ({text}; the Docker socket is root on the host)"
    except OSError:
        pass
    if text in HOME_ROOTS:
        return f"is {text}, which holds the host's or every user's files"
    for tree in SYSTEM_TREES:
        if text == tree or text.startswith(tree + "/"):
            return f"is under {tree}, the host's own configuration or devices"
    if checkout == source or checkout.is_relative_to(source):
        return f"contains the checkout ({checkout}), gpuci's state and the agent's other files"
    home = Path(os.path.expanduser("~")).resolve()
    homes = {home, *(p for p in Path("/home").glob("*") if p.is_dir())}
    if source in homes:
        return f"is a home folder ({text})"
    for base in homes:
        for name in CREDENTIALS:
            folder = base / name
            if source == folder or source.is_relative_to(folder):
                return f"holds credentials ({folder})"
    return None
