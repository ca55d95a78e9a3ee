"""Where a project's declarations live: `[tool.gpuci] declarations`, each a file, folder or glob.

The default is gpuci's own layout, `.buildkite/test_areas/*.yaml`. A project with other
pipeline files names them too: a separate AMD file, a folder of hardware pipelines, an older
single-file pipeline. `PATH:rocm` says a file's steps are one platform's (an AMD file's steps
carry no `mirror.amd`; they are ROCm steps as written). `PATH@DIR` says where its steps without a
working_dir start, relative to the checkout: `@.` for a pipeline the agent runs as uploaded (a
release or image pipeline), from the checkout's root rather than the generator's working dir.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, replace
from pathlib import Path

from harness.declare.areas import AREAS_DIR, Area, load_area
from harness.declare.platforms import platform_names
from harness.errors import DeclarationError, UsageError

DEFAULT_DECLARATIONS = (str(AREAS_DIR),)
# Area names become nox session names and words of commands an agent's shell runs.
AREA_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
BUILDKITE_DIR = Path(".buildkite")


@dataclass(frozen=True)
class Declaration:
    pattern: str
    platforms: tuple[str, ...] = ()
    working_dir: str | None = None  # where steps without one start, relative to the checkout

    @classmethod
    def parse(cls, text: str, origin: str) -> Declaration:
        pattern, _, platforms = str(text).partition(":")
        pattern, at, working_dir = pattern.partition("@")
        names = tuple(p.strip() for p in platforms.split(",") if p.strip())
        unknown = [n for n in names if n not in platform_names()]
        if not pattern.strip() or unknown or (at and (not working_dir.strip() or working_dir.startswith("/"))):
            raise UsageError(
                f"{origin}: declarations entry {text!r} is not PATH[@DIR][:PLATFORM[,PLATFORM]] "
                f"(platforms: {', '.join(platform_names())}; DIR relative to the checkout); "
                "e.g. '.buildkite/test-amd.yaml:rocm' or '.buildkite/release-pipeline.yaml@.'."
            )
        return cls(pattern.strip(), names, working_dir.strip() or None)

    def files(self, root: Path) -> list[Path]:
        """The pipeline files this entry names at `root`; none where the path is absent."""
        target = root / self.pattern
        if target.is_dir():  # and its subfolders: a pipeline file one folder down is still a pipeline file
            return sorted([*target.rglob("*.yaml"), *target.rglob("*.yml")])
        if glob.has_magic(self.pattern):
            return sorted(Path(p) for p in glob.glob(str(target)) if Path(p).is_file())
        return [target] if target.is_file() else []

    def checked_files(self, root: Path, origin: str, required: bool) -> list[Path]:
        """`files`, refusing an entry that reaches outside the checkout, or (when `required`) names nothing."""
        inside = Path(root).resolve()
        if Path(self.pattern).is_absolute() or ".." in Path(self.pattern).parts:
            raise UsageError(
                f"{origin}: declarations entry {self.pattern!r} is outside the checkout; name pipeline files "
                "by their path in it (e.g. '.buildkite/test-amd.yaml')."
            )
        found = self.files(root)
        for path in found:
            if not path.resolve().is_relative_to(inside):
                raise UsageError(
                    f"{origin}: declarations entry {self.pattern!r} reaches {path}, a link out of the "
                    "checkout; gpuci reads pipeline files of the checkout only."
                )
        if required and not found:
            raise UsageError(
                f"{origin}: declarations entry {self.pattern!r} names no pipeline file (.yaml, .yml) in "
                f"{root}; fix the path or remove the entry (a typo here would drop a whole pipeline)."
            )
        return found


def area_name(root: Path, path: Path) -> str:
    """`.buildkite/test_areas/x.yaml` is `x`; elsewhere the path under `.buildkite/` (or the
    root) with `/` as `_`: `.buildkite/hardware_tests/amd.yaml` is `hardware_tests_amd`."""
    relative = path.relative_to(root)
    for base in (AREAS_DIR, BUILDKITE_DIR):
        if relative.is_relative_to(base):
            relative = relative.relative_to(base)
            break
    name = str(relative.with_suffix("")).replace("/", "_")
    if not AREA_NAME.match(name):
        raise DeclarationError(
            path,
            None,
            f"gives the area name {name[:80]!r}, which has characters other than letters, digits, '_', '-' "
            "and '.'; area names become nox sessions and commands on CI agents, so rename the file.",
        )
    return name


def load_areas(root: Path, declarations: tuple[str, ...] | None = None, origin: str | None = None) -> list[Area]:
    """Every declared area, sorted by name; names must be unique (they name nox sessions). `origin`
    names where the declarations entries were written, for errors (the project's pyproject.toml unless
    the command line gave them)."""
    root = Path(root)
    if declarations is None:
        from harness.declare.config import load_config

        declarations = load_config(root, for_host=False).declarations
    by_name: dict[str, Area] = {}
    seen: set[Path] = set()
    origin = origin or str(root / "pyproject.toml")
    for entry in declarations:
        declaration = Declaration.parse(entry, origin)
        required = entry not in DEFAULT_DECLARATIONS  # gpuci's own layout may be absent
        for path in declaration.checked_files(root, origin, required):
            if path.resolve() in seen:
                continue  # a file named by two entries (a folder and a glob) is one area
            seen.add(path.resolve())
            area = load_area(path, name=area_name(root, path), platforms=declaration.platforms or None)
            if declaration.working_dir:
                steps = (replace(s, working_dir=s.working_dir or declaration.working_dir) for s in area.steps)
                area = replace(area, steps=tuple(steps))
            if area.name in by_name:
                raise DeclarationError(
                    area.path,
                    None,
                    f"declares area {area.name!r}, as {by_name[area.name].path} does; session names "
                    "<platform>_<area> would collide, so rename one file.",
                )
            by_name[area.name] = area
    return sorted(by_name.values(), key=lambda a: a.name)


def find_area(root: Path, name: str, declarations: tuple[str, ...] | None = None) -> Area:
    """The area called `name`, among those `declarations` name (None: those [tool.gpuci] names)."""
    areas = load_areas(root, declarations)
    for area in areas:
        if area.name == name:
            return area
    known = ", ".join(a.name for a in areas) or "none"
    raise DeclarationError(Path(root) / AREAS_DIR, None, f"has no area {name!r} (known areas: {known}).")
