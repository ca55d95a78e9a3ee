"""The last lint's findings, replayed while nothing it read has changed: a warm lint's common case.

A run is stored under a key made of gpuci's own code (its modules' sizes and times), the command's
settings, the environment's GPUCI_ variables and the checkout's root. With the findings go what they
were drawn from: a hash of the checkout's file list, its HEAD commit, and the fingerprint (size,
times, inode: `files.fingerprint`) of every file the run read or analysed, of the project's settings
files, and of each folder its declarations were found in. A later run with the same key replays the
findings, and the warnings the run printed, only when the list, the commit and every fingerprint
agree; any difference, and the lint runs whole (each unchanged file still answered by the analysis
cache). Parsing nothing, it needs none of the lint's modules: a warm run is git's file list, a stat
per input and a JSON file.

Stored in the user's cache folder (`cache.cache_folder()`), never in the checkout: a pull request
cannot plant findings in it. Only a checkout git lists files for is memoised (an exported tree has no
cheap list to compare).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.ci.lint.cache import cache_folder
from harness.ci.lint.stamps import stamp

if TYPE_CHECKING:
    from harness.ci.lint.files import Files
    from harness.ci.lint.findings import Finding

KEPT = 16  # memos of other roots and settings kept; the oldest go first
SETTINGS_FILES = ("pyproject.toml", "pytest.ini", "tox.ini", "setup.cfg", ".buildkite/gpuci-lint-allow.yaml")
HARNESS = Path(__file__).resolve().parents[2]


def _code_stamp() -> list[tuple[str, str | None]]:
    """gpuci's own modules as stat sees them: a changed rule anywhere is another key."""
    return sorted((str(p.relative_to(HARNESS)), stamp(str(p))) for p in HARNESS.rglob("*.py"))


def run_key(root: Path, settings: dict[str, Any]) -> str:
    environment = {k: v for k, v in os.environ.items() if k.startswith("GPUCI_") and k != "GPUCI_CACHE_DIR"}
    made = json.dumps(
        [str(root), sys.version, _code_stamp(), sorted(settings.items()), sorted(environment.items())], default=str
    )
    return hashlib.sha256(made.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class RecordingFiles:
    """A files source that notes every path the lint reads or fingerprints: the run's inputs."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.paths: set[str] = set()

    def names(self) -> list[str] | None:
        return self.files.names()

    def read(self, path: str) -> str:
        self.paths.add(path)
        return self.files.read(path)

    def fingerprint(self, path: str) -> str | None:
        self.paths.add(path)
        return self.files.fingerprint(path)

    def place_declared(self, folder: Path, declarations: tuple[str, ...]) -> None:
        self.files.place_declared(folder, declarations)

    def history(self) -> tuple[Path, str] | None:
        return self.files.history()


class RunMemo:
    """The memo of one (root, settings) key: `replay` what it holds while valid, `keep` a new run."""

    def __init__(self, root: Path, key: str, names: list[str], head: str) -> None:
        self.root, self.names, self.head = root, names, head
        self.store = cache_folder() / "lint-runs" / f"{key}.json"
        self._names_hash = hashlib.sha256("\0".join(names).encode("utf-8", "surrogateescape")).hexdigest()

    def replay(self) -> tuple[list[Finding], int, list[str]] | None:
        """(findings, allowed, warnings printed) of the stored run, or None where anything differs."""
        try:
            held = json.loads(self.store.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(held, dict) or held.get("names") != self._names_hash or held.get("head") != self.head:
            return None
        inputs = held.get("inputs")
        if not isinstance(inputs, dict):
            return None
        root = str(self.root) + "/"  # the inputs are the checkout's relative paths
        if any(stamp(root + path) != known for path, known in inputs.items()):
            return None
        from harness.ci.lint.findings import Finding

        try:
            findings = [Finding(**f) for f in held["findings"]]
            return findings, int(held["allowed"]), [str(line) for line in held["said"]]
        except (KeyError, TypeError, ValueError):
            return None

    def keep(
        self,
        findings: list[Finding],
        allowed: int,
        said: list[str],
        read: set[str],
        areas: list[Path],
        declared: list[str],
    ) -> None:
        """Store a whole run with what it was drawn from. One that cannot be written is no error."""
        inputs = set(read) | set(SETTINGS_FILES)
        for path in areas:  # each declaration file, and the folders a new one would appear in
            with contextlib.suppress(ValueError):
                relative = Path(path).resolve().relative_to(self.root.resolve())
                inputs.add(str(relative))
                inputs.update(str(parent) for parent in relative.parents if str(parent) != ".")
        for pattern in declared:
            folder = self.root / pattern
            if folder.is_dir() and not folder.is_symlink():
                inputs.add(pattern)
                for directory, subdirs, _ in os.walk(folder):
                    inputs.update(os.path.relpath(os.path.join(directory, d), self.root) for d in subdirs)
        root = str(self.root)
        held = {
            "names": self._names_hash,
            "head": self.head,
            "inputs": {path: stamp(os.path.join(root, path)) for path in sorted(inputs)},
            "findings": [asdict(f) for f in findings],
            "allowed": allowed,
            "said": said,
        }
        _write(self.store, held)


class CommitMemo:
    """A commit's findings (the base of `lint --since`): they depend on nothing but the commit, gpuci's
    code and the settings, all in the key, so they are replayed without a check."""

    def __init__(self, key: str) -> None:
        self.store = cache_folder() / "lint-runs" / f"{key}.json"

    def replay(self) -> list[Finding] | None:
        try:
            held = json.loads(self.store.read_text())
            from harness.ci.lint.findings import Finding

            return [Finding(**f) for f in held["commit_findings"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def keep(self, findings: list[Finding]) -> None:
        _write(self.store, {"commit_findings": [asdict(f) for f in findings]})


def _write(store: Path, held: dict[str, Any]) -> None:
    """`held` as `store`, whole or not at all; the oldest memos beyond KEPT go. No error if it cannot."""
    with contextlib.suppress(OSError):
        store.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=store.parent, prefix=".run-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w") as out:
                out.write(json.dumps(held, separators=(",", ":")))  # dumps: the C encoder, dump is not
            os.replace(temporary, store)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        others = sorted(store.parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in others[KEPT:]:
            with contextlib.suppress(OSError):
                old.unlink()
