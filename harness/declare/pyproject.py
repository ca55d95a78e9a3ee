"""The project's pyproject.toml, read once per command: bounded, as a regular file of the checkout.

Its `[tool.gpuci]` is the project's settings (harness.declare.config); the same reading serves its
`[project]`, `[build-system]` and `[dependency-groups]` to the image stage, which takes it from the
resolved config instead of reading the file again.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.untrusted import PROJECT_FILE_LIMIT, Refused, parse_toml, read_capped

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NAME = "pyproject.toml"


@dataclass(frozen=True)
class Pyproject:
    path: Path
    raw: bytes = field(repr=False)
    data: dict[str, Any] = field(repr=False)

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8")

    def tool_gpuci(self) -> dict[str, Any]:
        """Its [tool.gpuci] table ({} without one), or UsageError when it is not a table."""
        tool = self.data.get("tool", {})
        section = tool.get("gpuci", {}) if isinstance(tool, dict) else {}
        if not isinstance(section, dict):
            raise UsageError(f"{self.path}:{self.line_of('gpuci')}: tool.gpuci must be a table ([tool.gpuci]).")
        return section

    def line_of(self, key: str) -> int:
        """The line of `key =` (or `[tool.gpuci.key]`): tomllib keeps no positions."""
        pattern = re.compile(rf"^\s*(\[tool\.gpuci\.)?{re.escape(key)}\b")
        for number, line in enumerate(self.text.splitlines(), 1):
            if pattern.match(line):
                return number
        return 1


def read_pyproject(root: Path) -> Pyproject | None:
    """`root`'s pyproject.toml (None: there is none), or one UsageError that says what to fix."""
    path = Path(root) / NAME
    if not path.exists():
        return None
    try:
        raw = read_capped(path, PROJECT_FILE_LIMIT, Path(root))
        data = parse_toml(raw.decode("utf-8"), path)
    except Refused as exc:
        raise UsageError(f"{exc}; pyproject.toml must be a regular file of the checkout, at most 2 MiB.") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: is not UTF-8 text; save it as UTF-8.") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: is not valid TOML ({exc}); fix it or remove [tool.gpuci].") from None
    return Pyproject(path, raw, data)
