"""Secrets reach the container through a private file its shell sources, not its configuration."""

from __future__ import annotations

import os
import stat
import subprocess

from harness.run.plan import split_env
from harness.run.secrets import remove_secrets, write_secrets


def test_passed_named_and_shaped_variables_go_to_the_file() -> None:
    env = {
        "PLAIN": "x",
        "PASSED": "looks-innocent",
        "HF_TOKEN": "t",
        "DB_URL": "postgres://u:pw@db/x",
        "GPUCI_RUN_ID": "r",
    }
    public, secret = split_env(env, {"PASSED"})
    assert public == {"PLAIN": "x", "GPUCI_RUN_ID": "r"}
    assert secret == {"PASSED": "looks-innocent", "HF_TOKEN": "t", "DB_URL": "postgres://u:pw@db/x"}


def test_a_passed_variable_named_like_gpucis_own_is_a_secret() -> None:
    public, secret = split_env({"GPUCI_RUN_ID": "r", "GPUCI_HOST_PASSED": "v"}, {"GPUCI_HOST_PASSED"})
    assert public == {"GPUCI_RUN_ID": "r"} and secret == {"GPUCI_HOST_PASSED": "v"}


def test_the_file_is_private_and_gives_back_the_exact_values() -> None:
    tricky = 'it\'s $(not run) `neither` "quoted"\nsecond line'
    folder = write_secrets({"ODD": tricky})
    try:
        path = folder / "env"
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
        out = subprocess.run(["bash", "-ec", f'. {path}; printf %s "$ODD"'], capture_output=True, text=True)
        assert out.stdout == tricky
    finally:
        remove_secrets(folder)
    assert not folder.exists()
