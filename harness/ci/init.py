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
from harness.declare.platforms import platform_names

MARK = "from harness.sessions import area_sessions"
# What the sessions need: a version, never a place (a `file:///` path exists on one machine only). nox
# imports gpuci where both were installed together (`pip install` of gpuci brings nox); a nox installed
# on its own (pipx, `uv tool`) finds the `gpuci` command on PATH and runs again in gpuci's own Python
# (`gpuci nox`), so nothing is installed at a nox call. No `# /// script` block: nox's script mode
# re-runs pip at every call (seconds each time) and needs a requirement an index can resolve.
FALLBACK = """try:
    {MARK}
except ModuleNotFoundError:  # nox without gpuci beside it (pipx, uv tool): again, in gpuci's own Python
    import os
    import shutil
    import sys

    if os.environ.get("GPUCI_NOX") or not shutil.which("gpuci"):
        print("gpuci: error: this nox has no gpuci and no `gpuci` command is on PATH; install gpuci once "
              "(its README: 'Use gpuci in your project') and run nox again.", file=sys.stderr)  # fmt: skip
        raise SystemExit(2) from None
    os.execv(shutil.which("gpuci"), ["gpuci", "nox", "-f", os.path.abspath(__file__), *sys.argv[1:]])
"""
NOXFILE = '''"""nox sessions: `<platform>_<area>` for every test area in .buildkite/test_areas (gpuci)."""

from pathlib import Path

{fallback}
area_sessions(Path(__file__).resolve().parent, needs="{needs}")
'''
NOX_LINES = """

# gpuci: `<platform>_<area>` sessions from .buildkite/test_areas (added by `gpuci init`).
from pathlib import Path as _GpuciPath  # noqa: E402

{fallback}
area_sessions(_GpuciPath(__file__).resolve().parent, needs="{needs}")
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
# The project's extras ([project.optional-dependencies] or setup.cfg's [options.extras_require]) and
# PEP 735 dependency groups its tests need, installed with their dependencies.
# {declared}
# extras = [{example}]
# {groups_declared}
# dependency_groups = [{group_example}]
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


def requirement() -> str:
    """The gpuci a written noxfile needs: this version or later, wherever it was installed from."""
    import re

    # Read, not imported: ci/ imports nothing of the entry package (tests/test_layout.py).
    found = re.search(r'__version__ = "([^"]+)"', (Path(__file__).resolve().parents[1] / "__init__.py").read_text())
    return f"gpuci-harness>={found.group(1) if found else '0'}"


def plan(root: Path) -> list[Change]:
    """What init would write here: nothing that is already in place."""
    root = Path(root)
    changes: list[Change] = []
    noxfile = root / "noxfile.py"
    fallback = FALLBACK.format(MARK=MARK)
    if not noxfile.exists():
        changes.append(Change(noxfile, "create", NOXFILE.format(fallback=fallback, needs=requirement())))
    elif MARK not in noxfile.read_text():
        changes.append(Change(noxfile, "append", NOX_LINES.format(fallback=fallback, needs=requirement())))
    pyproject = root / "pyproject.toml"
    tool_gpuci = _tool_gpuci(root)
    if not pyproject.exists():
        why = (
            "for [tool.gpuci] only: setup.py still builds the project"
            if (root / "setup.py").exists()
            else "for [tool.gpuci]"
        )
        changes.append(Change(pyproject, "create", tool_gpuci.lstrip(), why))
    elif "[tool.gpuci]" not in pyproject.read_text():
        changes.append(Change(pyproject, "append", tool_gpuci))
    ignore = root / ".gitignore"
    ignored = ignore.read_text().splitlines() if ignore.exists() else []
    if not any(line.strip().rstrip("/") in (".gpuci", "/.gpuci") for line in ignored):
        text = "# gpuci's runs, images' inputs and reports (gpuci init)\n.gpuci/\n"
        changes.append(
            Change(ignore, "append" if ignore.exists() else "create", text, "gpuci's state stays out of git")
        )
    if not (root / "containers" / "requirements.txt").exists():
        changes.append(Change(root / "containers" / "requirements.txt", "create", REQUIREMENTS))
    for platform in platform_names():
        path = root / "containers" / platform / "Dockerfile"
        if not path.exists():
            changes.append(Change(path, "create", dockerfile(platform)))
    areas = root / AREAS_DIR
    if not any(areas.glob("*.y*ml")):
        changes.append(Change(areas / "example.yaml", "create", EXAMPLE_AREA))
    return changes


def _tool_gpuci(root: Path) -> str:
    """The `[tool.gpuci]` table, its commented `extras` and `dependency_groups` lines naming the project's
    own (findpython's test group is `tests`, Bottleneck's `test`: the example is the one declared)."""
    from harness.declare.project_deps import declared_extras, declared_groups
    from harness.errors import UsageError

    try:
        names = sorted(declared_extras(root))
    except UsageError:
        names = []  # a file init cannot read: the run that uses it says why
    try:
        groups = sorted(declared_groups(root))
    except UsageError:
        groups = []
    declared = f"Extras declared here: {', '.join(names)}." if names else "No extras are declared here."
    groups_declared = (
        f"Dependency groups declared here: {', '.join(groups)}."
        if groups
        else "No dependency groups are declared here."
    )
    return TOOL_GPUCI.format(
        declared=declared, example=_example(names), groups_declared=groups_declared, group_example=_example(groups)
    )


def _example(names: list[str]) -> str:
    testing = [n for n in names if n.lower() in ("test", "tests", "testing")]
    return ", ".join(f'"{n}"' for n in (testing or names[:1] or ["test"]))


def next_step(root: Path, changes: list[Change]) -> str:
    """What to do after init: run the example area it wrote, or the areas the repository declares."""
    if any(change.path == root / AREAS_DIR / "example.yaml" for change in changes):
        return (
            "next: `nox -s cpu_example` runs `pytest -q` at the root in gpuci's cpu container; declare your "
            f"own areas in {AREAS_DIR}/ (then `nox -l`)"
        )
    from harness.declare.areas import session_name
    from harness.declare.sources import load_areas
    from harness.errors import DeclarationError, UsageError

    try:
        sessions = [session_name(p, area.name) for area in load_areas(root) for p in area.platforms]
    except (DeclarationError, UsageError) as exc:
        return f"next: your declarations do not load yet ({exc}); fix them, then `nox -l`"
    shown = ", ".join(sessions[:6]) + (f" and {len(sessions) - 6} more" if len(sessions) > 6 else "")
    return (
        f"next: `nox -l` lists your sessions ({shown}); run one with `nox -s {sessions[0]}`"
        if sessions
        else (f"next: declare your tests in {AREAS_DIR}/, then `nox -l` and `nox -s cpu_<area>`")
    )


def apply(changes: list[Change]) -> None:
    for change in changes:
        change.path.parent.mkdir(parents=True, exist_ok=True)
        if change.action == "create":
            change.path.write_text(change.text)
        else:
            existing = change.path.read_text()
            joiner = "" if existing.endswith("\n") or not existing else "\n"
            change.path.write_text(existing + joiner + change.text)
