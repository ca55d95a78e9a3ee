"""What the lint learns from one file's text, kept between runs and keyed by that text's hash.

Parsing hundreds of test modules and scripts is most of a lint's time, and almost none of them
change between two runs (nor between a branch and its merge base, which `lint --since` lints
both). Each analysis here is a pure function of one file's text, so its result is stored under
(analysis, hash of the text); the store's name carries a hash of the lint's own code, so a changed
rule never reads an old rule's answer. A changed file is a new key: nothing is missed for a cache.

The store lives in the user's cache folder (`$GPUCI_CACHE_DIR`, else `$XDG_CACHE_HOME/gpuci`,
else `~/.cache/gpuci`), never in the checkout: a pull request cannot plant answers in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
CAPACITY = 200_000  # entries kept; those this run did not use go first


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Analysis(Generic[T]):
    """One file's text -> a result, with how the result is written as JSON and read back."""

    name: str
    compute: Callable[[str], T]
    encode: Callable[[T], Any] = _same
    decode: Callable[[Any], T] = _same


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def cache_folder() -> Path:
    if os.environ.get("GPUCI_CACHE_DIR"):
        return Path(os.environ["GPUCI_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gpuci"


def code_version() -> str:
    """A hash of the lint's own source: a store written by other rules is another store."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class AnalysisCache:
    """Results by (analysis, text hash); `store` None keeps them for this process only."""

    def __init__(self, store: Path | None) -> None:
        self.store = store
        self._old: dict[str, Any] = {}
        self._used: dict[str, Any] = {}
        self.hits = self.misses = 0
        self._learnt = False  # a file's fingerprint recorded: worth writing even without a miss
        if store is not None:
            with contextlib.suppress(OSError, ValueError):
                loaded = json.loads(store.read_text())
                if isinstance(loaded, dict):
                    self._old = loaded

    @classmethod
    def open(cls, enabled: bool = True) -> AnalysisCache:
        return cls(cache_folder() / f"lint-{code_version()}.json" if enabled else None)

    def get(self, analysis: Analysis[T], text: str) -> T:
        return self._get(analysis, _digest(text), lambda: text)

    def for_path(self, analysis: Analysis[T], path: str, fingerprint: str | None, read: Callable[[], str]) -> T:
        """`get` for a file, read only where needed: a file whose fingerprint (its size and times) is
        the one a run recorded with its text's hash is not read again when its analysis is known."""
        memo = "stat:" + path
        known = self._used.get(memo) or self._old.get(memo)
        if fingerprint is not None and isinstance(known, list) and len(known) == 2 and known[0] == fingerprint:
            self._used[memo] = known
            return self._get(analysis, str(known[1]), read)
        text = read()
        digest = _digest(text)
        if fingerprint is not None:
            self._used[memo] = [fingerprint, digest]
            self._learnt = True
        return self._get(analysis, digest, lambda: text)

    def recall(self, key: str) -> Any:
        """A value `remember` stored under `key` (this run's or the store's), or None."""
        if key in self._used:
            return self._used[key]
        if key in self._old:
            self._used[key] = self._old[key]
            return self._old[key]
        return None

    def remember(self, key: str, value: Any) -> None:
        self._used[key] = value
        self._learnt = True

    def _get(self, analysis: Analysis[T], digest: str, read: Callable[[], str]) -> T:
        key = analysis.name + ":" + digest
        if key in self._used:
            self.hits += 1
            return analysis.decode(self._used[key])
        if key in self._old:
            with contextlib.suppress(Exception):  # an entry that no longer decodes is computed again
                value = analysis.decode(self._old[key])
                self._used[key] = self._old[key]
                self.hits += 1
                return value
        self.misses += 1
        value = analysis.compute(read())
        self._used[key] = analysis.encode(value)
        return value

    def save(self) -> None:
        """Write what this run used (and what room is left of the rest); stores of other code go.
        A cache that cannot be written is no error: the next run computes again."""
        if self.store is None or (self.misses == 0 and not self._learnt):
            return  # nothing new learnt
        kept = dict(self._used)
        for key, value in self._old.items():
            if len(kept) >= CAPACITY:
                break
            kept.setdefault(key, value)
        with contextlib.suppress(OSError):
            self.store.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.store.parent, prefix=".lint-", suffix=".tmp")
            try:
                with os.fdopen(descriptor, "w") as out:
                    out.write(json.dumps(kept, separators=(",", ":")))  # dumps: the C encoder, dump is not
                os.replace(temporary, self.store)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            for other in self.store.parent.glob("lint-*.json"):
                if other != self.store:
                    with contextlib.suppress(OSError):
                        other.unlink()
