"""The host policy: the project asks, the host allows. Each guarantee attacked as a pull request would."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.declare.areas import load_area
from harness.declare.config import load_config
from harness.declare.policy import HostPolicy, load_policy
from harness.declare.within_policy import check_areas
from harness.errors import UsageError


def _project(tmp_path: Path, gpuci: str) -> Path:
    root = tmp_path / "checkout"
    root.mkdir(exist_ok=True)
    (root / "pyproject.toml").write_text(f"[project]\nname = 'x'\n\n[tool.gpuci]\n{gpuci}")
    return root


def _policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "agent" / "policy.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    monkeypatch.setenv("GPUCI_POLICY", str(path))
    return path


@pytest.fixture(autouse=True)
def no_host_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUCI_POLICY", raising=False)
    monkeypatch.delenv("GPUCI_REGISTRY", raising=False)
    monkeypatch.delenv("GPUCI_MOUNTS", raising=False)


@pytest.mark.parametrize(
    ("gpuci", "line", "named"),
    [
        ('secrets = ["BUILDKITE_AGENT_ACCESS_TOKEN"]\n', 5, "BUILDKITE_AGENT_ACCESS_TOKEN"),
        ('registry = "127.0.0.1:5000/steal"\n', 5, "registries"),
        ('registry_password_env = "BUILDKITE_AGENT_ACCESS_TOKEN"\n', 5, "host's to set"),
        ('registry_username_env = "USER"\n', 5, "host's to set"),
        ("allow_dangerous_mounts = true\n", 5, "host's to set"),
        ('network = "host"\n', 5, "networks"),
        ("pids_limit = 4194304\n", 5, "limits.pids"),
        ('memory = "999999g"\n', 5, "limits.memory"),
        ("cpus = 100000\n", 5, "limits.cpus"),
        # The janitor waits the grace between SIGTERM and SIGKILL once the supervisor is gone: a step that
        # traps SIGTERM would outlive its supervisor by this long (a day here).
        ("grace = 100000\n", 5, "limits.grace"),
        ('mounts = ["/var/lib:/x:ro:dangerous"]\n', 5, "dangerous"),
        ('workspace = "/w"\n[tool.gpuci.queues]\ncuda = "deploy-prod"\n', 6, "deploy-prod"),
    ],
)
def test_a_project_asking_beyond_the_default_policy_is_refused_naming_setting_line_and_rule(
    tmp_path: Path, gpuci: str, line: int, named: str
) -> None:
    root = _project(tmp_path, gpuci)
    with pytest.raises(UsageError) as err:
        load_config(root)
    message = str(err.value)
    assert f"pyproject.toml:{line}:" in message and named in message
    assert err.value.exit_code == 2


def test_what_the_policy_grants_the_project_may_ask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _policy(
        tmp_path,
        monkeypatch,
        'env = ["HF_TOKEN"]\nnetworks = ["bridge"]\nqueues_allowed = ["gpu-h100"]\n'
        '[limits]\nmemory = "32g"\ncpus = 8\npids = 4096\ngrace = 120\n'
        '[queues]\ncuda = "gpu"\n"*" = "cpu-pool"\n'
        '[registries."127.0.0.1:5000/ci"]\nusername_env = "REG_USER"\npassword_env = "REG_PASS"\n',
    )
    root = _project(
        tmp_path,
        'secrets = ["HF_TOKEN"]\nnetwork = "bridge"\nmemory = "16g"\ncpus = 8\npids_limit = 4096\ngrace = 90\n'
        'registry = "127.0.0.1:5000/ci"\n[tool.gpuci.queues]\nh100 = "gpu-h100"\n',
    )
    config = load_config(root)
    assert config.secrets == ("HF_TOKEN",) and config.network == "bridge" and config.grace == 90
    assert config.queue_for("h100", "cuda") == "gpu-h100"  # the project's ask, allowed
    assert config.queue_for(None, "cuda") == "gpu"  # the host's queue for the platform
    assert config.queue_for(None, "cpu") == "cpu-pool"  # the host's "*"
    # A platform gpuci does not know (a vendor registered later, a typo): the host's "*", never a KeyError.
    assert config.queue_for(None, "no-such-platform") == "cpu-pool"
    from harness.images.registry import registry_from

    registry = registry_from(config, {"REG_USER": "u", "REG_PASS": "p"})
    assert registry is not None and (registry.username, registry.password) == ("u", "p")


def test_without_a_policy_every_job_asks_for_the_default_queue(tmp_path: Path) -> None:
    config = load_config(_project(tmp_path, ""))
    asked = [(None, "cpu"), ("h100", "cuda"), (None, "rocm"), (None, "no-such-platform"), ("x", "")]
    assert {config.queue_for(d, p) for d, p in asked} == {"default"}


def test_the_agents_environment_is_the_hosts_word(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCI_REGISTRY", "127.0.0.1:5000/agents")
    config = load_config(_project(tmp_path, 'registry = "evil.example.com/x"\n'))
    assert config.registry == "127.0.0.1:5000/agents"  # the host's wins, and needs no grant


def test_a_policy_inside_the_checkout_is_the_pull_requests_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path, 'secrets = ["HF_TOKEN"]\n')
    (root / "policy.toml").write_text('env = ["HF_TOKEN"]\n')
    monkeypatch.setenv("GPUCI_POLICY", str(root / "policy.toml"))
    with pytest.raises(UsageError, match="inside the checkout"):
        load_config(root)
    (tmp_path / "elsewhere.toml").symlink_to(root / "policy.toml")  # a link into it is no better
    monkeypatch.setenv("GPUCI_POLICY", str(tmp_path / "elsewhere.toml"))
    with pytest.raises(UsageError, match="inside the checkout"):
        load_config(root)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("nope = 1\n", "unknown keys"),
        ("env = 3\n", "env must be"),
        ('env = ["A B"]\n', "env must be"),
        ('[limits]\nmemory = "lots"\n', "limits"),
        ('[registries."r:5000/x"]\nusername_env = "U"\n', "registries"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_a_bad_policy_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, named: str
) -> None:
    path = _policy(tmp_path, monkeypatch, text)
    with pytest.raises(UsageError) as err:
        load_policy()
    assert named in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_missing_or_huge_policy_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCI_POLICY", str(tmp_path / "missing.toml"))
    with pytest.raises(UsageError, match="cannot be read"):
        load_policy()
    _policy(tmp_path, monkeypatch, "# " + "x" * (2 << 20))
    with pytest.raises(UsageError, match="KiB"):
        load_policy()


def test_a_steps_own_limits_network_and_queue_are_asks_too(tmp_path: Path) -> None:
    area = tmp_path / "a.yaml"
    for extra, named in [
        ("    network: host\n", "networks"),
        ("    memory: 999999g\n", "limits.memory"),
        ("    pids_limit: 4194304\n", "limits.pids"),
        ("    agent_tags: {queue: deploy}\n", "deploy"),
    ]:
        area.write_text(f"steps:\n  - label: s\n    commands: [pytest]\n{extra}")
        with pytest.raises(UsageError) as err:
            check_areas(HostPolicy(), [load_area(area)])
        assert f"{area}:2: step 's'" in str(err.value) and named in str(err.value)
    area.write_text("steps:\n  - label: s\n    commands: [pytest]\n    network: none\n    memory: 1g\n")
    check_areas(HostPolicy(), [load_area(area)])  # less than the default is always allowed


def test_held_out_variants_a_hostile_review_found(tmp_path: Path) -> None:
    """memory 0 (Docker: no limit), units read as Docker reads them, nan CPUs, the default queue where
    the host's fallback is another."""
    from harness.declare.policy import _parse

    capped = _parse({"limits": {"memory": "16GiB"}, "queues": {"*": "pr-sandbox"}}, "test policy")
    area = tmp_path / "a.yaml"
    for extra, named in [
        ('    memory: "0"\n', "no limit"),
        ("    memory: 17g\n", "limits.memory"),  # 17 GiB to Docker, over a 16 GiB cap
        ("    agent_tags: {queue: default}\n", "default"),
    ]:
        area.write_text(f"steps:\n  - label: s\n    commands: [pytest]\n{extra}")
        with pytest.raises(UsageError) as err:
            check_areas(capped, [load_area(area)])
        assert named in str(err.value)
    area.write_text(
        "steps:\n  - label: s\n    commands: [pytest]\n    memory: 16g\n    agent_tags: {queue: pr-sandbox}\n"
    )
    check_areas(capped, [load_area(area)])
    area.write_text("steps:\n  - label: s\n    commands: [pytest]\n    cpus: .nan\n")
    with pytest.raises(UsageError, match="greater than 0"):
        load_area(area)
