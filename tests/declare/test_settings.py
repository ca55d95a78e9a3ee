"""Each setting is declared once; the config loader, the environment variables and the command line
are built from that, so a declared setting arrives from every source with no other edit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.arguments import parser
from harness.declare import settings
from harness.declare.config import config_fields, config_with_flags, load_config
from harness.declare.precedence import resolve
from harness.declare.settings import SETTINGS, Setting, from_flags
from harness.errors import UsageError

# Per kind: a value as [tool.gpuci] writes it, as a GPUCI_<KEY> variable writes it, and as the config keeps it.
SAMPLES: dict[str, tuple[Any, str, Any]] = {
    "path": ("/w2", "/w2", "/w2"),
    "str": ("x1", "x1", "x1"),
    "list": (["a", "b"], "a,b", ("a", "b")),
    "table": ({"cpu": "q1"}, "cpu=q1", {"cpu": "q1"}),
    "match": ("prefix", "prefix", "prefix"),
    "modes": ({"a.yaml": "prefix"}, "a.yaml=prefix", {"a.yaml": "prefix"}),
    "install": ("none", "none", "none"),
    "pythons": (["3.13"], "3.13", ("3.13",)),
    "size": ("2g", "2g", "2g"),
    "number": (7.5, "7.5", 7.5),
    "count": (77, "77", 77),
    "bool": (True, "true", True),
    "registry": ("reg.example:5000/ci/", "reg.example:5000/ci/", "reg.example:5000/ci"),
    "mounts": (["cache:/cache:ro"], "cache:/cache:ro", ("cache:/cache:ro",)),
    "packages": (["libfoo-dev"], "libfoo-dev", {"all": ("libfoo-dev",)}),
}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # strings, lists of strings, numbers and true are TOML as JSON writes them


def test_every_tool_gpuci_key_is_one_declared_setting_and_one_field() -> None:
    keys = [s.key for s in SETTINGS]
    assert len(keys) == len(set(keys))
    assert set(SAMPLES) >= {s.kind for s in SETTINGS}, "a new kind needs a sample here"
    # Besides the settings' own: the fields the host's variables fill beside the project's (GPUCI_MOUNTS).
    assert config_fields() == set(keys) | {s.env_beside for s in SETTINGS if s.env_beside}


def test_every_setting_arrives_from_tool_gpuci(tmp_path: Path) -> None:
    project = [s for s in SETTINGS if s.owner == "project"]
    (tmp_path / "pyproject.toml").write_text(
        "[tool.gpuci]\n" + "".join(f"{s.key} = {_toml(SAMPLES[s.kind][0])}\n" for s in project)
    )
    config = load_config(tmp_path, for_host=False, environ={})
    for setting in project:
        assert getattr(config, setting.key) == SAMPLES[setting.kind][2], setting.key
        assert config.origins[setting.key].endswith(f"pyproject.toml:{project.index(setting) + 2}")


def test_every_setting_arrives_from_its_variable_and_owner_host_ones_too(tmp_path: Path) -> None:
    environ = {s.env: SAMPLES[s.kind][1] for s in SETTINGS}
    config = load_config(tmp_path, for_host=False, environ=environ)
    for setting in SETTINGS:
        field = setting.env_beside or setting.key
        assert getattr(config, field) == SAMPLES[setting.kind][2], setting.env
        assert setting.env == "GPUCI_" + setting.key.upper()
    assert config.origins == {}  # all the host's word: nothing for the policy to hold against the project


def test_every_flag_arrives_for_each_command_that_takes_it(tmp_path: Path) -> None:
    needed = {"run": ["--platform", "cpu", "--area", "a"], "repro": ["report.json"], "supervise": ["--", "true"]}
    for setting in (s for s in SETTINGS if s.flag):
        listed = setting.kind == "list"  # a repeatable flag: one entry a time
        value, wanted = ("a", ("a",)) if listed else (SAMPLES[setting.kind][1], SAMPLES[setting.kind][2])
        for command in setting.commands:
            # The flag first: supervise's command after -- takes the rest of the line.
            argv = [command, setting.flag, value, *needed.get(command, [])]
            config = load_config(tmp_path, for_host=False, flags=from_flags(parser().parse_args(argv)), environ={})
            assert getattr(config, setting.key) == wanted, (command, setting.flag)


def test_a_newly_declared_setting_arrives_from_every_source_and_cannot_go_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The declaration alone gives the flag, the variable and the key; a config with no field for it
    stops load_config, so the setting is never silently ignored."""
    new = Setting("brand_new", "number", "a setting added for this test", 3.0, "--brand-new", ("run",))
    monkeypatch.setattr(settings, "SETTINGS", (*SETTINGS, new))
    parser.cache_clear()  # one parser a process: this one is made with the new declaration
    try:
        args = parser().parse_args(["run", "--platform", "cpu", "--area", "a", "--brand-new", "2"])
        run = next(a for a in parser()._actions if a.dest == "command").choices["run"]  # type: ignore[union-attr]
        assert "GPUCI_BRAND_NEW" in next(a.help for a in run._actions if "--brand-new" in a.option_strings)
    finally:
        parser.cache_clear()  # the next test's parser knows no brand_new
    sources = {
        "flag": (from_flags(args), {}, {}),
        "variable": ({}, {"GPUCI_BRAND_NEW": "4"}, {}),
        "project": ({}, {}, {"brand_new": 5}),
        "default": ({}, {}, {}),
    }
    got = {
        name: resolve(flags, environ, project, {"brand_new": "pyproject.toml:2"}, settings.SETTINGS).values["brand_new"]
        for name, (flags, environ, project) in sources.items()
    }
    assert got == {"flag": 2.0, "variable": 4.0, "project": 5.0, "default": 3.0}
    (tmp_path / "pyproject.toml").write_text("[tool.gpuci]\nbrand_new = 5\n")
    with pytest.raises(RuntimeError, match=r"\['brand_new'\] are declared but ProjectConfig has no field"):
        load_config(tmp_path, for_host=False)


def test_precedence_is_flag_then_variable_then_project_then_default(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.gpuci]\ngrace = 9\n")
    run = ["run", "--platform", "cpu", "--area", "a"]
    flag = from_flags(parser().parse_args([*run, "--grace", "2"]))
    assert load_config(tmp_path, flags=flag, environ={"GPUCI_GRACE": "4"}).grace == 2.0
    by_variable = load_config(tmp_path, environ={"GPUCI_GRACE": "4"})
    assert by_variable.grace == 4.0 and not by_variable.set_by_project("grace")
    by_project = load_config(tmp_path, environ={})
    assert by_project.grace == 9.0 and by_project.set_by_project("grace")
    (tmp_path / "pyproject.toml").write_text("[tool.gpuci]\n")
    assert load_config(tmp_path, environ={}).grace == settings.default("grace") == 5.0


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


@pytest.mark.parametrize(
    ("variable", "text", "words"),
    [
        ("GPUCI_GRACE", "soon", "GPUCI_GRACE must be a number greater than 0, not 'soon'; fix or unset GPUCI_GRACE."),
        ("GPUCI_PIDS_LIMIT", "-3", "GPUCI_PIDS_LIMIT must be a whole number greater than 0"),
        ("GPUCI_WORKSPACE", "rel", "GPUCI_WORKSPACE must be an absolute path"),
        ("GPUCI_MOUNTS", "nocolon", "GPUCI_MOUNTS entry 'nocolon' is not SOURCE:TARGET"),
        ("GPUCI_REGISTRY", "https://r.example", "GPUCI_REGISTRY must be HOST[:PORT][/PATH]"),
        ("GPUCI_QUEUES", "cpu", "GPUCI_QUEUES must be a table of strings"),
    ],
)
def test_a_variable_of_the_wrong_kind_is_one_paragraph_naming_it(tmp_path: Path, variable, text, words) -> None:
    with pytest.raises(UsageError) as err:
        load_config(tmp_path, environ={variable: text})
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_variable_is_the_hosts_word_and_the_project_stays_within_the_policy(tmp_path: Path, monkeypatch) -> None:
    """GPUCI_NETWORK is set by whoever runs gpuci (the agent's hooks), as a flag is: not the pull
    request's. The same value in [tool.gpuci] is the project's ask, which the default policy refuses."""
    monkeypatch.delenv("GPUCI_POLICY", raising=False)
    (tmp_path / "pyproject.toml").write_text('[tool.gpuci]\nnetwork = "host"\n')
    with pytest.raises(UsageError, match=r"pyproject.toml:2: .*network 'host'.*policy"):
        load_config(tmp_path, environ={})
    assert load_config(tmp_path, environ={"GPUCI_NETWORK": "host"}).network == "host"
    (tmp_path / "pyproject.toml").write_text("[tool.gpuci]\nallow_dangerous_mounts = true\n")
    with pytest.raises(UsageError, match="is the host's to set, never the project's"):
        load_config(tmp_path, environ={})
    by_host = load_config(tmp_path.parent, environ={"GPUCI_ALLOW_DANGEROUS_MOUNTS": "1"})
    assert by_host.policy.allow_dangerous_mounts


# Numbers that look like a setting's default but are another thing: a test server's own grace, the
# grace for a run's leftovers, the policy's cap on pids, the bounds on image_timeout and lease_timeout.
NOT_SETTINGS = {
    "SERVER_GRACE_S": {10.0},
    "LEFTOVER_GRACE_S": {1.0},
    "DEFAULT_MAX_PIDS": {32768},
    "DEFAULT_MAX_GRACE_S": {60.0},  # the host policy's cap on a project's grace, not its default
    "IMAGE_TIMEOUT_MAX_S": {3600.0},
    "LEASE_TIMEOUT_MAX_S": {3600.0},
}
LOOKS_LIKE_A_SETTING = re.compile(r"(?i)grace|vram_timeout|guard_timeout|lease_timeout|image_timeout|pids")


def test_defaults_are_written_once() -> None:
    """The 5 s grace, the 60 s VRAM wait, the 600 s lease wait, the 1200 s image wait and the 16384
    pids are numbers of the declarations only: a default, field or constant of that name anywhere
    else in harness/ that is a number literal fails here; the modules that need one take it from
    harness.declare.settings (the stop's DEFAULT_*_S, the plugin, spec, options)."""
    import ast

    from harness.declare.stop_policy import StopPolicy
    from harness.run.options import RunOptions

    harness = Path(settings.__file__).resolve().parents[1]
    written = []
    for path in sorted(harness.rglob("*.py")):
        if path == Path(settings.__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            pairs: list[tuple[str, ast.AST | None]] = []
            if isinstance(node, ast.Assign):
                pairs = [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                pairs = [(node.target.id, node.value)]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = [*node.args.posonlyargs, *node.args.args]
                pairs = list(
                    zip([a.arg for a in args[len(args) - len(node.args.defaults) :]], node.args.defaults, strict=True)
                )
                pairs += [(a.arg, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)]
            for name, value in pairs:
                if not (isinstance(value, ast.Constant) and isinstance(value.value, (int, float))):
                    continue
                if LOOKS_LIKE_A_SETTING.search(name) and value.value not in NOT_SETTINGS.get(name, set()):
                    written.append(f"{path.relative_to(harness.parent)}:{node.lineno} {name} = {value.value}")
    assert not written, f"defaults written outside harness/declare/settings.py: {written}"
    assert StopPolicy().grace_s == RunOptions(Path("."), "cpu").config.grace == settings.default("grace") == 5.0
    assert StopPolicy().vram_timeout_s == settings.default("vram_timeout") == 60.0
    assert RunOptions(Path("."), "cpu").config.lease_timeout == settings.default("lease_timeout") == 600.0
