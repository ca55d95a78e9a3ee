"""`gpuci init`: what a repository needs to run its tests through gpuci, leaving what it has.

Writes only files that are missing: a noxfile (or, in an existing one, the three lines that
make gpuci's sessions), `[tool.gpuci]` in pyproject.toml, the image recipes under
`containers/`, and an example area when the repository declares none. Idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.ci.recipes import REQUIREMENTS, dockerfile
from harness.declare.areas import AREAS_DIR
from harness.declare.platforms import PLATFORM_NAMES

MARK = "from harness.sessions import area_sessions"
NOXFILE = f'''"""nox sessions: `<platform>_<area>` for every test area in .buildkite/test_areas (gpuci)."""

from pathlib import Path

{MARK}

area_sessions(Path(__file__).resolve().parent)
'''
NOX_LINES = f"""

# gpuci: `<platform>_<area>` sessions from .buildkite/test_areas (added by `gpuci init`).
from pathlib import Path as _GpuciPath  # noqa: E402

{MARK}  # noqa: E402

area_sessions(_GpuciPath(__file__).resolve().parent)
"""
TOOL_GPUCI = """
[tool.gpuci]
# The checkout's path inside containers; steps without working_dir run there.
workspace = "/workspace"
# The project's own requirement or lock files, installed in its images (and part of their tag):
# requirements = ["requirements-test.txt"]
# Images by digest: publish once per commit, pull everywhere else.
# registry = "registry.example.com:5000/ci"
"""
EXAMPLE_AREA = """\
# An example test area: `nox -s cpu_example` runs it in gpuci's cpu container.
group: Example
platforms: [cpu]
steps:
  - label: tests
    commands: [pytest -q]
    num_gpus: 0
    timeout_in_minutes: 30
"""


@dataclass(frozen=True)
class Change:
    path: Path
    action: str  # "create" | "append"
    text: str


def plan(root: Path) -> list[Change]:
    """What init would write here: nothing that is already in place."""
    root = Path(root)
    changes: list[Change] = []
    noxfile = root / "noxfile.py"
    if not noxfile.exists():
        changes.append(Change(noxfile, "create", NOXFILE))
    elif MARK not in noxfile.read_text():
        changes.append(Change(noxfile, "append", NOX_LINES))
    pyproject = root / "pyproject.toml"
    if not pyproject.exists():
        changes.append(Change(pyproject, "create", TOOL_GPUCI.lstrip()))
    elif "[tool.gpuci]" not in pyproject.read_text():
        changes.append(Change(pyproject, "append", TOOL_GPUCI))
    if not (root / "containers" / "requirements.txt").exists():
        changes.append(Change(root / "containers" / "requirements.txt", "create", REQUIREMENTS))
    for platform in PLATFORM_NAMES:
        path = root / "containers" / platform / "Dockerfile"
        if not path.exists():
            changes.append(Change(path, "create", dockerfile(platform)))
    areas = root / AREAS_DIR
    if not any(areas.glob("*.y*ml")):
        changes.append(Change(areas / "example.yaml", "create", EXAMPLE_AREA))
    return changes


def apply(changes: list[Change]) -> None:
    for change in changes:
        change.path.parent.mkdir(parents=True, exist_ok=True)
        if change.action == "create":
            change.path.write_text(change.text)
        else:
            existing = change.path.read_text()
            joiner = "" if existing.endswith("\n") or not existing else "\n"
            change.path.write_text(existing + joiner + change.text)
