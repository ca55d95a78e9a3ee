"""The project's requirements resolved by uv on the host, for the image's own Python, and their wheels fetched.

`uv pip compile` resolves for the image's interpreter and platform (`--python-version`,
`--python-platform`, wheels only) and writes a PEP 751 lock: each package's compatible wheels with
their URLs and sha256. gpuci picks the wheel the image's Python prefers and fetches it
(harness/images/fetch.py: in parallel, hash-checked, through the host cache keyed by hash). Offline
first, from the wheelhouse alone, as pip was asked before. uv runs as a host subprocess isolated from
the checkout: `--no-config` (a pull request's uv.toml or [tool.uv] never picks the index), from `/`.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from harness.host_python import NEUTRAL_CWD, host_env
from harness.images.installer import cache_dir
from harness.untrusted import parse_toml

# uv knows manylinux platforms from glibc 2.17 to 2.40 by name.
_GLIBC_RANGE = (17, 40)
NETWORK_WORDS = ("Failed to fetch", "error sending request", "dns error", "Connection refused", "timed out",
                 "Could not connect", "tcp connect error", "connection reset", "No such host")  # fmt: skip
# Offline (the wheelhouse first) uv says "provided package locations"; online, "package registry".
MISSING = re.compile(r"Because (?:there is no version of |only )?(?!you )([A-Za-z0-9][A-Za-z0-9._-]*)[^\n]*? "
                      r"(?:was not found in the (?:package registry|provided package locations|cache)"
                      r"|has no (?:usable )?wheels|no wheels)")  # fmt: skip


@dataclass(frozen=True)
class Wheel:
    name: str  # the wheel's file name
    url: str | None  # where to fetch it; None: it is in the wheelhouse
    sha256: str


@dataclass(frozen=True)
class Request:
    """What to resolve, for which Python: the image's version and platform, and where wheels are."""

    requirements: Path
    version: str  # "3.11"
    machine: str  # "x86_64"
    glibc: str  # "2.36"
    wheelhouse: Path
    constraints: Path | None = None
    ca_bundle: Path | None = None
    no_deps: bool = False  # exact pins, taken as they are (gpuci's own)


@dataclass(frozen=True)
class Compiled:
    wheels: tuple[Wheel, ...] | None  # None: uv found no resolution
    output: str  # uv's words, for the error
    network: bool  # the index could not be reached


def uv_platform(machine: str, glibc: str | None) -> str | None:
    """uv's name of the image's platform; None where uv has none (musl, an old glibc): pip resolves."""
    if not glibc:
        return None
    major, minor = (int(x) for x in glibc.split(".")[:2])
    if major != 2 or minor < _GLIBC_RANGE[0]:
        return None
    return f"{machine}-manylinux_2_{min(minor, _GLIBC_RANGE[1])}"


def compile_wheels(uv: str, request: Request, platform: str, offline: bool) -> Compiled:
    """Resolve the request's requirements (with its constraints) for the image's Python on `platform`
    (uv's name of it); the wheels chosen."""
    requirements, wheelhouse, constraints = request.requirements, request.wheelhouse, request.constraints
    version, machine, glibc = request.version, request.machine, request.glibc
    with tempfile.TemporaryDirectory(prefix="gpuci-uv-") as scratch:
        lock = Path(scratch) / "pylock.toml"
        command = [uv, "pip", "compile", "--no-config", "--quiet", "--format", "pylock.toml", "-o", str(lock),
                   "--python-version", version, "--python-platform", platform, "--only-binary", ":all:",
                   "--find-links", str(wheelhouse), str(requirements)]  # fmt: skip
        if constraints:
            command += ["-c", str(constraints)]
        if request.no_deps:
            command.append("--no-deps")
        command += ["--offline", "--no-index"] if offline else _index_args()
        done = subprocess.run(command, cwd=NEUTRAL_CWD, env=_env(request.ca_bundle), capture_output=True, text=True)
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0 or not lock.is_file():
            return Compiled(None, output, any(word in output for word in NETWORK_WORDS))
        data = parse_toml(lock.read_text(), lock)
    ranks = _ranks(version, machine, glibc)
    chosen = []
    for package in data.get("packages", []):
        candidates = [_wheel(entry, wheelhouse) for entry in package.get("wheels", [])]
        ranked = [(min((ranks.get(t, len(ranks)) for t in tags), default=len(ranks)), wheel)
                  for wheel, tags in candidates if wheel is not None]  # fmt: skip
        if not ranked:
            return Compiled(None, f"{package.get('name')} has no wheels for the image's Python", False)
        chosen.append(min(ranked, key=lambda pair: pair[0])[1])
    return Compiled(tuple(chosen), output, False)


def _wheel(entry: dict, wheelhouse: Path) -> tuple[Wheel | None, frozenset[Tag]]:  # type: ignore[type-arg]
    url, path = entry.get("url"), entry.get("path")
    sha256 = (entry.get("hashes") or {}).get("sha256")
    name = os.path.basename(str(url or path or ""))
    if not name.endswith(".whl") or not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
        return None, frozenset()
    tags = frozenset(parse_wheel_filename(name)[3])
    if path is not None or str(url).startswith("file:"):
        local = Path(wheelhouse) / name
        return (Wheel(name, None, sha256) if local.is_file() else None), tags
    return Wheel(name, str(url), sha256), tags


def _ranks(version: str, machine: str, glibc: str) -> dict[Tag, int]:
    """Every tag the image's Python takes, best first (as pip orders them there)."""
    minor = int(glibc.split(".")[1])
    platforms = [f"manylinux_2_{m}_{machine}" for m in range(minor, 4, -1)]
    platforms += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}", "linux_" + machine]
    python = tuple(int(x) for x in version.split("."))
    ordered = [*cpython_tags(python, platforms=platforms), *compatible_tags(python, platforms=platforms)]
    return {tag: number for number, tag in reversed(list(enumerate(ordered)))}


def _index_args() -> list[str]:
    """The host's pip index settings, where set in its environment (uv reads no pip configuration)."""
    args = []
    if os.environ.get("PIP_INDEX_URL"):
        args += ["--default-index", os.environ["PIP_INDEX_URL"]]
    for extra in os.environ.get("PIP_EXTRA_INDEX_URL", "").split():
        args += ["--index", extra]
    return args


def _env(ca_bundle: Path | None) -> dict[str, str]:
    env = {**host_env(), "UV_CACHE_DIR": str(cache_dir("uv-cache")), "UV_PYTHON_DOWNLOADS": "never"}
    if ca_bundle:
        env["SSL_CERT_FILE"] = os.path.abspath(ca_bundle)
    elif "SSL_CERT_FILE" not in env:
        env["UV_NATIVE_TLS"] = "1"  # the host's own trust store, as pip's certifi-or-system did
    return env
