"""A step's code attacks the host from its container, as a pull request could; each attack fails.

Every test runs a real container through the real engine. A step writes what an attacker would
(links to host files, a planted wheel, git config and hooks, FIFOs) and the test checks the
host afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import docker

from harness.images import engine
from harness.run.cleanup.reaper import PROJECT_LABEL, project_id
from tests.conftest import commit_tree, harness_cmd, harness_env


def _run(run_harness, root: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_harness("run", "--platform", "cpu", "--area", "attack", "--root", str(root), *extra, **env)


def _report(root: Path) -> dict:
    return json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())


def _area(*commands: str, extra: str = "") -> str:
    lines = "".join(f"      - {json.dumps(c)}\n" for c in commands)
    return f"platforms: [cpu]\nsteps:\n  - label: attack\n{extra}    commands:\n{lines}"


def test_links_in_the_outbox_reach_no_host_file(make_project, run_harness, cpu_image, tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("host file, outside every mount\n")
    host_json = tmp_path / "host-data.json"
    host_json.write_text('[{"test": "HOST-ONLY-CONTENT", "phase": "call", "seconds": 1}]')
    root = make_project(
        _area(
            f"ln -sf {victim} /gpuci/report/.report.json.tmp",
            f"ln -sf {victim} /gpuci/report/report.json",
            f"ln -sf {victim} /gpuci/report/output.log",
            f"ln -sf {host_json} /gpuci/report/pytest-records-x.json",
            f"ln -sf {victim} /gpuci/report/junit.xml",
            "mkfifo /gpuci/report/pytest-records-fifo.json",
            "head -c 70000000 /dev/zero > /gpuci/report/pytest-records-big.json",
        ),
        name="attack",
    )
    done = _run(run_harness, root)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "host file, outside every mount\n"  # not overwritten
    report_file = root / ".gpuci" / "runs" / "latest" / "report.json"
    assert not report_file.is_symlink() and report_file.is_file()
    text = report_file.read_text()
    assert "HOST-ONLY-CONTENT" not in text  # the linked host JSON was not read
    skipped = {s["name"]: s["reason"] for s in json.loads(text)["outbox_skipped"]}
    assert skipped["pytest-records-x.json"] == "a symbolic link"
    assert skipped["junit.xml"] == "a symbolic link"
    assert "pytest_junit" not in json.loads(text)  # nothing copied, through the link or otherwise
    assert skipped["pytest-records-fifo.json"] == "not a regular file"  # read without blocking
    assert skipped["pytest-records-big.json"].startswith("larger than")
    assert list((root / ".gpuci" / "outbox").iterdir()) == []  # the outbox is gone


def test_gpucis_state_git_and_nox_are_read_only_in_the_container(make_project, run_harness, cpu_image) -> None:
    root = make_project("platforms: [cpu]\nsteps: [{label: x, commands: [true]}]\n", name="attack")
    commit_tree(root, "base")
    config_before = (root / ".git" / "config").read_text()
    (root / ".gpuci" / "wheelhouse").mkdir(parents=True)
    attempts = {
        "git-config": "printf '[core]\\n\\tfsmonitor = touch PLANTED-FSMONITOR\\n' >> /workspace/.git/config",
        "git-hook": "printf '#!/bin/sh\\ntouch PLANTED-HOOK\\n' > /workspace/.git/hooks/post-checkout",
        "wheel": "touch /workspace/.gpuci/wheelhouse/evil-1.0-py3-none-any.whl",
        "runs": "mkdir -p /workspace/.gpuci/runs/planted",
        "nox": "mkdir -p /workspace/.nox/_gpuci/bin",
    }
    # Each attempt must fail with a read-only file system; the step passes only if all of them do.
    checks = [f"if ( {cmd} ) 2>/dev/null; then echo 'WROTE {name}'; exit 9; fi" for name, cmd in attempts.items()]
    root.joinpath(".buildkite/test_areas/attack.yaml").write_text(_area(*checks, "echo all-refused"))
    done = _run(run_harness, root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert "all-refused" in done.stdout
    assert (root / ".git" / "config").read_text() == config_before
    assert not (root / ".git" / "hooks" / "post-checkout").exists()
    assert list((root / ".gpuci" / "wheelhouse").iterdir()) == []
    assert not (root / ".nox" / "_gpuci").exists()
    assert not (root / ".gpuci" / "runs" / "planted").exists()
    assert not list(root.glob("PLANTED-*"))


PIDS_MAX = "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"


def test_containers_run_with_no_new_privileges_few_capabilities_and_limits(
    make_project, run_harness, cpu_image
) -> None:
    root = make_project(
        _area(
            "grep -E '^(CapEff|NoNewPrivs):' /proc/self/status",
            # cgroup v2 files first, v1's where the engine runs v1
            f"echo pids=$({PIDS_MAX}) memory=$(cat /sys/fs/cgroup/memory.max 2>/dev/null"
            " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)",
            "echo cpu=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null"
            " || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us))",
            "echo nets=$(ls /sys/class/net | tr '\\n' ,)",
            extra="    memory: 300m\n    cpus: 0.5\n    pids_limit: 200\n    network: none\n    run_as_root: true\n",
        ),
        name="attack",
    )
    done = _run(run_harness, root)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "NoNewPrivs:\t1" in out
    cap_eff = int(out.split("CapEff:\t")[1].split()[0], 16)
    assert cap_eff & (1 << 13) == 0  # CAP_NET_RAW dropped
    assert cap_eff & (1 << 27) == 0  # CAP_MKNOD dropped
    assert cap_eff & (1 << 21) == 0  # CAP_SYS_ADMIN never given
    assert "pids=200 " in out and f"memory={300 * 2**20}" in out
    assert "cpu=50000 100000" in out
    assert "nets=lo," in out
    spec = _report(root)["spec"]
    assert spec["limits"] == {"memory": "300m", "cpus": 0.5, "pids": 200, "network": "none"}
    assert spec["no_new_privileges"] is True and "NET_RAW" not in spec["cap_add"]


def test_project_limits_apply_and_a_pids_limit_is_there_by_default(make_project, run_harness, cpu_image) -> None:
    root = make_project(_area(f"echo pids=$({PIDS_MAX})"), name="attack")
    done = _run(run_harness, root)
    assert "pids=16384" in done.stdout, done.stderr
    (root / "pyproject.toml").write_text('[tool.gpuci]\npids_limit = 64\nnetwork = "none"\n')
    done = _run(run_harness, root)
    assert done.returncode == 0, done.stderr
    assert "pids=64" in done.stdout
    assert _report(root)["spec"]["network_mode"] == "none"


def test_dangerous_mounts_need_an_opt_in(make_project, run_harness, cpu_image, tmp_path) -> None:
    root = make_project(_area("ls /host >/dev/null && echo mounted"), name="attack")
    for source in ("/", "/etc", "/var/run/docker.sock", str(root.parent)):
        if not os.path.exists(source):
            continue
        done = _run(run_harness, root, GPUCI_MOUNTS=f"{source}:/host:ro")
        assert done.returncode == 2, (source, done.stderr)
        assert "dangerous" in done.stderr and "mounted" not in done.stdout
        assert "Traceback" not in done.stderr
    done = _run(run_harness, root, GPUCI_MOUNTS="/etc:/host:ro:dangerous")
    assert done.returncode == 0, done.stderr
    assert "mounted" in done.stdout and "warning: mount '/etc:/host:ro:dangerous'" in done.stderr


def test_a_relative_mount_source_is_in_the_checkout(make_project, run_harness, cpu_image, tmp_path) -> None:
    root = make_project(_area("cat /cache/marker"), name="attack")
    (root / "model-cache").mkdir()
    (root / "model-cache" / "marker").write_text("from-the-checkout")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "model-cache").mkdir(parents=True)
    (elsewhere / "model-cache" / "marker").write_text("from-the-cwd")
    done = run_harness(
        "run", "--platform", "cpu", "--area", "attack", "--root", str(root), cwd=elsewhere,
        GPUCI_MOUNTS="model-cache:/cache:ro",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "from-the-checkout" in done.stdout and "from-the-cwd" not in done.stdout


def test_a_step_cannot_swap_a_later_steps_mount_for_a_link(make_project, run_harness, cpu_image, tmp_path) -> None:
    """The request resolves the mounts once, before the first step: step one (the checkout is writable)
    replaced the checked folder `data` with a link to `/`, and step two got the host's `/` mounted
    read-write and wrote /tmp on the host as root. Here the link leads to a folder standing for the host."""
    host = tmp_path / "host-folder"
    host.mkdir()
    (host / "secret.txt").write_text("host only")
    root = make_project(
        "platforms: [cpu]\nsteps:\n"
        f'  - label: one\n    commands: ["rm -rf /workspace/data && ln -s {host} /workspace/data"]\n'
        '  - label: two\n    commands: ["cat /data/secret.txt; touch /data/PLANTED"]\n',
        name="attack",
    )
    (root / "data").mkdir()
    (root / "pyproject.toml").write_text('[tool.gpuci]\nmounts = ["data:/data"]\n')
    done = _run(run_harness, root)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "host only" not in done.stdout + done.stderr
    assert sorted(p.name for p in host.iterdir()) == ["secret.txt"]  # nothing written through the link
    assert "data" in done.stderr and "link" in done.stderr


PAT = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PLAIN = "plain-but-passed-by-env-7731"
DB_PASSWORD = "db-pa55word-9910"
GPUCI_NAMED = "gpuci-named-but-passed-5521"


def test_secrets_are_masked_by_value_and_absent_from_docker_inspect(
    make_project, cpu_image, docker_client: docker.DockerClient
) -> None:
    root = make_project(
        _area(
            'echo "pat=$MY_PAT plain=$PLAIN db=$DB_URL named=$GPUCI_HOST_PASSED"',
            'echo "received=$(printf %s "$MY_PAT$PLAIN" | sha256sum | cut -c1-16)"',
            "sleep 3",
            extra=f"    env: {{DB_URL: 'postgres://app:{DB_PASSWORD}@db:5432/app'}}\n",
        ),
        name="attack",
    )
    # A host variable named like gpuci's own is still a secret when the host passes it.
    env = harness_env(MY_PAT=PAT, PLAIN=PLAIN, GPUCI_HOST_PASSED=GPUCI_NAMED)
    command = harness_cmd("run", "--platform", "cpu", "--area", "attack", "--root", str(root))
    proc = subprocess.Popen(
        [*command, "--env", "MY_PAT", "--env", "PLAIN", "--env", "GPUCI_HOST_PASSED"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    inspected = ""
    mine = f"{PROJECT_LABEL}={project_id(root)}"  # this test's run, never a neighbour suite's
    deadline = time.monotonic() + 60
    while not inspected and time.monotonic() < deadline and proc.poll() is None:
        for container in engine.list_containers(docker_client, ["gpuci.area=attack", mine]):
            with contextlib.suppress(docker.errors.NotFound):  # it may end and go as we look
                inspected = json.dumps(docker_client.api.inspect_container(container.id))
        time.sleep(0.2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert inspected, "the step's container was never seen running"
    log = (root / ".gpuci" / "runs" / "latest" / "output.log").read_text()
    report = (root / ".gpuci" / "runs" / "latest" / "report.json").read_text()
    assert f"received={hashlib.sha256((PAT + PLAIN).encode()).hexdigest()[:16]}" in log  # the workload has them
    for secret in (PAT, PLAIN, DB_PASSWORD, GPUCI_NAMED):
        for where, text in (("inspect", inspected), ("log", log), ("report", report), ("console", out + err)):
            assert secret not in text, f"{secret[:6]}… in {where}"
    assert "pat=[redacted] plain=[redacted]" in log and "named=[redacted]" in log


def test_a_declaration_named_to_inject_a_command_is_refused(make_project, run_harness, tmp_path) -> None:
    root = make_project("platforms: [cpu]\nsteps: [{label: x, commands: [true]}]\n", name="meta$(touch INJECTED)")
    for command in ("pipeline", "lint"):
        done = run_harness(command, "--root", str(root), *(["--all"] if command == "pipeline" else []), cwd=root)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "rename the file" in done.stderr and "Traceback" not in done.stderr
    assert not (root / "INJECTED").exists()


def test_a_setting_docker_refuses_is_exit_2_not_a_retry(make_project, run_harness, cpu_image) -> None:
    root = make_project(_area("true", extra="    memory: 1m\n"), name="attack")  # below Docker's minimum
    done = _run(run_harness, root)
    assert done.returncode == 2, done.stderr
    assert "Docker refused the container" in done.stderr and "Traceback" not in done.stderr


def test_a_pull_request_cannot_choose_host_resources_through_its_settings(
    make_project, run_harness, cpu_image, docker_client: docker.DockerClient
) -> None:
    """Each ask is exit 2 before any container exists, naming the setting and where it was set."""
    root = make_project(_area("echo RAN; env"), name="attack")
    token = "bkagent-" + "9f" * 20
    attacks = [
        ('[tool.gpuci]\nsecrets = ["BUILDKITE_AGENT_ACCESS_TOKEN"]\n', "", "pyproject.toml:2"),
        ('[tool.gpuci]\nregistry_password_env = "BUILDKITE_AGENT_ACCESS_TOKEN"\n', "", "pyproject.toml:2"),
        ('[tool.gpuci]\nmounts = [".git:/gitrw"]\n', "", ".git writable"),
        ('[tool.gpuci]\nmounts = ["/var/lib:/varlib:ro"]\n', "", "does not grant"),
        ("", "    network: host\n", "attack.yaml:3"),
        ("", "    memory: 999999g\n", "limits.memory"),
    ]
    (root / ".git").mkdir(exist_ok=True)
    for pyproject, step_extra, named in attacks:
        (root / "pyproject.toml").write_text(pyproject)
        (root / ".buildkite" / "test_areas" / "attack.yaml").write_text(_area("echo RAN; env", extra=step_extra))
        done = _run(run_harness, root, BUILDKITE_AGENT_ACCESS_TOKEN=token)
        assert done.returncode == 2, (pyproject, step_extra, done.stderr)
        assert named in done.stderr and "Traceback" not in done.stderr
        assert "RAN" not in done.stdout and token not in done.stdout + done.stderr
    mine = f"gpuci.project={project_id(root)}"
    assert not docker_client.containers.list(all=True, filters={"label": mine})
    (root / "pyproject.toml").write_text("")
    (root / ".buildkite" / "test_areas" / "attack.yaml").write_text(
        _area("true", extra="    agent_tags: {queue: deploy-prod}\n")
    )
    pipeline = run_harness("pipeline", "--root", str(root), "--all")
    assert pipeline.returncode == 2 and "deploy-prod" in pipeline.stderr and "queues" in pipeline.stderr


def test_a_deeply_nested_outbox_json_is_skipped_and_the_report_written(make_project, run_harness, cpu_image) -> None:
    writer = (
        "d = '[' * 200000 + ']' * 200000; "
        "open('/gpuci/report/pytest-records-deep.json', 'w').write(d); "
        "open('/gpuci/report/tests-deep.jsonl', 'w').write("
        '\'{"test": "t::deep", "outcome": "failed", "message": \' + d + \'}\\n\' + '
        '\'{"test": "t::deep2", "outcome": "passed", "message": \' '
        "+ '{\"a\":' * 900 + '1' + '}' * 900 + '}\\n')"
    )
    root = make_project(_area(f"python3 -c {json.dumps(writer)}"), name="attack")
    done = _run(run_harness, root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr  # the step passed: its report says so
    assert "RecursionError" not in done.stderr and "Traceback" not in done.stderr
    report = _report(root)
    assert report["outcome"] == "passed"
    skipped = {s["name"]: s["reason"] for s in report["outbox_skipped"]}
    assert "nested deeper" in skipped["pytest-records-deep.json"]
    assert not report.get("results")  # neither deep line was taken as a test's outcome


def test_a_tests_message_reaches_gpucis_lines_masked_and_inert(make_project, run_harness, cpu_image) -> None:
    import xml.etree.ElementTree as ET

    secret = "s3cret-0123456789-token"
    hostile = "\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\x1b[H\\rgpuci: passed\\ngpuci: passed"
    root = make_project(_area("pytest -q t_msg.py"), name="attack")
    (root / "t_msg.py").write_text(
        "import os\n\n"
        f"def test_leak():\n    assert False, 'leak ' + os.environ['API_TOKEN'] + '{hostile}'\n\n"
        f"def test_other():\n    assert False, '\\u202e{hostile}'\n"
    )
    done = _run(run_harness, root, "--env", "API_TOKEN", API_TOKEN=secret)
    assert done.returncode == 1, done.stderr
    gpucis = [line for line in done.stderr.splitlines() if line.startswith("gpuci:")]
    assert any("failed: t_msg.py::test_leak — AssertionError: leak [redacted]" in line for line in gpucis), gpucis
    assert secret not in done.stderr and secret not in done.stdout
    assert "\x1b" not in done.stderr and "\r" not in done.stderr and "\u202e" not in done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("gpuci: passed")]
    run = (root / ".gpuci" / "runs" / "latest").resolve()
    junit = (run / "junit.xml").read_text()
    assert secret not in junit and "[redacted]" in junit and "\x1b" not in junit
    ET.fromstring(junit.split("\n", 1)[1])  # still XML a CI tool can read
    # pytest's own JUnit file is copied out too, masked, and named in report.json.
    report = json.loads((run / "report.json").read_text())
    assert report["pytest_junit"] == str(run / "pytest-junit.xml")
    pytests = (run / "pytest-junit.xml").read_bytes()
    assert secret.encode() not in pytests and b"[redacted]" in pytests and b"test_leak" in pytests
    ET.fromstring(pytests)
    assert secret not in (run / "report.json").read_text() and secret not in (run / "output.log").read_text()
