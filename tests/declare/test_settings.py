"""Each project setting is declared once; the config loader and the command line are built from that."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from harness.arguments import parser
from harness.declare.config import KINDS, ProjectConfig, config_with_flags
from harness.declare.settings import SETTINGS


def test_every_tool_gpuci_key_is_one_declared_setting() -> None:
    keys = [s.key for s in SETTINGS]
    assert len(keys) == len(set(keys))
    # Besides the settings: GPUCI_MOUNTS (the host's half of mounts), where each was set, the policy.
    resolved = {"host_mounts", "origins", "policy"}
    assert set(keys) == {f.name for f in fields(ProjectConfig)} - resolved == set(KINDS)


@pytest.mark.parametrize("command", ["run", "pipeline", "lint"])
def test_each_commands_flags_are_the_declared_ones_and_say_their_key(command: str) -> None:
    sub = next(a for a in parser()._actions if a.dest == "command").choices[command]  # type: ignore[union-attr]
    flags = {option: action for action in sub._actions for option in action.option_strings}
    for setting in SETTINGS:
        if setting.flag and command in setting.commands:
            assert f"[tool.gpuci] {setting.key}" in (flags[setting.flag].help or "")
        elif setting.flag:
            assert setting.flag not in flags or setting.key == "timeout"  # supervise's own --timeout aside


def test_a_flag_wins_over_the_pyproject_and_an_absent_one_does_not(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gpuci]\ngrace = 9\ntimeout = 120\nworkspace = "/w"\nexternal_scripts = ["ci/*.sh"]\n'
    )
    args = parser().parse_args(["run", "--platform", "cpu", "--area", "a", "--grace", "2", "--workspace", "/x"])
    config = config_with_flags(tmp_path, args)
    assert (config.grace, config.workspace, config.timeout) == (2.0, "/x", 120)
    lint = parser().parse_args(["lint", "--external-script", "jobs/*.sh", "--dependency-match-for", "a.yaml=prefix"])
    config = config_with_flags(tmp_path, lint)
    assert config.external_scripts == ("jobs/*.sh",) and config.dependency_match_for == {"a.yaml": "prefix"}
