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


def test_run_settings_come_from_tool_gpuci_too(tmp_path, monkeypatch) -> None:
    from harness.declare.config import load_config

    # secrets name what the host allows
    (tmp_path.parent / "policy.toml").write_text('env = ["HF_TOKEN"]\n[limits]\ncpus = 4\n')
    monkeypatch.setenv("GPUCI_POLICY", str(tmp_path.parent / "policy.toml"))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gpuci]\ntimeout = 900\ngrace = 2.5\nlease_timeout = 30\nca_bundle = "certs/corp.pem"\n'
        'memory = "16g"\ncpus = 4\npids_limit = 2048\nnetwork = "none"\nsecrets = ["HF_TOKEN"]\n'
    )
    config = load_config(tmp_path)
    assert (config.timeout, config.grace, config.lease_timeout, config.ca_bundle) == (
        900.0,
        2.5,
        30.0,
        "certs/corp.pem",
    )
    assert (config.memory, config.cpus, config.pids_limit, config.network) == ("16g", 4.0, 2048, "none")
    assert config.secrets == ("HF_TOKEN",)


def test_a_limit_of_the_wrong_form_names_the_line(tmp_path) -> None:
    import pytest

    from harness.declare.config import load_config
    from harness.errors import UsageError

    (tmp_path / "pyproject.toml").write_text('[tool.gpuci]\nworkspace = "/w"\nmemory = "lots"\n')
    with pytest.raises(UsageError) as err:
        load_config(tmp_path)
    assert "pyproject.toml:3" in str(err.value) and "Docker's form" in str(err.value)


def test_files_the_config_names_must_be_in_the_checkout(tmp_path) -> None:
    """The setting is the pull request's and the host reads the file: no host file through it."""
    import pytest

    from harness.declare.config import in_checkout
    from harness.errors import UsageError

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (tmp_path / "host-secret").write_text("root:x:0:0")
    (checkout / "linked.txt").symlink_to(tmp_path / "host-secret")
    (checkout / "reqs.txt").write_text("six\n")
    assert in_checkout(checkout, "reqs.txt", "requirements") == checkout / "reqs.txt"
    for name in ("../host-secret", "linked.txt", "/etc/passwd"):
        with pytest.raises(UsageError) as err:
            in_checkout(checkout, name, "ca_bundle")
        assert "outside the checkout" in str(err.value) and "root:x" not in str(err.value)


def test_a_command_with_no_project_resolves_flags_variables_and_defaults_only(tmp_path, monkeypatch) -> None:
    """`supervise` runs any command: the same precedence, with no [tool.gpuci] read at all."""
    from harness.declare.config import host_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.gpuci]\ngrace = 9\n")  # not read
    assert host_config({}, {}).grace == 5.0
    assert host_config({}, {"GPUCI_GRACE": "2"}).grace == 2.0
    assert host_config({"grace": 1.5}, {"GPUCI_GRACE": "2"}).grace == 1.5


@pytest.mark.parametrize("workspace", ["/../../../../../../../../etc", "/w/../../tmp", "/w/./x", "//w", "/"])
def test_a_workspace_that_climbs_out_is_refused(tmp_path: Path, workspace: str) -> None:
    """The workspace is a path in containers, but the docker-loaded layer makes it a host folder too
    (the build folder / workspace): `/../../…/tmp/hx/escape-target` had gpuci copy the checkout's files into
    that host folder and mount it read-write into the project's install container (`/../…/etc` would
    have put the checkout's `cron.d/…` in the host's /etc)."""
    (tmp_path / "pyproject.toml").write_text(f'[tool.gpuci]\nworkspace = "{workspace}"\n')
    with pytest.raises(UsageError, match=r"pyproject\.toml:2.*workspace.*no '\.' or '\.\.' part"):
        load_config(tmp_path)
