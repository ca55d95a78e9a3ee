"""The project's own mounts ([tool.gpuci] mounts, GPUCI_MOUNTS), and which of them give the host away.

A mount of the Docker socket is root on the host; `/`, `/etc`, a home folder or a parent of the
checkout hands the workload the host's files. Such a mount runs only with an explicit opt-in
(`allow_dangerous_mounts = true`, or `:dangerous` at the end of the entry) and a warning each run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from harness.console import say
from harness.errors import UsageError
from harness.run.spec import BindMount

DANGEROUS_MARK = "dangerous"
# Folders whose mount (or anything under them) is the host's configuration or kernel.
SYSTEM_TREES = ("/etc", "/proc", "/sys", "/dev", "/boot", "/var/run", "/run", "/var/lib/docker")
# Folders whose mount itself hands over every user's or root's files.
HOME_ROOTS = ("/", "/root", "/home", "/usr", "/var")
# Credential folders in any home.
CREDENTIALS = (".ssh", ".docker", ".gnupg", ".aws", ".kube", ".config/gcloud")


def project_mounts(entries: tuple[str, ...], root: Path, allow_dangerous: bool) -> list[BindMount]:
    """SOURCE:TARGET[:ro|rw][:dangerous] entries as binds; relative sources are the checkout's."""
    mounts = []
    for entry in entries:
        source, target, *mode = entry.split(":")
        marked = DANGEROUS_MARK in mode
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = Path(root) / path
        if not os.path.lexists(path):
            raise UsageError(
                f"mount {entry!r} ([tool.gpuci] mounts or GPUCI_MOUNTS): {path} does not exist on this host; "
                "create it or remove the entry."
            )
        resolved = path.resolve()
        why = dangerous_because(resolved, Path(root).resolve())
        if why and not (allow_dangerous or marked):
            raise UsageError(
                f"mount {entry!r} ([tool.gpuci] mounts or GPUCI_MOUNTS) {why}: the step's code could take over "
                "this host through it. If that is really meant, end the entry with ':dangerous' (or set "
                "[tool.gpuci] allow_dangerous_mounts = true); otherwise mount a narrower folder."
            )
        if why:
            say(f"warning: mount {entry!r} {why}; allowed by its opt-in, so this step can reach the host")
        mounts.append(BindMount(str(resolved), target, read_only="ro" in mode))
    return mounts


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
