"""`gpuci init`: what a repository needs to run its tests through gpuci, leaving what it has.

Writes only files that are missing: a noxfile (or, in an existing one, the three lines that
make gpuci's sessions), `[tool.gpuci]` in pyproject.toml, the image recipes under
`containers/`, and an example area when the repository declares none. Idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.ci.init_recipes import REQUIREMENTS, dockerfile
from harness.declare.areas import AREAS_DIR
from harness.declare.platforms import PLATFORM_NAMES

MARK = "from harness.sessions import area_sessions"
SCRIPT_BLOCK = "# /// script"
# nox (2025.02 and later) reads this block and, where gpuci is missing from its own environment (nox
# installed on its own with pipx or `uv tool`), runs the noxfile in an environment that has it.
SCRIPT = """# /// script
# dependencies = ["nox", "{source}"]
# ///
"""
NOXFILE = f'''{{script}}"""nox sessions: `<platform>_<area>` for every test area in .buildkite/test_areas (gpuci)."""

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
# The project itself is installed editable in its images (metadata, entry points; code from the
# checkout); "none" leaves it out.
# install = "editable"
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
    why: str = ""  # said beside the change, where it is not obvious


def gpuci_source() -> str:
    """How a noxfile's environment gets gpuci: as it was installed here (a path, a wheel, a URL), or
    the checkout this code runs from, or the package's name."""
    import importlib.metadata
    import json

    try:
        direct = importlib.metadata.distribution("gpuci-harness").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        direct = None
    if direct:
        url = json.loads(direct).get("url")
        if url:
            return f"gpuci-harness @ {url}"
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and 'name = "gpuci-harness"' in (
        checkout / "pyproject.toml"
    ).read_text():
        return f"gpuci-harness @ {checkout.as_uri()}"
    return "gpuci-harness"


def plan(root: Path) -> list[Change]:
    """What init would write here: nothing that is already in place."""
    root = Path(root)
    changes: list[Change] = []
    noxfile = root / "noxfile.py"
    script = SCRIPT.format(source=gpuci_source())
    if not noxfile.exists():
        changes.append(Change(noxfile, "create", NOXFILE.format(script=script)))
    elif MARK not in noxfile.read_text():
        has_block = SCRIPT_BLOCK in noxfile.read_text()
        note = (
            f"your noxfile has a script block already: add {gpuci_source()!r} to its dependencies" if has_block else ""
        )
        changes.append(Change(noxfile, "append", NOX_LINES if has_block else "\n" + script + NOX_LINES, note))
    pyproject = root / "pyproject.toml"
    if not pyproject.exists():
        why = (
            "for [tool.gpuci] only: setup.py still builds the project"
            if (root / "setup.py").exists()
            else "for [tool.gpuci]"
        )
        changes.append(Change(pyproject, "create", TOOL_GPUCI.lstrip(), why))
    elif "[tool.gpuci]" not in pyproject.read_text():
        changes.append(Change(pyproject, "append", TOOL_GPUCI))
    ignore = root / ".gitignore"
    ignored = ignore.read_text().splitlines() if ignore.exists() else []
    if not any(line.strip().rstrip("/") in (".gpuci", "/.gpuci") for line in ignored):
        text = "# gpuci's runs, images' inputs and reports (gpuci init)\n.gpuci/\n"
        changes.append(
            Change(ignore, "append" if ignore.exists() else "create", text, "gpuci's state stays out of git")
        )
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
