"""The project's extras and PEP 735 dependency groups, as its images install them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.declare.project_deps import declared_extras, declared_requirements
from harness.declare.pyproject import read_pyproject
from harness.errors import UsageError

PYPROJECT = """\
[project]
name = "lib"
version = "1"
[project.optional-dependencies]
test = ["pytest>=8", "hypothesis"]
[dependency-groups]
lint = ["ruff"]
dev = [{include-group = "lint"}, "pytest>=8", "numpy"]
loop = [{include-group = "loop"}]
[tool.gpuci]
extras = ["test"]
"""


def test_extras_and_groups_with_their_includes_each_once(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    lines = declared_requirements(tmp_path, read_pyproject(tmp_path), ("test",), ("dev",))
    assert lines == ["pytest>=8", "hypothesis", "ruff", "numpy"]


@pytest.mark.parametrize(
    ("extras", "groups", "words"),
    [
        (("tests",), (), "declared: test"),
        ((), ("docs",), "declared: dev, lint, loop"),
        ((), ("loop",), "includes itself"),
    ],
)
def test_a_name_that_is_not_declared_says_what_is(tmp_path: Path, extras, groups, words: str) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    with pytest.raises(UsageError) as err:
        declared_requirements(tmp_path, read_pyproject(tmp_path), extras, groups)
    assert words in str(err.value) and "pyproject.toml" in str(err.value)


def test_the_declared_lists_are_part_of_the_content_tag(tmp_path: Path) -> None:
    import shutil

    from harness.images.recipe import recipe_for
    from tests.conftest import ROOT

    shutil.copytree(ROOT / "containers", tmp_path / "containers")
    # Not installed itself: its metadata would be in the tag too, and this is about the lists alone.
    (tmp_path / "pyproject.toml").write_text(PYPROJECT + 'install = "none"\n')
    first = recipe_for(tmp_path, "cpu")
    assert first.declared_requirements == ("pytest>=8", "hypothesis")
    (tmp_path / "pyproject.toml").write_text(
        PYPROJECT.replace('"hypothesis"', '"hypothesis>=6"') + 'install = "none"\n'
    )
    assert recipe_for(tmp_path, "cpu").tag != first.tag


SETUP_CFG = """\
[metadata]
name = lib
[options.extras_require]
tests = pytest >= 4.6
develop = %(tests)s
\tpycodestyle
gmpy =
\tgmpy2>=2.1; platform_python_implementation!="PyPy"
"""


def test_a_setuptools_project_s_extras_come_from_setup_cfg_as_setuptools_reads_them(tmp_path: Path) -> None:
    # mpmath 1.3.0's shape: no [project] table at all, its extras in setup.cfg, one naming another.
    (tmp_path / "pyproject.toml").write_text('[tool.gpuci]\nextras = ["gmpy", "develop"]\n')
    (tmp_path / "setup.cfg").write_text(SETUP_CFG)
    assert declared_requirements(tmp_path, read_pyproject(tmp_path), ("gmpy", "develop"), ()) == [
        'gmpy2>=2.1; platform_python_implementation!="PyPy"',
        "pytest >= 4.6",
        "pycodestyle",
    ]
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)  # [project.optional-dependencies] first, then setup.cfg
    assert sorted(declared_extras(tmp_path)) == ["develop", "gmpy", "test", "tests"]
    with pytest.raises(UsageError) as err:
        declared_requirements(tmp_path, read_pyproject(tmp_path), ("docs",), ())
    assert "declared: develop, gmpy, test, tests" in str(err.value)


def test_a_setup_cfg_that_setuptools_could_not_read_is_named(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[options.extras_require]\ntests = %(nowhere)s\n")
    with pytest.raises(UsageError) as err:
        declared_requirements(tmp_path, read_pyproject(tmp_path), ("tests",), ())
    assert f"{tmp_path / 'setup.cfg'}: cannot read its [options.extras_require]" in str(err.value)
