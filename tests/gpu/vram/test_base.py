"""What every vendor backend's start shares: its binding absent or failing is BackendUnavailable."""

from __future__ import annotations

import types

import pytest

from harness.gpu.vendors.rocm import AmdSmiBackend
from harness.gpu.vram.base import BackendUnavailable, initialising, vendor_library


def test_a_binding_that_is_not_installed_is_unavailable_naming_the_package() -> None:
    with pytest.raises(BackendUnavailable, match=r"^gpuci-no-such-binding is not installed \(No module named"):
        vendor_library(None, "gpuci_no_such_binding_x", "gpuci-no-such-binding")
    given = types.SimpleNamespace()
    assert vendor_library(given, "gpuci_no_such_binding_x", "gpuci-no-such-binding") is given  # type: ignore[arg-type]


def test_any_error_while_a_binding_starts_is_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match=r"^NVML did not initialise: driver not loaded$"), initialising("NVML"):
        raise RuntimeError("driver not loaded")

    def fail() -> None:
        raise OSError("no /dev/kfd")

    with pytest.raises(BackendUnavailable, match="amdsmi did not initialise: no /dev/kfd"):
        AmdSmiBackend(types.SimpleNamespace(amdsmi_init=fail))  # type: ignore[arg-type]
