"""Wheels fetched into a wheelhouse: through the host's cache keyed by their hash, in parallel, each checked.

A wheel already in the wheelhouse with the same recorded hash is not fetched again; one in the host
cache (`<cache>/wheels/<sha256>`, shared by every checkout on the host) is linked or copied from there
after its hash is checked; the rest are downloaded, several at a time, checked against the sha256 the
resolution named, and only then kept. The wheelhouse's record (harness/images/wheels.py) gets each new
wheel's hash, so a build checks the same bytes again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.errors import ImageBuildError, UsageError
from harness.images.installer import cache_dir
from harness.images.uv_resolve import Wheel
from harness.images.wheels import record_fetched, recorded, sha256_of

PARALLEL = 8
TIMEOUT_S = 120
MAX_WHEEL = 2 * 2**30  # no wheel gpuci installs is larger; a bigger answer is no wheel


def fetch(wheels: Iterable[Wheel], wheelhouse: Path, root: Path | None, ca_bundle: Path | None) -> list[str]:
    """Every wheel in `wheelhouse`; the names of those downloaded (not found here or in the cache)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    known = recorded(root) if root is not None else {}
    wanted = [w for w in wheels if w.url is not None and not _there(wheelhouse, w, known)]
    cache = cache_dir("wheels")
    missing = [w for w in wanted if not _from_cache(cache, w, wheelhouse)]
    if missing:
        context = _tls(ca_bundle)
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(lambda w: _download(w, cache, context), missing))
    for wheel in missing:
        _from_cache(cache, wheel, wheelhouse)
    if root is not None and wanted:
        record_fetched(root, wheelhouse, {w.name for w in wanted})
    return [w.name for w in missing]


def _tls(ca_bundle: Path | None) -> ssl.SSLContext:
    """The host's trust store, or the CA bundle the host named (a file ssl must be able to read)."""
    try:
        return ssl.create_default_context(cafile=os.path.abspath(ca_bundle) if ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"the CA bundle {ca_bundle} cannot be read as PEM certificates ({exc}); pass a PEM file with --ca-bundle "
            "(or [tool.gpuci] ca_bundle)."
        ) from None


def _there(wheelhouse: Path, wheel: Wheel, known: dict[str, str]) -> bool:
    """In the wheelhouse already, with the bytes the resolution named."""
    path = wheelhouse / wheel.name
    if not path.is_file() or path.is_symlink():
        return False
    return known.get(wheel.name) == wheel.sha256 or sha256_of(path) == wheel.sha256


def _from_cache(cache: Path, wheel: Wheel, wheelhouse: Path) -> bool:
    """The cached copy into the wheelhouse (a hard link where it can be), if its bytes are the hash's."""
    cached = cache / wheel.sha256
    if not cached.is_file() or cached.is_symlink() or sha256_of(cached) != wheel.sha256:
        return False
    target = wheelhouse / wheel.name
    partial = wheelhouse / f".{wheel.name}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        os.link(cached, partial)
    except OSError:
        shutil.copyfile(cached, partial)
    os.replace(partial, target)
    return True


def _download(wheel: Wheel, cache: Path, context: ssl.SSLContext) -> None:
    partial = cache / f".{wheel.sha256}.{os.getpid()}.{id(wheel)}"
    assert wheel.url is not None
    try:
        answer = urllib.request.urlopen(wheel.url, timeout=TIMEOUT_S, context=context)
        with answer, open(partial, "wb") as out:
            copied = 0
            for block in iter(lambda: answer.read(1 << 20), b""):
                copied += len(block)
                if copied > MAX_WHEEL:
                    raise ImageBuildError(f"{wheel.url} sent more than {MAX_WHEEL >> 30} GiB; that is no wheel.")
                out.write(block)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ImageBuildError(
            f"could not fetch {wheel.name} from {wheel.url} ({exc}). On a host with no access to the package index, "
            "fill the wheelhouse with the wheels (or set GPUCI_WHEELHOUSE to a folder that has them)."
        ) from None
    if sha256_of(partial) != wheel.sha256:
        partial.unlink(missing_ok=True)
        raise ImageBuildError(
            f"{wheel.name} from {wheel.url} is not the file the resolution named (its sha256 differs): the index or "
            "something between it and this host changed it; nothing was kept. Run again, or check the index."
        )
    os.replace(partial, cache / wheel.sha256)
