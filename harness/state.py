"""gpuci's state in a checkout (`.gpuci`: the wheelhouse, the wheels' hash records, image records,
runs) is gpuci's own: never taken from git, never reached through a link.

A pull request can commit `.gpuci/wheelhouse` with a planted wheel and a matching
`wheel-hashes.json`, or commit `.gpuci/wheelhouse` as a link to any host folder; a clean clone of the
main branch would then build them into its image. So a checkout whose git index holds anything under
`.gpuci`, or whose `.gpuci` (or an entry of it) is a link, is refused before gpuci reads or writes any
of it. Files gpuci made there itself are never tracked: `gpuci init` puts `.gpuci/` in `.gitignore`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from harness.errors import UsageError
from harness.git import run_git

STATE_DIR = ".gpuci"


def check_state(root: Path) -> None:
    """Exit 2 where the checkout's `.gpuci` is not gpuci's own (tracked by git, or a link)."""
    state = Path(root) / STATE_DIR
    try:
        info = os.lstat(state)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise UsageError(
            f"{state} is {'a link' if stat.S_ISLNK(info.st_mode) else 'not a folder'}; gpuci keeps its state there "
            "and never follows a link to it. Remove it (the checkout may have brought it) and run again."
        )
    tracked = _tracked(Path(root))
    if tracked:
        shown = ", ".join(tracked[:3]) + (f" and {len(tracked) - 3} more" if len(tracked) > 3 else "")
        raise UsageError(
            f"the checkout's git tracks gpuci's state ({shown}): wheels, hash records and runs there would be taken "
            "from the commit, not made by gpuci. Remove them from git (`git rm -r --cached .gpuci`) and add "
            "`.gpuci/` to .gitignore."
        )
    if info is None:
        return
    for entry in os.scandir(state):
        if entry.is_symlink():
            raise UsageError(
                f"{entry.path} is a link; gpuci never follows a link in its state. Remove it and run again."
            )


def _tracked(root: Path) -> list[str]:
    done = run_git(root, "ls-files", "-z", "--", STATE_DIR, timeout=60)
    if done.returncode != 0:  # not a repository (an exported tree): nothing is tracked
        return []
    return [name for name in done.stdout.split("\0") if name]
