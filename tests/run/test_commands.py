"""`gpuci run` (harness/run/commands.py), end to end through the real Docker Engine on the cpu platform: each
step its own run and report, its exit code, its stop and cancel; its settings resolved once and handed on,
so that nothing reads them again, and a setting the command line gives reaches every stage (the image's
install as well as the mount)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from tests.conftest import ROOT, harness_cmd, harness_env
from tests.images.backend_projects import setup_py_project

AREA = """\
group: demo
platforms: [cpu]
steps:
  - label: pass
    commands:
      - "python3 -c 'import sys; print(\\"hello from\\", sys.version_info[:2])'"
      - echo token=$API_TOKEN
    env: {API_TOKEN: hunter2-secret-value}
  - label: fail
    optional: true
    commands: ["echo failing; exit 3"]
  - label: sleep
    optional: true
    commands: ["echo started; sleep 300"]
"""


def report_of(root: Path) -> dict:
    return json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())


def containers_of(client: docker.DockerClient, pid: int) -> list:
    # sparse: no per-container inspect, which races with the removal being tested
    return client.containers.list(all=True, sparse=True, filters={"label": f"gpuci.supervisor-pid={pid}"})


def test_a_passing_step_writes_its_report(make_project, run_harness, cpu_image, docker_client) -> None:
    root = make_project(AREA)
    done = run_harness("run", "--platform", "cpu", "--area", "demo", "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert "hello from (3, 11)" in done.stdout
    report = report_of(root)
    assert report["outcome"] == "passed" and report["gpuci_exit_code"] == 0
    assert report["image"]["tag"] == cpu_image.tag and report["image"]["built"] is False
    assert report["spec"]["labels"]["gpuci.run-id"] == report["run_id"]
    for phase in ("image_ensure_s", "start_s", "run_s", "remove_s", "total_s"):
        assert report["timings"][phase] >= 0
    assert report["vram"]["released"] is True
    # The secret reaches the workload but neither the report nor the log.
    text = (root / ".gpuci" / "runs" / "latest" / "report.json").read_text()
    log = (root / ".gpuci" / "runs" / "latest" / "output.log").read_text()
    assert "hunter2-secret-value" not in text + log + done.stdout
    assert "token=[redacted]" in log
    assert containers_of(docker_client, int(report["host"]["pid"])) == []


def test_a_failing_step_exits_1(make_project, run_harness, cpu_image) -> None:
    root = make_project(AREA)
    done = run_harness("run", "--platform", "cpu", "--area", "demo", "--step", "fail", "--root", str(root))
    assert done.returncode == 1, done.stderr
    assert report_of(root)["outcome"] == "failed" and report_of(root)["exit_code"] == 3


def test_a_step_past_its_timeout_is_stopped(make_project, run_harness, cpu_image, docker_client) -> None:
    root = make_project(AREA)
    done = run_harness(
        "run", "--platform", "cpu", "--area", "demo", "--step", "sleep", "--timeout", "2", "--grace", "30",
        "--root", str(root),
    )  # fmt: skip
    report = report_of(root)
    assert done.returncode == 1, done.stderr
    assert report["outcome"] == "timeout" and report["signals_sent"] == ["SIGTERM"]
    # The init forwards SIGTERM: the container stops inside the grace (a wide one: load may slow the
    # forwarding, never make it unneeded), with no SIGKILL.
    assert containers_of(docker_client, report["host"]["pid"]) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cancel_leaves_no_container(make_project, cpu_image, docker_client, signum) -> None:
    """As the Buildkite agent cancels (SIGTERM to the process group) or a developer hits Ctrl-C."""
    root = make_project(AREA)
    proc = subprocess.Popen(
        harness_cmd("run", "--platform", "cpu", "--area", "demo", "--step", "sleep", "--root", str(root)),
        env=harness_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while not [c for c in containers_of(docker_client, proc.pid) if c.attrs.get("State") == "running"]:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    cancelled = time.monotonic()
    os.killpg(proc.pid, signum)
    _out, err = proc.communicate(timeout=200)
    took = time.monotonic() - cancelled
    report = report_of(root)
    assert proc.returncode == 1, err
    assert report["outcome"] == "cancelled" and report["stop_reason"] == signal.Signals(signum).name
    assert containers_of(docker_client, proc.pid) == []
    # Ended by the cancel, not by the step's 300 s sleep. Fitting an agent's cancel grace is a property
    # of the grace it is given: tests/ci/test_buildkite.py.
    assert took < 150


def test_a_missing_docker_engine_exits_75(make_project, run_harness) -> None:
    root = make_project(AREA)
    done = run_harness(
        "run",
        "--platform",
        "cpu",
        "--area",
        "demo",
        "--root",
        str(root),
        DOCKER_HOST="unix:///nonexistent/docker.sock",
    )
    assert done.returncode == 75
    assert "cannot reach the Docker Engine" in done.stderr and "Traceback" not in done.stderr
    assert report_of(root)["outcome"] == "infrastructure"


def test_a_typo_in_a_declaration_exits_2_naming_file_and_line(make_project, run_harness) -> None:
    root = make_project("group: g\nsteps:\n  - label: a\n    comands: [pytest]\n")
    done = run_harness("run", "--platform", "cpu", "--area", "demo", "--root", str(root))
    assert done.returncode == 2
    assert "demo.yaml:4" in done.stderr and "did you mean 'commands'" in done.stderr
    assert "Traceback" not in done.stderr


def test_pytest_args_reach_pytest_in_the_container(run_harness, cpu_image, tmp_path) -> None:
    """The example area itself, with `-k topk` as `nox -s cpu_sampler -- -k topk` passes it."""
    done = run_harness(
        "run",
        "--platform",
        "cpu",
        "--area",
        "sampler",
        "--report-dir",
        str(tmp_path),
        "--",
        "-k",
        "topk",
        cwd=ROOT,
        GPUCI_SIM_GPUS=str(tmp_path / "sim"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 8 deselected" in done.stdout
    assert "test_topk_only_samples_the_k_best" in (tmp_path / "junit.xml").read_text()


def test_a_project_workspace_path_and_working_dir_are_honoured(make_project, run_harness, cpu_image) -> None:
    """A project whose CI mounts the checkout at /vllm-workspace and runs steps from tests/."""
    area = "platforms: [cpu]\nsteps:\n  - label: where\n    working_dir: /vllm-workspace/tests\n    commands: [pwd]\n"
    root = make_project(area, name="ws")
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[tool.gpuci]\nworkspace = "/vllm-workspace"\n')
    done = run_harness("run", "--platform", "cpu", "--area", "ws", "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("/vllm-workspace/tests")
    host = run_harness("run", "--platform", "cpu", "--area", "ws", "--root", str(root), "--no-container")
    assert host.returncode == 0 and host.stdout.strip().endswith(f"{root}/tests")


def test_project_mounts_reach_the_container_read_only(make_project, run_harness, cpu_image, tmp_path) -> None:
    """A toolchain or model cache the host provides, bound where the project's tests expect it."""
    cache = tmp_path / "models"
    cache.mkdir()
    (cache / "weights.txt").write_text("w0\n")
    area = "platforms: [cpu]\nsteps:\n  - label: m\n    commands: [cat /models/weights.txt, touch /models/x]\n"
    root = make_project(area, name="mnt")
    (root / "pyproject.toml").write_text(f'[tool.gpuci]\nmounts = ["{cache}:/models:ro"]\n')
    refused = run_harness("run", "--platform", "cpu", "--area", "mnt", "--root", str(root))
    assert refused.returncode == 2 and "does not grant" in refused.stderr  # a host folder: the host decides
    policy = tmp_path / "policy.toml"
    policy.write_text(f'mounts = ["{cache}"]\n')
    done = run_harness("run", "--platform", "cpu", "--area", "mnt", "--root", str(root), GPUCI_POLICY=str(policy))
    assert done.returncode == 1 and "w0" in done.stdout  # read, and the write refused
    assert "Read-only file system" in done.stdout + done.stderr
    assert not (cache / "x").exists()
    report = report_of(root)
    assert {"source": str(cache), "target": "/models", "read_only": True} in report["spec"]["mounts"]
    run = ("run", "--platform", "cpu", "--area", "mnt", "--root", str(root))
    missing = run_harness(*run, GPUCI_MOUNTS="/nope:/x", GPUCI_POLICY=str(policy))
    assert missing.returncode == 2 and "/nope does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = run_harness("run", "--platform", "cpu", "--area", "mnt", "--root", str(root), GPUCI_MOUNTS="rel")
    assert bad.returncode == 2 and "SOURCE:TARGET" in bad.stderr


def test_gpuci_network_none_runs_the_step_with_no_network(make_project, run_harness, cpu_image) -> None:
    """For engines with no bridge (and tests that must stay offline): only loopback inside."""
    area = "platforms: [cpu]\nsteps:\n  - label: net\n    commands: [ls /sys/class/net]\n"
    root = make_project(area, name="net")
    done = run_harness("run", "--platform", "cpu", "--area", "net", "--root", str(root), GPUCI_NETWORK="none")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["lo"]
    assert report_of(root)["spec"]["network_mode"] == "none"


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
