"""`.buildkite/gpuci-lint-allow.yaml`: findings accepted on purpose, each with its reason."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from harness.ci.lint.findings import ALLOW_FILE, KINDS, Finding


@dataclass(frozen=True)
class Allowed:
    kind: str
    path: str | None
    variable: str | None
    step: str | None
    reason: str

    def covers(self, finding: Finding) -> bool:
        if self.kind != finding.kind or (self.step and self.step != finding.step):
            return False
        if self.variable and self.variable != finding.variable:
            return False
        if self.path:
            found = finding.path or ""
            inside = found == self.path or found.startswith(self.path.rstrip("/") + "/")
            if not (inside or fnmatch.fnmatch(found, self.path)):
                return False
        return True


def load_allowed(root: Path) -> list[Allowed]:
    from harness.errors import DeclarationError

    path = root / ALLOW_FILE
    if not path.exists():
        return []
    import yaml

    from harness.untrusted import Refused, project_text

    try:
        entries = yaml.safe_load(project_text(path, root)) or []
    except (Refused, UnicodeDecodeError) as exc:
        raise DeclarationError(path, None, f"cannot be read: {exc}; it is a UTF-8 file of at most 2 MiB.") from None
    except RecursionError:
        raise DeclarationError(path, None, "nests too deeply to be an allow list.") from None
    except yaml.YAMLError as exc:
        raise DeclarationError(path, None, f"is not valid YAML ({exc}).") from None
    allowed = []
    for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
        if not isinstance(entry, dict) or entry.get("kind") not in KINDS or not entry.get("reason"):
            raise DeclarationError(
                path,
                None,
                f"entry {i + 1} needs a 'kind' ({', '.join(KINDS)}) and a 'reason' (why it is fine).",
            )
        allowed.append(
            Allowed(
                entry["kind"],
                entry.get("path"),
                entry.get("variable"),
                entry.get("step"),
                str(entry["reason"]),
            )
        )
    return allowed
