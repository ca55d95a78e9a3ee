"""The project's requirements resolved, with their dependencies, for the image's own interpreter.

The base image is asked which Python it runs and on which C library (never assumed: a Debian
base runs 3.11, a vendor's image something else), and uv resolves the project's requirement
files — unpinned or partial as people write them — for exactly that interpreter and platform,
wheels only, and their wheels are fetched into the wheelhouse (harness/images/uv_resolve.py,
fetch.py). pip does it, as before, where uv cannot: no uv binary for this host (harness/images/
installer.py), or an image platform uv has no name for (musl, a glibc before 2.17).
The resolved pins (`name==version`, one a line) are what the
image installs, so the install is the resolution and nothing else in the wheelhouse. A
requirement that exists nowhere for that Python is exit 2 naming the user's file and the
requirement; only a failure to reach the index is 75. pip's progress is shown as it goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import parse_wheel_filename

from harness.console import say
from harness.errors import GpuciError, ImageBuildError, UsageError
from harness.images.fetch import fetch
from harness.images.installer import cache_dir, pip_command, usable_uv
from harness.images.missing import advice
from harness.images.uv_resolve import MISSING as UV_MISSING
from harness.images.uv_resolve import NETWORK_WORDS as UV_NETWORK_WORDS
from harness.images.uv_resolve import Request, compile_wheels, uv_platform

# What pip says when the index cannot be reached (a retry can fix it) rather than a requirement
# that no release satisfies (one cannot).
NETWORK_WORDS = ("Could not fetch URL", "Failed to establish a new connection", "Temporary failure in name",
                 "Max retries exceeded", "Read timed out", "SSLError", "ProxyError")  # fmt: skip
_MISSING = re.compile(r"No matching distribution found for (\S+)")
_CONFLICT = re.compile(r"Cannot install [^\n]*? because these package versions have conflicting dependencies")
_SAVED = re.compile(r"(?:Saved|File was already downloaded) (\S+\.whl)")
_WHEEL = re.compile(r"^([^-]+)-([^-]+)-")


@dataclass(frozen=True)
class PythonTarget:
    """The interpreter in an image: what wheels it can take."""

    version: str  # "3.11"
    machine: str  # "x86_64"
    glibc: str | None  # "2.36"; None on musl or unknown

    def pip_args(self) -> list[str]:
        args = ["--python-version", self.version, "--implementation", "cp", "--only-binary=:all:"]
        if self.glibc:
            major, minor = (int(x) for x in self.glibc.split(".")[:2])
            # Every manylinux tag up to the image's C library, as pip would accept there.
            for m in range(minor, 4, -1):
                args += ["--platform", f"manylinux_{major}_{m}_{self.machine}"]
            args += ["--platform", f"manylinux2014_{self.machine}", "--platform", f"manylinux2010_{self.machine}"]
            args += ["--platform", f"manylinux1_{self.machine}", "--platform", "any"]
        return args


PROBE = (
    "import json, os, platform, sys; "
    "libc = os.confstr('CS_GNU_LIBC_VERSION') if hasattr(os, 'confstr') else None; "
    "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'machine': platform.machine(), "
    "'glibc': libc.split()[-1] if libc else None}))"
)


# The containers that ask an image a question run code the project chose (its base image's python3, its
# build backend and setup.py): limited, without capabilities, their logs capped by gpuci whatever the
# engine's default (their output is read whole once they end).
PROBE_POSTURE: dict[str, Any] = {
    "network_mode": "none",
    "mem_limit": "2g",
    "pids_limit": 1024,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "log_config": {"type": "json-file", "config": {"max-size": "1m", "max-file": "2"}},
}


def ask_image(client: Any, image: str) -> PythonTarget:
    """Run the base image's python3 once (no network) and read what it is."""
    import docker.errors

    try:
        image_id = str(client.images.get(image).id)
    except docker.errors.ImageNotFound:
        raise ImageBuildError(
            f"the base image {image} is not on this Docker Engine, so it cannot be asked which Python it runs; "
            "load or build it first (`python -m harness image bootstrap` for gpuci's Debian base)."
        ) from None
    known = _known_python(image_id)
    if known is not None:  # an image id is its content: the same image runs the same Python
        return _checked_target(image, known)
    # Named, and removed by that name in `finally` (not the SDK's remove=True): a cancel can land
    # while it runs, or after the engine made it but before `run` returned.
    name = f"gpuci-python-probe-{uuid.uuid4().hex[:12]}"
    try:
        out = client.containers.run(
            image, ["python3", "-c", PROBE], name=name, entrypoint=[], labels={"gpuci.purpose": "python-probe"},
            **PROBE_POSTURE,
        )  # fmt: skip
        data = json.loads(out.decode().strip().splitlines()[-1])
    except GpuciError:
        raise  # a cancel: the run reports it as such
    except Exception as exc:
        raise ImageBuildError(
            f"could not ask the base image {image} which Python it runs ({exc}); it needs a python3."
        ) from None
    finally:
        with contextlib.suppress(Exception):
            client.api.remove_container(name, force=True)
    target = _checked_target(image, data)
    _remember_python(image_id, target)
    return target


def _python_record(image_id: str) -> Path:
    return cache_dir("pythons") / f"{image_id.removeprefix('sha256:')[:64]}.json"


def _known_python(image_id: str) -> object | None:
    """What an image answered before, from the host cache (checked again as any answer is)."""
    try:
        return json.loads(_python_record(image_id).read_text()[:4096])
    except (OSError, ValueError):
        return None


def _remember_python(image_id: str, target: PythonTarget) -> None:
    record = _python_record(image_id)
    partial = record.with_name(f".{record.name}.{os.getpid()}")
    partial.write_text(json.dumps({"version": target.version, "machine": target.machine, "glibc": target.glibc}))
    os.replace(partial, record)


# The image is the project's: its answer names host folders and pip's words, so it must be plain.
_VERSION = re.compile(r"^3\.[0-9]{1,2}$")
_MACHINE = re.compile(r"^[A-Za-z0-9_]{1,32}$")
_GLIBC = re.compile(r"^[0-9]{1,2}\.[0-9]{1,3}$")


def _checked_target(image: str, data: object) -> PythonTarget:
    version = data.get("version") if isinstance(data, dict) else None
    machine = data.get("machine") if isinstance(data, dict) else None
    glibc = data.get("glibc") if isinstance(data, dict) else None
    if not (
        isinstance(version, str)
        and _VERSION.match(version)
        and isinstance(machine, str)
        and _MACHINE.match(machine)
        and (glibc is None or (isinstance(glibc, str) and _GLIBC.match(glibc)))
    ):
        raise UsageError(
            f"the image {image} answered which Python it runs with {str(data)[:120]!r}, which is no Python "
            "version, machine and C library version; its python3 is not a real Python. Fix the image's recipe."
        )
    return PythonTarget(version, machine, glibc)


@dataclass(frozen=True)
class Resolution:
    pins: tuple[str, ...]  # name==version, sorted
    target: PythonTarget


def resolve(
    requirements: Path,
    sources: tuple[Path, ...],
    wheelhouse: Path,
    target: PythonTarget,
    ca_bundle: Path | None,
    constraints: Path | None = None,
) -> Resolution:
    """Resolve `requirements` (the user's `sources` in one file) with their dependencies for `target`
    into `wheelhouse`; offline first, from the wheelhouse alone. `constraints` are the pins the image
    installs beside them (gpuci's own): the resolution must agree with them."""
    from harness.host_python import run_python, start_python

    shown_as = ", ".join(str(s) for s in sources) or str(requirements)
    wheelhouse, requirements = Path(os.path.abspath(wheelhouse)), Path(os.path.abspath(requirements))
    wheelhouse.mkdir(parents=True, exist_ok=True)
    uv = usable_uv(wheelhouse, ca_bundle)
    platform = uv_platform(target.machine, target.glibc) if uv else None
    if uv and platform and target.glibc:
        beside = Path(os.path.abspath(constraints)) if constraints else None
        request = Request(requirements, target.version, target.machine, target.glibc, wheelhouse, beside, ca_bundle)
        for offline in (True, False):
            if not offline:
                say(f"resolving {shown_as} for Python {target.version} ({platform}) with uv into {wheelhouse}")
            compiled = compile_wheels(uv, request, platform, offline)
            if compiled.wheels is not None:
                fetched = fetch(compiled.wheels, wheelhouse, None, ca_bundle)
                if fetched:
                    say(f"fetched {len(fetched)} wheel(s): {', '.join(fetched)[:300]}")
                return Resolution(tuple(sorted(_pin(w.name) for w in compiled.wheels)), target)
        _fail(compiled.output.splitlines(), sources, shown_as, target, ResolveWith(wheelhouse, ca_bundle, constraints))
    pinned = ["-c", os.path.abspath(constraints)] if constraints else []
    base = [*pip_command(), "download", "--disable-pip-version-check", "--progress-bar", "off",
            *target.pip_args(), "-r", str(requirements), *pinned, "-d", str(wheelhouse)]  # fmt: skip
    offline = run_python([*base, "--no-index", "--find-links", str(wheelhouse)], capture_output=True, text=True)
    if offline.returncode == 0:
        return Resolution(_pins(offline.stdout), target)
    say(f"resolving {shown_as} for Python {target.version} ({target.machine}, glibc {target.glibc}) into {wheelhouse}")
    cert = ["--cert", os.path.abspath(ca_bundle)] if ca_bundle else []
    proc = start_python([*base, *cert], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith(("Collecting", "Saved", "Downloading")):  # progress while pip works
            print(f"  {line.rstrip()}", file=sys.stderr, flush=True)
    if proc.wait() != 0:
        _fail(lines, sources, shown_as, target, ResolveWith(wheelhouse, ca_bundle, constraints))
    return Resolution(_pins("\n".join(lines)), target)


def _pin(wheel: str) -> str:
    name, version, _, _ = parse_wheel_filename(wheel)
    return f"{name}=={version}"


def _pins(output: str) -> tuple[str, ...]:
    pins = set()
    for match in _SAVED.finditer(output):
        name, version = _WHEEL.match(Path(match.group(1)).name).groups()  # type: ignore[union-attr]
        pins.add(f"{name.replace('_', '-').lower()}=={version}")
    return tuple(sorted(pins))


@dataclass(frozen=True)
class ResolveWith:
    """What resolving the backend's own requirements reads besides them: the wheelhouse, a CA bundle
    for the index, and the project's constraints."""

    wheelhouse: Path
    ca_bundle: Path | None = None
    constraints: Path | None = None


def _fail(lines: list[str], sources: tuple[Path, ...], shown_as: str, target: PythonTarget, using: ResolveWith) -> None:
    wheelhouse, constraints, ca_bundle = using.wheelhouse, using.constraints, using.ca_bundle
    text = "\n".join(lines)
    if any(word in text for word in (*NETWORK_WORDS, *UV_NETWORK_WORDS)):
        raise ImageBuildError(
            f"could not reach the package index to resolve {shown_as} ({_last_error(lines)}). On a host "
            f"with no access, fill {wheelhouse} with the wheels (or set GPUCI_WHEELHOUSE to a folder that has them)."
        )
    # uv wraps its explanation to the terminal's width: read it as one line.
    missing = _MISSING.search(text) or UV_MISSING.search(" ".join(text.split()))
    conflict = _CONFLICT.search(text) or (None if missing else re.search(r"Because [^\n]*", text))
    if conflict or "ResolutionImpossible" in text:
        beside = f" or with the pins the image installs beside them ({constraints})" if constraints else ""
        what = f" ({conflict.group(0)[:200]})" if conflict else ""
        lines_at = _conflicting_lines(conflict.group(0) if conflict else "", sources, constraints)
        at = f"; the lines that disagree: {', '.join(lines_at)}" if lines_at else ""
        raise UsageError(
            f"{shown_as}: the requirements conflict with each other{beside}{what}{at}; loosen the pin that "
            "disagrees (gpuci's own pins are what its pytest plugin was tested with)."
        )
    what = f"the requirement {missing.group(1)!r}" if missing else "a requirement"
    where = _line_of(missing.group(1), sources) if missing else None
    # pip's "from versions: none" is both "no such package" and "no wheel for this Python": asked apart.
    why = advice(missing.group(1), text, target.version, ca_bundle) if missing else "cannot be resolved."
    raise UsageError(
        f"{where or shown_as}: {what} {why} (the resolver said {_last_error(lines)!r}, resolving for Python "
        f"{target.version} on {target.machine}, glibc {target.glibc}.)"
    )


def _conflicting_lines(text: str, sources: tuple[Path, ...], constraints: Path | None) -> list[str]:
    """FILE:LINE (name) of each line, the user's and gpuci's pins, asking for a package the resolver's
    conflict names with a version (`you require pytest==8.3.3 and pytest==8.4.2`)."""
    names = dict.fromkeys(n.lower() for n in re.findall(r"([A-Za-z0-9][\w.-]*)(?:==|>=|<=|~=|!=|<|>)", text))
    found = []
    for name in names:
        for files in (sources, (constraints,) if constraints else ()):
            line = _line_of(name, files)
            found += [f"{line} ({name})"] if line else []
    return found[:6]


def _line_of(requirement: str, sources: tuple[Path, ...]) -> str | None:
    """FILE:LINE of the user's line that asks for `requirement` (pip names it, not where it came from)."""
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
    for source in sources:
        try:
            lines = source.read_text().splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, 1):
            text = line.strip().strip("\"',")  # a pyproject.toml list entry: "name>=1",
            first = re.split(r"[<>=!~;\[ ]", text, maxsplit=1)[0].lower().replace("_", "-")
            if first == name:
                return f"{source}:{number}"
    return None


def _last_error(lines: list[str]) -> str:
    causes = [line.strip().removeprefix("cause: ") for line in lines if line.strip().startswith("cause:")]
    if causes:  # uv's: the last cause is the one to act on
        return causes[-1][:300]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR")]
    return (errors[-1] if errors else (lines[-1] if lines else "no output"))[:300]
