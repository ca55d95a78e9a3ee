"""What each kind of setting takes (harness.declare.settings names a setting's kind): the check of a
value as `[tool.gpuci]` writes it, the words an error uses, the form `ProjectConfig` keeps it in, and
how an environment variable's text is read as one.

Every source of a setting (a flag, a `GPUCI_<KEY>` variable, `[tool.gpuci]`) is checked here, so a
value of the wrong kind is the same one-paragraph error wherever it was given.
"""

from __future__ import annotations

import math
import re
from typing import Any

from harness.declare.dependencies import DEPENDENCY_MATCHES
from harness.declare.platforms import platform_names
from harness.declare.pythons import SUITES
from harness.errors import UsageError

# It reaches a Dockerfile and shell lines: plain path characters only.
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")  # Debian's form: nothing a shell reads as more
# A system_packages table is keyed by platform (harness.declare.platforms), or `all`.
PACKAGE_TABLE_KEY_ALL = "all"
SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$")
# HOST[:PORT][/PATH], as Docker spells a repository's prefix (lowercase path components).
REGISTRY_FORMAT = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
MOUNT_MODES = ([], ["ro"], ["rw"], ["dangerous"], ["ro", "dangerous"], ["rw", "dangerous"])
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

KIND_WORDS = {
    "path": "an absolute path of letters, digits and . _ - / (a string starting with /)",
    "str": "a string",
    "list": "a list of strings",
    "table": 'a table of strings ([tool.gpuci.queues] name = "queue")',
    "match": '"component", "substring" or "prefix"',
    "modes": 'a table of match modes ([tool.gpuci.dependency_match_for] "ci/a.yaml" = "prefix")',
    "install": '"editable" or "none"',
    "pythons": f"a Python version or a list of them, each one of {', '.join(SUITES)}",
    "size": 'a size in Docker\'s form ("16g", "512m")',
    "number": "a number greater than 0",
    "count": "a whole number greater than 0",
    "bool": "true or false",
    "registry": "HOST[:PORT][/PATH] as Docker names repositories, e.g. 'registry.example.com:5000/ci' (no scheme, "
    "lowercase path)",
    "mounts": "a list of SOURCE:TARGET[:ro|rw][:dangerous] entries with an absolute TARGET, e.g. "
    "'~/.cache/huggingface:/root/.cache/huggingface:ro' (a relative SOURCE is in the checkout)",
    "packages": "a list of Debian package names, or a table of them by platform ([tool.gpuci.system_packages] "
    'all = ["libfoo-dev"], cuda = […])',
}


def is_kind(kind: str, value: object) -> bool:
    """Whether `value`, as TOML (or a flag, or a variable read by `from_env`) gives it, is of `kind`."""
    if kind == "path":
        return isinstance(value, str) and SAFE_PATH.match(value) is not None and _plain_path(value)
    if kind == "str":
        return isinstance(value, str) and value != ""
    if kind == "pythons":
        versions = [value] if isinstance(value, str) else value
        return isinstance(versions, list) and bool(versions) and all(v in SUITES for v in versions)
    if kind == "install":
        return value in ("editable", "none")
    if kind == "match":
        return value in DEPENDENCY_MATCHES
    if kind == "modes":
        return isinstance(value, dict) and all(v in DEPENDENCY_MATCHES for v in value.values())
    if kind == "size":
        return isinstance(value, str) and SIZE.match(value) is not None
    if kind in ("number", "count"):
        wanted = int if kind == "count" else (int, float)
        return isinstance(value, wanted) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "registry":
        text = value.strip().rstrip("/") if isinstance(value, str) else ""
        return "://" not in text and REGISTRY_FORMAT.match(text) is not None
    if kind == "mounts":
        return isinstance(value, list) and all(isinstance(v, str) and _is_mount(v) for v in value)
    if kind == "packages":  # each name reaches an apt-get line: Debian's name form only
        table = {PACKAGE_TABLE_KEY_ALL: value} if isinstance(value, list) else value
        keys = (PACKAGE_TABLE_KEY_ALL, *platform_names())
        return isinstance(table, dict) and all(
            k in keys and isinstance(v, list) and all(_is_package(n) for n in v) for k, v in table.items()
        )
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    return isinstance(value, dict) and all(isinstance(v, str) and v for v in value.values())


def checked(kind: str, value: object, where: str, fix: str) -> Any:
    """`value` in ProjectConfig's form, or UsageError: "`where` must be <the kind's words>, not …; `fix`."."""
    if not is_kind(kind, value):
        if kind == "mounts" and isinstance(value, list):  # name the entry, not the whole list
            value = next(v for v in value if not (isinstance(v, str) and _is_mount(v)))
            where = f"{where} entry"
            words = "SOURCE:TARGET[:ro|rw][:dangerous]" + KIND_WORDS["mounts"].split("entries", 1)[1]
            raise UsageError(f"{where} {str(value)[:200]!r} is not {words}; {fix}.")
        if kind == "modes" and isinstance(value, dict):  # name the pipeline whose mode is wrong
            name, mode = next((k, v) for k, v in value.items() if v not in DEPENDENCY_MATCHES)
            raise UsageError(
                f"{where} {str(name)[:200]!r} is {_shown(mode)}; each value must be {KIND_WORDS['match']}; {fix}."
            )
        if kind == "path" and isinstance(value, str) and SAFE_PATH.match(value):
            raise UsageError(
                f"{where} must be a plain absolute path, with no '.' or '..' part, no '//' and not '/' alone, not "
                f"{_shown(value)} (the image's build makes it a folder on the host too); {fix}."
            )
        raise UsageError(f"{where} must be {KIND_WORDS[kind]}, not {_shown(value)}; {fix}.")
    return field_form(kind, value)


def field_form(kind: str, value: Any) -> Any:
    """A checked value as ProjectConfig keeps it: lists as tuples (each entry once where order is a
    choice), numbers as floats, tables as dicts."""
    if kind in ("list", "mounts"):
        return tuple(str(v).strip() for v in value)
    if kind == "pythons":
        return (value,) if isinstance(value, str) else tuple(dict.fromkeys(value))
    if kind == "packages":
        table = {"all": value} if isinstance(value, list) else value
        return {str(k): tuple(dict.fromkeys(v)) for k, v in table.items()}
    if kind in ("table", "modes"):
        return {str(k): str(v) for k, v in value.items()}
    if kind == "number":
        return float(value)
    if kind == "registry":
        return value.strip().rstrip("/")
    return value


def from_env(kind: str, text: str) -> Any:
    """A variable's text as TOML would give the value: lists comma-separated, tables as KEY=VALUE
    pairs comma-separated, numbers and true/false as words. Text that is no such value is kept as
    text, so that `checked` names it."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if kind in ("list", "mounts", "packages") or (kind == "pythons" and "," in text):
        return items
    if kind in ("table", "modes"):
        pairs = [item.partition("=") for item in items]
        return {k.strip(): v.strip() for k, eq, v in pairs if eq} if all(eq for _, eq, _ in pairs) else text
    if kind in ("number", "count"):
        try:
            return int(text) if kind == "count" else float(text)
        except ValueError:
            return text
    if kind == "bool":
        word = text.strip().lower()
        return True if word in TRUE else False if word in FALSE else text
    return text.strip()


def _is_mount(entry: str) -> bool:
    parts = entry.strip().split(":")
    return 2 <= len(parts) <= 4 and bool(parts[0]) and parts[1].startswith("/") and parts[2:] in MOUNT_MODES


def _is_package(name: object) -> bool:
    return isinstance(name, str) and PACKAGE_NAME.match(name) is not None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def _plain_path(path: str) -> bool:
    """No '.' or '..' part, no empty one, not '/' alone: the project's layer joins the path onto a host
    folder (harness.images.project_layer), where `/../../etc` climbed out of the build folder."""
    parts = path.rstrip("/").split("/")[1:]
    return bool(parts) and all(part not in ("", ".", "..") for part in parts)
