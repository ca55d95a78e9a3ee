"""The settings' schema and README table are made from their declaration, and kept current."""

from __future__ import annotations

import sys
from pathlib import Path

import jsonschema
import pytest

from harness.declare.settings import SETTINGS
from harness.declare.settings_doc import README, SCHEMA_PATH, json_schema, main, markdown_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def test_the_shipped_schema_and_readme_table_are_current() -> None:
    assert main([]) == 0, "run `python -m harness.declare.settings_doc --write`"
    assert markdown_table() in README.read_text()
    for setting in SETTINGS:
        assert f"| `{setting.key}` |" in markdown_table()


def test_the_schema_takes_what_the_loader_takes_and_refuses_what_it_refuses(tmp_path: Path) -> None:
    from harness.declare.config import load_config
    from harness.errors import UsageError

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    good = '[tool.gpuci]\nworkspace = "/w"\npython = ["3.13"]\nmemory = "16g"\nsystem_packages = ["libfoo-dev"]\n'
    bad = ['[tool.gpuci]\nworkspace = "relative"\n', "[tool.gpuci]\nnope = 1\n", "[tool.gpuci]\ncpus = 0\n"]
    for text, valid in [(good, True), *((b, False) for b in bad)]:
        (tmp_path / "pyproject.toml").write_text(text)
        section = tomllib.loads(text)["tool"]["gpuci"]
        assert jsonschema.Draft202012Validator(schema).is_valid(section) is valid, text
        if valid:
            load_config(tmp_path, for_host=False)
        else:
            with pytest.raises(UsageError):
                load_config(tmp_path, for_host=False)


def test_the_schema_file_is_json_an_editor_can_read() -> None:
    import json

    assert json.loads(SCHEMA_PATH.read_text())["properties"].keys() == {s.key for s in SETTINGS}
