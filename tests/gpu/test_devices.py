"""Device options per platform, with device nodes made for the test and passed through the real engine."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness.gpu.devices import HostPaths, container_devices
from harness.gpu.vram.base import Device

# Two AMD GPUs at 0000:c1:00.0 and 0000:e1:00.0 (render minors 128, 129), leased: the first.
MI300 = [
    Device(0, "0000:c1:00.0", "AMD Instinct MI300X", 1),
    Device(1, "0000:e1:00.0", "AMD Instinct MI300X", 1),
]


def no_runtimes() -> tuple[str, ...]:
    return ("runc",)


def location(bus: int) -> int:
    return bus << 8  # device 0, function 0


@pytest.fixture
def fake_host(tmp_path: Path) -> HostPaths:
    if os.geteuid() != 0:
        pytest.fail("making device nodes (mknod) needs root; CI runs as root")
    dev, sys = tmp_path / "dev", tmp_path / "sys"
    (dev / "dri").mkdir(parents=True)
    # Character devices with /dev/null's numbers, so opening them inside the container is harmless.
    for node in ("kfd", "dri/renderD128", "dri/renderD129", "nvidiactl", "nvidia-uvm", "nvidia0", "nvidia1"):
        os.mknod(dev / node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    topology = sys / "class/kfd/kfd/topology/nodes"
    for node, (bus, minor) in enumerate([(0, 0), (0xC1, 128), (0xE1, 129)]):
        (topology / str(node)).mkdir(parents=True)
        (topology / str(node) / "properties").write_text(
            f"cpu_cores_count {16 if minor == 0 else 0}\nlocation_id {location(bus)}\ndomain 0\n"
            f"drm_render_minor {minor}\n"
        )
    return HostPaths(dev=dev, sys=sys, cdi_dirs=(str(tmp_path / "cdi"),))


def test_amd_passes_kfd_and_only_the_leased_render_nodes(fake_host, cpu_image, docker_client) -> None:
    options = container_devices("rocm", MI300[:1], no_runtimes, paths=fake_host)
    assert [n.split(":")[1] for n in options.nodes] == ["/dev/kfd", "/dev/dri/renderD128"]
    assert options.env == {"HIP_VISIBLE_DEVICES": "0"}
    out = docker_client.containers.run(
        cpu_image.tag,
        ["sh", "-c", "ls -l /dev/kfd /dev/dri; head -c0 /dev/dri/renderD128 && echo opened"],
        devices=list(options.nodes),
        group_add=list(options.groups),
        remove=True,
    ).decode()
    assert "renderD128" in out and "renderD129" not in out and "opened" in out
    assert out.splitlines()[0].startswith("c")  # a character device inside the container


def test_nvidia_without_runtime_or_cdi_uses_raw_nodes(fake_host, cpu_image, docker_client) -> None:
    gpu = [Device(1, "GPU-1111", "NVIDIA H100", 1)]
    options = container_devices("cuda", gpu, runtimes=no_runtimes, paths=fake_host)
    assert options.route == "raw-nodes"
    assert [n.split(":")[1] for n in options.nodes] == ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia1"]
    out = docker_client.containers.run(cpu_image.tag, ["ls", "/dev"], devices=list(options.nodes), remove=True)
    assert b"nvidia1" in out and b"nvidia0" not in out


def test_nvidia_prefers_the_runtime_then_cdi(fake_host, tmp_path) -> None:
    gpu = [Device(0, "GPU-2222", "NVIDIA H100", 1)]
    assert container_devices("cuda", gpu, runtimes=lambda: ("runc", "nvidia"), paths=fake_host).route == "gpu-request"
    (tmp_path / "cdi").mkdir()
    (tmp_path / "cdi" / "nvidia.yaml").write_text("kind: nvidia.com/gpu\ndevices:\n- name: GPU-2222\n")
    options = container_devices("cuda", gpu, runtimes=no_runtimes, paths=fake_host)
    assert options.route == "cdi" and options.requests[0].device_ids == ("nvidia.com/gpu=GPU-2222",)


def test_cpu_passes_nothing() -> None:
    assert container_devices("cpu", [], no_runtimes).nodes == ()
