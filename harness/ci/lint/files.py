"""The files a lint reads: the checkout as it is, or a commit of it read from git without a checkout.

`lint --since REV` lints the tree at REV too. Checking REV out writes every file of a large project
(seconds on a slow disk, for a tree that differs from the checkout in a handful of files), so a
commit is read instead: its file list from git, each file's text from the checkout where the change
left it alone and from git's objects where it did not. Only the files the declarations and settings
are read from (YAML, pyproject.toml, pytest's ini files) are written, to a scratch folder that stands
for the commit's root.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Protocol

from harness.ci.lint.findings import ALLOW_FILE
from harness.ci.lint.stamps import stamp
from harness.errors import UsageError
from harness.git import checkout_files, git_command

# What is read from a folder rather than through `Files.read`: [tool.gpuci], pytest's settings and the
# allow-list first; then the pipeline files the declarations name. Written out at a commit.
SETTINGS = ("pyproject.toml", "pytest.ini", "tox.ini", "setup.cfg", ALLOW_FILE)
PIPELINE = re.compile(r"\.ya?ml$")


# A test or script the lint reads: the largest real ones are a few hundred KiB.
MAX_SOURCE_BYTES = 4 * 2**20


def read_checkout_file(root: Path, path: str) -> str:
    """A file's text as the lint reads it; empty where it is not a regular file of the checkout of at
    most MAX_SOURCE_BYTES (a test file linked to /dev/zero, or out of the checkout, or huge)."""
    from harness.untrusted import read_capped

    try:
        return read_capped(root / path, MAX_SOURCE_BYTES, root).decode(errors="replace")
    except (OSError, ValueError):
        return ""


class CheckoutReader:
    """`read_checkout_file` for the thousands of files one lint reads: each folder's real place is
    looked up once (not every component of every file's path), and the file itself is opened
    without following a link. A file that is a link goes the whole careful way (one to a file of
    the checkout is read, one out of it is not)."""

    _FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root = os.path.realpath(root)
        self._folders: dict[str, str | None] = {}  # folder -> its real place, None when out of the checkout

    def read(self, path: str) -> str:
        folder, _, name = path.rpartition("/")
        real = self._folders.get(folder, "")
        if real == "":
            real = os.path.realpath(os.path.join(self.root, folder))
            inside = real == self._real_root or real.startswith(self._real_root.rstrip("/") + "/")
            real = self._folders[folder] = real if inside else None
        if real is None or not name:
            return ""
        try:
            descriptor = os.open(os.path.join(real, name), self._FLAGS)
        except OSError as exc:
            return read_checkout_file(self.root, path) if exc.errno == errno.ELOOP else ""
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SOURCE_BYTES:
                return ""
            chunks, size = [], 0
            while size <= MAX_SOURCE_BYTES:  # up to one byte past the limit: a file that grew is refused
                chunk = os.read(descriptor, MAX_SOURCE_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return "" if size > MAX_SOURCE_BYTES else b"".join(chunks).decode(errors="replace")
        except OSError:
            return ""
        finally:
            os.close(descriptor)


class Files(Protocol):
    def names(self) -> list[str] | None:
        """The tree's files as relative POSIX paths; None where the folder must be walked."""

    def read(self, path: str) -> str:
        """A file's text; empty where it cannot be read."""

    def place_declared(self, folder: Path, declarations: tuple[str, ...]) -> None:
        """Make the declared pipeline files readable under `folder` (where they are not already)."""

    def fingerprint(self, path: str) -> str | None:
        """What changes when the file's text may have (size, times, inode); None: read it to know."""

    def history(self) -> tuple[Path, str] | None:
        """The git folder and revision whose history led to these files; None for an exported tree."""


class CheckoutFiles:
    """The checkout on disk: git's list of its files (tracked and untracked, ignored ones not)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._names: list[str] | None = None
        self._listed = False
        self._reader = CheckoutReader(root)

    def names(self) -> list[str] | None:
        if not self._listed:
            self._names, self._listed = checkout_files(self.root), True
        return self._names

    def history(self) -> tuple[Path, str] | None:
        return (self.root, "HEAD") if self.names() is not None else None

    def fingerprint(self, path: str) -> str | None:
        return stamp(os.path.join(self.root, path))

    def read(self, path: str) -> str:
        return self._reader.read(path)

    def place_declared(self, folder: Path, declarations: tuple[str, ...]) -> None:
        return None  # they are there


class CommitFiles:
    """The checkout's folder at `commit`: its files as git lists them there; a file's text from the
    checkout where it is the same at the commit, else from the commit's objects."""

    def __init__(self, root: Path, commit: str) -> None:
        self.root, self.commit = root, commit
        listed = _git_bytes(root, "ls-tree", "-r", "-z", "--name-only", commit, "--", ".")
        # The tree is the pull request's: a crafted one may name `../x`, which must not reach the scratch folder.
        names = listed.decode("utf-8", "surrogateescape").split("\0")
        self._names = sorted(n for n in names if n and not n.startswith("/") and ".." not in n.split("/"))
        # Changed since the commit, in the index or the working tree: read from the commit's objects.
        diff = _git_bytes(root, "diff", "--no-renames", "--name-only", "-z", "--relative", commit, "--", ".")
        changed = {n for n in diff.decode("utf-8", "surrogateescape").split("\0") if n}
        at_commit = set(self._names)
        wanted = sorted((changed & at_commit) | {n for n in SETTINGS if n in at_commit})
        wanted = [n for n in wanted if "\n" not in n]  # cat-file's requests are lines
        self._texts = _blobs(root, commit, wanted)
        self._changed = changed
        self._reader = CheckoutReader(root)

    def names(self) -> list[str]:
        return self._names

    def history(self) -> tuple[Path, str] | None:
        return (self.root, self.commit)

    def fingerprint(self, path: str) -> str | None:
        if path in self._texts or path in self._changed:
            return None  # the commit's text, from git's objects
        return stamp(os.path.join(self.root, path))

    def read(self, path: str) -> str:
        if path in self._texts:
            return self._texts[path]
        if path in self._changed:
            return ""  # changed since the commit and not there: absent at it
        return self._reader.read(path)

    def write_settings(self, folder: Path) -> None:
        """The commit's settings files into `folder`, which stands for its root."""
        self._write(folder, [n for n in SETTINGS if n in self._texts])

    def place_declared(self, folder: Path, declarations: tuple[str, ...]) -> None:
        """The commit's pipeline files any entry may name (a file, a folder's, a glob's), into `folder`."""
        from harness.declare.sources import Declaration

        patterns = [Declaration.parse(d, "declarations").pattern.strip("/") for d in declarations]
        named = [
            n
            for n in self._names
            if PIPELINE.search(n) and any(n == p or n.startswith(p + "/") or fnmatch.fnmatch(n, p) for p in patterns)
        ]
        for name in named:
            if name not in self._texts:
                self._texts[name] = self.read(name)  # unchanged since the commit: the checkout's copy
        self._write(folder, named)

    def _write(self, folder: Path, names: list[str]) -> None:
        for name in names:
            target = folder / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(self._texts.get(name, ""), errors="surrogateescape")


def _git_bytes(root: Path, *args: str) -> bytes:
    done = subprocess.run(git_command(root, *args), capture_output=True, timeout=120)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise UsageError(f"git {' '.join(args[:2])} failed in {root}: {message}; is it a git checkout?")
    return done.stdout


def _blobs(root: Path, commit: str, names: list[str]) -> dict[str, str]:
    """Each named file's text at `commit`, in one `git cat-file --batch` (paths relative to `root`)."""
    if not names:
        return {}
    request = "".join(f"{commit}:./{name}\n" for name in names).encode("utf-8", "surrogateescape")
    done = subprocess.run(git_command(root, "cat-file", "--batch"), input=request, capture_output=True, timeout=300)
    out, texts, at = done.stdout, {}, 0
    for name in names:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        at = end + 1
        if header[-1] == b"missing" or len(header) < 3:
            continue
        size = int(header[2])
        if header[1] == b"blob":
            texts[name] = out[at : at + size].decode("utf-8", "replace")
        at += size + 1
    return texts
