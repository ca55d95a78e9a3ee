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
from dataclasses import dataclass, replace
from pathlib import Path

from harness.declare.areas import AREAS_DIR, Area, load_area
from harness.declare.platforms import PLATFORM_NAMES
from harness.errors import DeclarationError, UsageError

DEFAULT_DECLARATIONS = (str(AREAS_DIR),)
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
        unknown = [n for n in names if n not in PLATFORM_NAMES]
        if not pattern.strip() or unknown or (at and (not working_dir.strip() or working_dir.startswith("/"))):
            raise UsageError(
                f"{origin}: declarations entry {text!r} is not PATH[@DIR][:PLATFORM[,PLATFORM]] "
                f"(platforms: {', '.join(PLATFORM_NAMES)}; DIR relative to the checkout); "
                "e.g. '.buildkite/test-amd.yaml:rocm' or '.buildkite/release-pipeline.yaml@.'."
            )
        return cls(pattern.strip(), names, working_dir.strip() or None)

    def files(self, root: Path) -> list[Path]:
        """The pipeline files this entry names at `root`; none where the path is absent."""
        target = root / self.pattern
        if target.is_dir():
            return sorted([*target.glob("*.yaml"), *target.glob("*.yml")])
        if glob.has_magic(self.pattern):
            return sorted(Path(p) for p in glob.glob(str(target)) if Path(p).is_file())
        return [target] if target.is_file() else []


def area_name(root: Path, path: Path) -> str:
    """`.buildkite/test_areas/x.yaml` is `x`; elsewhere the path under `.buildkite/` (or the
    root) with `/` as `_`: `.buildkite/hardware_tests/amd.yaml` is `hardware_tests_amd`."""
    relative = path.relative_to(root)
    for base in (AREAS_DIR, BUILDKITE_DIR):
        if relative.is_relative_to(base):
            relative = relative.relative_to(base)
            break
    return str(relative.with_suffix("")).replace("/", "_")


def load_areas(root: Path, declarations: tuple[str, ...] | None = None) -> list[Area]:
    """Every declared area, sorted by name; names must be unique (they name nox sessions)."""
    root = Path(root)
    if declarations is None:
        from harness.declare.config import load_config

        declarations = load_config(root).declarations
    by_name: dict[str, Area] = {}
    seen: set[Path] = set()
    for entry in declarations:
        declaration = Declaration.parse(entry, str(root / "pyproject.toml"))
        for path in declaration.files(root):
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


def find_area(root: Path, name: str) -> Area:
    areas = load_areas(root)
    for area in areas:
        if area.name == name:
            return area
    known = ", ".join(a.name for a in areas) or "none"
    raise DeclarationError(Path(root) / AREAS_DIR, None, f"has no area {name!r} (known areas: {known}).")
