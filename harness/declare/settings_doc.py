"""The settings' documentation, made from their one declaration (harness.declare.settings): the JSON
schema of `[tool.gpuci]` that editors read (docs/tool-gpuci.schema.json) and the README's table (key,
kind, default, flag and `GPUCI_<KEY>` variable, owner and policy rule, help).
A test keeps both current; `python -m harness.declare.settings_doc --write` rewrites them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from harness.declare.dependencies import DEPENDENCY_MATCHES
from harness.declare.kinds import KIND_WORDS, REGISTRY_FORMAT, SAFE_PATH, SIZE
from harness.declare.pythons import SUITES
from harness.declare.settings import SETTINGS, Setting

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "docs" / "tool-gpuci.schema.json"
README = ROOT / "README.md"
SETTINGS_PAGE = ROOT / "docs" / "settings.md"  # the same table, in the settings page
BEGIN, END = "<!-- settings:begin (made by harness/declare/settings_doc.py) -->", "<!-- settings:end -->"

# SOURCE:TARGET[:ro|rw][:dangerous] with an absolute TARGET (harness.declare.kinds checks the same).
MOUNT_PATTERN = "^[^:]+:/[^:]*(:(ro|rw))?(:dangerous)?$"
_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_SCHEMAS: dict[str, dict[str, Any]] = {
    "path": {"type": "string", "pattern": SAFE_PATH.pattern},
    "str": {"type": "string", "minLength": 1},
    "list": _STRINGS,
    "table": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
    "match": {"enum": list(DEPENDENCY_MATCHES)},
    "modes": {"type": "object", "additionalProperties": {"enum": list(DEPENDENCY_MATCHES)}},
    "registry": {"type": "string", "pattern": REGISTRY_FORMAT.pattern},
    "mounts": {"type": "array", "items": {"type": "string", "pattern": MOUNT_PATTERN}},
    "install": {"enum": ["editable", "none"]},
    "pythons": {"oneOf": [{"enum": list(SUITES)}, {"type": "array", "items": {"enum": list(SUITES)}, "minItems": 1}]},
    "size": {"type": "string", "pattern": SIZE.pattern},
    "number": {"type": "number", "exclusiveMinimum": 0},
    "count": {"type": "integer", "exclusiveMinimum": 0},
    "bool": {"type": "boolean"},
    "packages": {"oneOf": [_STRINGS, {"type": "object", "additionalProperties": _STRINGS}]},
}


def _default(setting: Setting) -> Any:
    value = setting.default
    return list(value) if isinstance(value, tuple) else value


def _owner(setting: Setting) -> str:
    if setting.owner == "host":
        return "host only: the host policy, never [tool.gpuci]"
    if setting.policy:
        return f"project, within the host policy's `{setting.policy}`"
    return "project"


def json_schema() -> dict[str, Any]:
    properties = {}
    for setting in SETTINGS:
        schema = dict(_SCHEMAS[setting.kind])
        schema["description"] = f"{setting.help} ({_owner(setting)})"
        default = _default(setting)
        if default not in (None, [], {}):
            schema["default"] = default
        properties[setting.key] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://gpuci.invalid/tool-gpuci.schema.json",
        "title": "[tool.gpuci]",
        "description": "gpuci's settings in pyproject.toml; made from harness/declare/settings.py.",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def markdown_table() -> str:
    rows = ["| key | takes | default | flag, variable | who sets it | what it does |", "|---|---|---|---|---|---|"]
    for s in SETTINGS:
        default = _default(s)
        shown = "" if default in (None, [], {}) else f"`{json.dumps(default)}`"
        where = ", ".join(f"`{w}`" for w in (s.flag, s.env) if w)
        if s.env_beside:
            where += " (beside the project's)"
        cells = [f"`{s.key}`", KIND_WORDS[s.kind], shown, where, _owner(s), s.help]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def readme_with_table(text: str) -> str:
    """`text` (the README, the settings page) with the table between its markers made afresh."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + markdown_table() + text[end:]


def main(argv: list[str]) -> int:
    wanted = {
        SCHEMA_PATH: json.dumps(json_schema(), indent=1) + "\n",
        README: readme_with_table(README.read_text()),
        SETTINGS_PAGE: readme_with_table(SETTINGS_PAGE.read_text()),
    }
    if "--write" in argv:
        for path, text in wanted.items():
            path.write_text(text)
        return 0
    stale = [p for p, want in wanted.items() if not p.exists() or p.read_text() != want]
    for path in stale:
        print(f"{path} is not current: run `python -m harness.declare.settings_doc --write`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
