"""Any input at all: exit 0, 1 or 2 with a one-paragraph message, never a traceback, in bounded time.

Declarations as any bytes, `[tool.gpuci]` as any table, any report to `repro` and `report`, odd
command lines to the commands that only read. Run in-process through `harness.cli.main` (what
`python -m harness` calls), so an exception that escapes it fails the test.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main

EXITS = {0, 1, 2}
# No deadline and no too_slow check: on a loaded machine (two suites on 2 cores) one example or the
# generation of 60 can take seconds; whether gpuci is quick is bench/'s question, not the fuzzer's.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


CREATED: list[Path] = []


@pytest.fixture(autouse=True, scope="module")
def _remove_projects() -> Iterator[None]:
    yield
    for path in CREATED:
        shutil.rmtree(path, ignore_errors=True)


def project(declaration: bytes | None = None, pyproject: str | bytes | None = None) -> Path:
    root = Path(tempfile.mkdtemp(prefix="gpuci-fuzz-"))
    CREATED.append(root)
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    if declaration is not None:
        (root / ".buildkite" / "test_areas" / "fuzz.yaml").write_bytes(declaration)
    if pyproject is not None:
        data = pyproject.encode() if isinstance(pyproject, str) else pyproject
        (root / "pyproject.toml").write_bytes(data)
    return root


def check(code: int, err: str) -> None:
    assert code in EXITS, err
    assert "Traceback" not in err
    if code == 2:
        lines = err.splitlines()
        errors = [line for line in lines if line.startswith("gpuci: error: ")]
        assert len(errors) == 1 or "usage:" in err, err  # one paragraph, after any warnings


YAML_TOKENS = st.sampled_from(
    [
        "group: g\n",
        "steps:\n",
        "- label: a\n",
        "  commands: [x]\n",
        "  command: y\n",
        "  depends_on: ~\n",
        "  num_gpus: -1\n",
        "  num_gpus: '2'\n",
        "  timeout_in_minutes: 0\n",
        "  env: {A: [1]}\n",
        "  shutdown_budget: {rocm: -6}\n",
        "  shutdown_budget: {cuda: x}\n",
        "  platforms: [cdua]\n",
        "  mirror: {amd: {device: 3}}\n",
        "  mirror: {amd: [1]}\n",
        "- wait\n",
        "- group: x\n  steps: 3\n",
        "a: &a [*a]\n",
        "<<: *nope\n",
        "x: &x {k: 1}\n",
        "  <<: *x\n",
        "- block: b\n",
        "  matrix: [1]\n",
        "  plugins: [{docker#v5: {}}]\n",
        "platforms: rocm\n",
        "steps: {}\n",
        "- 3\n",
        "- [1, 2]\n",
        "\t",
        "\x00",
        "\ufeff",
        "%YAML 1.1\n",
        "---\n",
        "... \n",
        "? [a]\n: b\n",
        "!!python/object:os.system x\n",
    ]
)


@FUZZ
@given(st.one_of(st.binary(max_size=400), st.lists(YAML_TOKENS, max_size=14).map(lambda t: "".join(t).encode())))
def test_any_bytes_as_a_declaration(data: bytes) -> None:
    root = project(declaration=data)
    for command in (["lint", "--root", str(root)], ["pipeline", "--root", str(root), "--all"]):
        check(*run(command))


TOML_VALUES = st.one_of(
    st.integers(-5, 5).map(str),
    st.booleans().map(lambda b: str(b).lower()),
    st.text(string.ascii_letters + "/:._~- ", max_size=20).map(json.dumps),
    st.lists(st.text(string.ascii_letters + "/:._", max_size=10).map(json.dumps), max_size=3).map(
        lambda xs: "[" + ", ".join(xs) + "]"
    ),
    st.just("{ cuda = 1 }"),
    st.just("[1, 2]"),
)
KEYS = st.sampled_from(
    [
        "workspace",
        "default_working_dir",
        "default_branch",
        "run_all",
        "queues",
        "registry",
        "registry_username_env",
        "registry_password_env",
        "requirements",
        "declarations",
        "mounts",
        "worksapce",
    ]
)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.dictionaries(KEYS, TOML_VALUES, max_size=5)))
def test_any_gpuci_table(table: bytes | dict[str, str]) -> None:
    text = table if isinstance(table, bytes) else "[tool.gpuci]\n" + "".join(f"{k} = {v}\n" for k, v in table.items())
    root = project(declaration=b"group: g\nsteps:\n- label: a\n  commands: [pytest]\n", pyproject=text)
    for command in (["lint", "--root", str(root)], ["pipeline", "--root", str(root), "--all"]):
        check(*run(command))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
REPORT_KEYS = ["run_id", "area", "step", "platform", "git", "image", "mode", "outcome", "timings", "spec", "vram"]


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.dictionaries(st.sampled_from(REPORT_KEYS), JSON, max_size=11)))
def test_any_report_to_repro_and_report(data: bytes | dict) -> None:
    root = project()
    run_dir = root / ".gpuci" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    (run_dir / "report.json").write_bytes(body)
    check(*run(["repro", str(run_dir / "report.json"), "--root", str(root)]))
    check(*run(["report", str(root / ".gpuci" / "runs"), "--html", str(root / "r.html"), "--no-pictures"]))


ARGS = st.lists(
    st.sampled_from(
        [
            "--root",
            "/nonexistent",
            ".",
            "--format",
            "json",
            "xml",
            "--all",
            "--base",
            "nope",
            "--changed-files",
            "--declarations",
            ":rocm",
            "x:cuda",
            "--workspace",
            "",
            "-h2",
            "--",
            "\x00",
            "é",
            "--include-optional",
        ]
    ),
    max_size=6,
)


@FUZZ
@given(st.sampled_from(["lint", "pipeline", "report", "repro"]), ARGS)
def test_odd_command_lines(command: str, args: list[str]) -> None:
    args = [a.replace("\x00", "") for a in args]
    here = os.getcwd()
    os.chdir(project())  # relative paths and defaults resolve in an empty project, not this checkout
    try:
        check(*run([command, *args]))
    finally:
        os.chdir(here)
