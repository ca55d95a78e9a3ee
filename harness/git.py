"""Every `git` gpuci runs on the host: hooks and fsmonitor off, so a checkout cannot run code here.

A pull request's workload could once write `.git/config` or `.git/hooks`; `core.fsmonitor` then
ran a command at gpuci's next `git status`, and a hook at repro's `git worktree add`. `.git` is
read-only in containers now; these overrides are the second wall, for checkouts written by
anything else.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Command-line -c wins over every config file, the repository's own included.
SAFE_CONFIG = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.sshCommand=ssh",
    "-c",
    "protocol.ext.allow=never",
    # A submodule's own repository is not read-only in a container (only the checkout's .git is): a
    # step can plant one, with filters in its config, that `git status` would run. Never look inside.
    "-c",
    "diff.ignoreSubmodules=all",
    "-c",
    "submodule.recurse=false",
)


def git_command(root: Path | str, *args: str) -> list[str]:
    return ["git", *SAFE_CONFIG, "-C", str(root), *args]


def run_git(root: Path | str, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """`git -C root ARGS` with gpuci's safe settings; output captured as text."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(git_command(root, *args), capture_output=True, text=True, timeout=timeout, env=env)


def checkout_files(root: Path) -> list[str] | None:
    """The checkout's files as git sees them (tracked, and untracked ones not ignored), relative to
    `root`; None where `root` is not in a repository or git lists nothing (an exported tree)."""
    try:
        done = subprocess.run(
            git_command(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"),
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    prefix = run_git(root, "rev-parse", "--show-prefix").stdout.strip()
    names = [n for n in done.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    if not names:
        return None  # a folder the enclosing repository ignores (an exported tree): walk it instead
    return [n[len(prefix) :] if prefix and n.startswith(prefix) else n for n in names]


def ignored_files(root: Path, limit: int = 10_000) -> list[str]:
    """Files in the checkout that git ignores (an ignored folder counts as one entry and is left out),
    relative to `root`, at most `limit`; [] where `root` is not in a repository."""
    try:
        done = subprocess.run(
            git_command(root, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"),
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    names = done.stdout.decode("utf-8", "surrogateescape").split("\0")
    return [n for n in names[:limit] if n and not n.endswith("/")]


def refused(root: Path | str, stderr: str) -> str | None:
    """What to tell the user where git refused the checkout as another user's ("dubious ownership":
    a CI agent's or `sudo`'s checkout); None for any other failure. gpuci never overrides it
    (`safe.directory` would let git read that user's repository configuration)."""
    if "dubious ownership" not in stderr:
        return None
    return (
        f"git refuses {root}: it belongs to another user ('dubious ownership'), so this run's report has no "
        "commit (`gpuci repro` cannot check it out) and an image built now copies every file of the folder, "
        "git-ignored ones included. Run as the checkout's owner, or, if you trust it, "
        f"`git config --global --add safe.directory {root}`."
    )
