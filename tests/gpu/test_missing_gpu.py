"""A host without the platform's GPU: one paragraph naming the missing device and what runs here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.gpu.devices import missing_gpu


def test_a_present_driver_node_is_no_finding(tmp_path: Path) -> None:
    (tmp_path / "kfd").write_text("")
    assert missing_gpu("rocm", "nox -s cpu_x", dev=str(tmp_path)) is None
    assert missing_gpu("cpu", "nox -s cpu_x", dev=str(tmp_path)) is None


@pytest.mark.parametrize(("platform", "node", "vendor"), [("rocm", "kfd", "AMD"), ("cuda", "nvidiactl", "NVIDIA")])
def test_a_missing_driver_node_names_it_and_the_session_that_runs(tmp_path, platform, node, vendor) -> None:
    message = missing_gpu(platform, "nox -s cpu_sampler", dev=str(tmp_path))
    assert message is not None and "\n" not in message
    assert f"no {vendor} GPU" in message and f"{tmp_path}/{node}" in message
    assert "`nox -s cpu_sampler`" in message
    assert "nox -s" not in (missing_gpu(platform, None, dev=str(tmp_path)) or "")


@pytest.mark.skipif(os.path.exists("/dev/kfd"), reason="this host has an AMD GPU")
def test_a_rocm_session_on_a_host_without_an_amd_gpu_exits_75_with_the_paragraph(run_harness) -> None:
    done = run_harness("run", "--platform", "rocm", "--area", "sampler", "--no-container")
    assert done.returncode == 75
    assert "no AMD GPU: /dev/kfd" in done.stderr and "`nox -s cpu_sampler`" in done.stderr
    assert "amdsmi is not installed" not in done.stderr and "Traceback" not in done.stderr
