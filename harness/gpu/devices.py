"""Leased GPUs as a container's device options, and the host's missing GPU, by the platform's vendor
(each vendor's own rules are in its module under harness.gpu.vendors)."""

from __future__ import annotations

import os

from harness.gpu.vendors import for_platform
from harness.gpu.vendors.vendor import THIS_HOST, DeviceOptions, EngineRuntimes, HostPaths
from harness.gpu.vram.base import Device


def container_devices(
    platform: str, leased: list[Device], runtimes: EngineRuntimes, paths: HostPaths = THIS_HOST
) -> DeviceOptions:
    """How `leased` reach a container of `platform`; `runtimes` is asked only by a vendor that needs it."""
    vendor = for_platform(platform)
    if vendor is None or not leased:
        return DeviceOptions()
    return vendor.container_devices(leased, runtimes, paths)


def missing_gpu(platform_name: str, session_hint: str | None, dev: str = "/dev") -> str | None:
    """One paragraph when this host lacks the platform's GPU driver node; None when it is there."""
    vendor = for_platform(platform_name)
    if vendor is None or vendor.driver_node is None:
        return None
    node = vendor.driver_node.path.replace("/dev", dev, 1)
    if os.path.exists(node):
        return None
    name, driver = vendor.driver_node.vendor, vendor.driver_node.driver
    instead = f"run `{session_hint}` here instead (the same tests on the cpu platform), or " if session_hint else ""
    return (
        f"this host has no {name} GPU: {node} (made by the {driver}) does not exist, so the "
        f"{platform_name} platform cannot run here; {instead}run this session on a host with an {name} GPU."
    )
