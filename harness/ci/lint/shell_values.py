"""What a script's variables hold where it can be known without running it.

Scripts find their files through variables: `SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"`,
`GIT_ROOT="${GIT_ROOT:-$(cd "${SCRIPT_DIR}/../.." && pwd -P)}"`, `ROOT=$(git rev-parse --show-toplevel)`.
Values here are absolute paths as the agent sees them (under the workspace), or None when they
depend on something no one can know here.
"""

from __future__ import annotations

import posixpath
import re

ASSIGNMENT = re.compile(
    r"^(?:(?:export|local|readonly|declare(?:\s+-\w+)?)\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*\$\(.*)$"
)
REFERENCE = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\$\{(?P<array>[A-Za-z_][A-Za-z0-9_]*)\[[^\]]*\]\}"  # "${configs[@]}": an array, never expanded here
)


def reference_name(match: re.Match[str]) -> str:
    return match.group("braced") or match.group("bare") or match.group("array")


SCRIPT_ITSELF = re.compile(r"^(\$\{BASH_SOURCE(\[0\])?\}|\$BASH_SOURCE|\$0|\$\{0\})$")


def expand(word: str, env: dict[str, str]) -> str:
    """`$V`, `${V}` and `${V:-default}` replaced where V is known (or has a default); others kept."""

    def one(match: re.Match[str]) -> str:
        if match.group("array"):
            return match.group(0)
        name = reference_name(match)
        if name in env:
            return env[name]
        if match.group("default") is not None:
            return match.group("default")
        return match.group(0)

    return REFERENCE.sub(one, word)


class ShellValues:
    """Evaluates an assignment's value in a script at `script` (a repository path), run from `cwd`."""

    def __init__(self, workspace: str, cwd: str, script: str | None, env: dict[str, str]) -> None:
        self.workspace, self.cwd, self.script, self.env = workspace.rstrip("/"), cwd, script, env

    def absolute(self, rel: str) -> str:
        return posixpath.normpath(posixpath.join(self.workspace, rel)) if rel else self.workspace

    def value(self, text: str) -> str | None:
        text = _unquote(text.strip())
        if SCRIPT_ITSELF.match(text):
            return self.absolute(self.script) if self.script else None
        whole = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?-(.*)\}", text, re.S)
        if whole and whole.group(2).count("{") == whole.group(2).count("}"):
            name, default = whole.groups()
            return self.env[name] if name in self.env else self.value(default)
        if text.startswith("$(") and _closing(text, 1) == len(text) - 1:
            return self.substitution(text[2:-1].strip())
        if "$(" in text and "`" not in text:  # "$(dirname "$0")/..": the parts, joined
            start = text.index("$(")
            end = _closing(text, start + 1)
            if end < 0:
                return None  # unbalanced: not a value anyone can know
            parts = [self.value(text[:start]) if start else "", self.value(text[start : end + 1])]
            parts.append(self.value(text[end + 1 :]) if end + 1 < len(text) else "")
            return None if None in parts else "".join(p for p in parts if p is not None)
        if "`" in text:
            return None
        expanded = expand(text, self.env)
        return None if "$" in expanded else expanded

    def substitution(self, command: str) -> str | None:
        """The output of the few commands scripts use to find themselves and the repository."""
        if re.fullmatch(r"git rev-parse --show-toplevel", command):
            return self.workspace
        if re.fullmatch(r"pwd(\s+-[PL])?", command):
            return self.absolute(self.cwd)
        cd = re.fullmatch(r"cd\s+(?:--\s+)?(.+?)\s*(?:&&|;)\s*pwd(?:\s+-[PL])?", command, re.S)
        if cd:
            return self._path(cd.group(1))
        tool = re.fullmatch(r"(dirname|realpath|readlink\s+-[fme]+)\s+(?:--\s+)?(.+)", command, re.S)
        if tool:
            path = self._path(tool.group(2))
            if path is None:
                return None
            return posixpath.dirname(path) if tool.group(1) == "dirname" else path
        return None

    def _path(self, text: str) -> str | None:
        value = self.value(text)
        if value is None:
            return None
        return posixpath.normpath(value if value.startswith("/") else posixpath.join(self.absolute(self.cwd), value))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _closing(text: str, opening: int) -> int:
    """Index of the parenthesis closing the one at `opening`, or -1."""
    depth = 0
    for i in range(opening, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1
