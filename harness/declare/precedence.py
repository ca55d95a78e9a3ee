"""One setting's value from its sources, the same way for every setting and every command (as nox's
`_option_set` does): the flag, then the environment variable, then `[tool.gpuci]`, then the declared
default (harness.declare.settings).

The flag and the environment are the host's word (whoever runs gpuci sets them); `[tool.gpuci]` is
the project's, so `resolve` keeps where the project set each value it took (`origins`): the host
policy is held against exactly those (harness.declare.within_policy). A host-owned setting is never
taken from the project; that the project wrote one is kept in `origins` too, so that it is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.declare.kinds import checked, from_env
from harness.declare.settings import Setting

PROJECT_FIX = "fix it in pyproject.toml"


@dataclass(frozen=True)
class Resolved:
    """Every setting's value in ProjectConfig's form, with where the project's values were written."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # key -> "…/pyproject.toml:12"


def resolve(
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    project: Mapping[str, Any],
    origins: Mapping[str, str],
    settings: tuple[Setting, ...],
) -> Resolved:
    """Each of `settings` from its first source that has it. `flags` and `project` hold values as
    argparse and TOML give them; `origins` says where the project wrote each of its keys."""
    resolved = Resolved()
    for setting in settings:
        key = setting.key
        text = environ.get(setting.env, "").strip()
        if setting.env_beside is not None:  # the host's value lives beside the project's, not over it
            beside = checked(setting.kind, from_env(setting.kind, text), setting.env, f"fix or unset {setting.env}")
            resolved.values[setting.env_beside] = beside if text else field_default(setting)
            text = ""
        if setting.owner == "host" and key in project:
            resolved.origins[key] = origins[key]  # refused by the policy check, never taken
        if key in flags:
            value = checked(setting.kind, flags[key], str(setting.flag), "fix the flag")
        elif text:
            value = checked(setting.kind, from_env(setting.kind, text), setting.env, f"fix or unset {setting.env}")
        elif key in project and setting.owner == "project":
            where = f"{origins[key]}: [tool.gpuci] {key}"
            value = checked(setting.kind, project[key], where, PROJECT_FIX)
            resolved.origins[key] = origins[key]
        else:
            value = field_default(setting)
        resolved.values[key] = value
    return resolved


def field_default(setting: Setting) -> Any:
    """The declared default, as a fresh value (a table is never shared between configs)."""
    value = setting.default
    return dict(value) if isinstance(value, dict) else value
