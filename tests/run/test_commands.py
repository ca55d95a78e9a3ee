"""`gpuci run`: its settings resolved once and handed on, so that nothing reads them again, and a
setting the command line gives reaches every stage (the image's install as well as the mount)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, harness_env
from tests.images.backend_projects import setup_py_project

# Runs `gpuci run` in this process with every open() of the host process counted by path: whoever
# opens pyproject.toml or the policy (any module, any reader) is counted, not one function.
COUNTING_RUN = """
import builtins, io, json, os, sys
watched = {os.path.realpath(p): name for name, p in json.loads(sys.argv[1]).items()}
counts = dict.fromkeys(watched.values(), 0)
real_os_open, real_io_open = os.open, io.open

def note(path):
    if isinstance(path, (str, bytes, os.PathLike)):
        name = watched.get(os.path.realpath(os.fsdecode(path)))
        if name:
            counts[name] += 1

def counting_os_open(path, *args, **kwargs):
    note(path)
    return real_os_open(path, *args, **kwargs)

def counting_io_open(file, *args, **kwargs):
    note(file)
    return real_io_open(file, *args, **kwargs)

os.open, io.open, builtins.open = counting_os_open, counting_io_open, counting_io_open
from harness.cli import main
try:
    code = main(sys.argv[3:])
finally:
    with real_io_open(sys.argv[2], "w") as out:
        json.dump(counts, out)
sys.exit(code)
"""


def test_one_run_reads_pyproject_once_and_the_policy_once(cpu_image, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[limits]\npids = 32768\n")
    watched = {"pyproject": str(ROOT / "pyproject.toml"), "policy": str(policy)}
    counts = tmp_path / "counts.json"
    argv = ["run", "--platform", "cpu", "--area", "sampler", "--root", str(ROOT), "--report-dir", str(tmp_path / "r")]
    done = subprocess.run(
        [sys.executable, "-c", COUNTING_RUN, json.dumps(watched), str(counts), *argv],
        cwd=tmp_path,
        env=harness_env(GPUCI_POLICY=str(policy), GPUCI_SIM_GPUS=str(tmp_path / "sim")),
        capture_output=True,
        text=True,
        timeout=600,
    )
    # The whole run happened (image, container, tests, report): 0 or 1 is the example area's own outcome,
    # which is not this test's question; 2, 3 or 75 would be a run that did not get that far.
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert "gpuci: tests:" in done.stderr and (tmp_path / "r" / "report.json").is_file()
    assert json.loads(counts.read_text()) == {"pyproject": 1, "policy": 1}


LEGACY_AREA = """\
platforms: [cpu]
steps:
  - label: where
    num_gpus: 0
    commands:
      - pwd
      - legacy-hello
      - cd / && env -u PYTHONPATH python3 -c "import legacy; print('imported', legacy.__file__)"
      - >-
        python3 -c "import importlib.metadata as m, json;
        print('installed at', json.loads(m.distribution('legacy').read_text('direct_url.json'))['url'])"
"""


def test_the_workspace_flag_moves_the_install_and_the_mount_together(run_harness, cpu_image, tmp_path: Path) -> None:
    """`--workspace /src`: the checkout is mounted at /src and the image's editable install points there
    (it stayed at /workspace while only the mount moved: the code imported was the image's stale copy)."""
    hello = "def hello():\n    print('hello from the checkout')\n"
    root = setup_py_project(tmp_path / "legacy", hello, LEGACY_AREA)
    done = run_harness(
        "run", "--platform", "cpu", "--area", "legacy", "--root", str(root), "--workspace", "/src", timeout=900
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "/src" in lines and "hello from the checkout" in lines
    assert "imported /src/legacy/__init__.py" in lines  # the editable install's path, with no PYTHONPATH
    assert "installed at file:///src" in lines
