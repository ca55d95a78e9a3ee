"""[tool.gpuci]: every key of its kind, or one error naming file, line and the kind wanted."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.declare.config import load_config
from harness.errors import UsageError


@pytest.mark.parametrize(
    ("table", "line", "words"),
    [
        ('workspace = "relative"\n', 3, "absolute path"),
        ("queues = 3\n", 3, "a table of strings"),
        ('run_all = "harness"\n', 3, "a list of strings"),
        ('mounts = ["nocolon"]\n', None, "SOURCE:TARGET"),
        ('worksapce = "/w"\n', 3, "unknown keys ['worksapce']"),
    ],
)
def test_a_value_of_the_wrong_kind_is_one_error_with_the_line(tmp_path: Path, table, line, words) -> None:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n[tool.gpuci]\n{table}')
    with pytest.raises(UsageError) as err:
        load_config(tmp_path)
    assert words in str(err.value) and "\n" not in str(err.value)
    if line:
        assert f"pyproject.toml:{line + 1}:" in str(err.value)


def test_bytes_that_are_not_utf8_are_said(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b"\x80[tool.gpuci]\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_config(tmp_path)
