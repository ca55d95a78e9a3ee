"""The one small protocol every VRAM backend implements."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol


@dataclass(frozen=True)
class Device:
    index: int
    # Stable identity: a UUID (NVIDIA, sim) or a PCI bus id (AMD).
    id: str
    name: str
    total_bytes: int


@dataclass(frozen=True)
class Holder:
    """A process that holds device memory, by host PID where the backend can tell."""

    pid: int
    used_bytes: int | None
    device_id: str


class VramBackend(Protocol):
    name: str

    def devices(self) -> list[Device]:
        """Every device this backend sees, in index order."""
        ...

    def used_bytes(self, device: Device) -> int:
        """Used bytes of one device: the cheap call that release waits poll."""
        ...

    def holders(self, device: Device) -> list[Holder]:
        """Processes that hold memory on one device."""
        ...

    def close(self) -> None: ...


class BackendUnavailable(Exception):
    """A backend's library or device is missing on this host."""


def vendor_library(given: ModuleType | None, module: str, package: str) -> ModuleType:
    """A vendor backend's Python binding: `given` (a test's stand-in), else `module` imported; a host
    without `package` installed has no such GPUs for gpuci (BackendUnavailable)."""
    if given is not None:
        return given
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(f"{package} is not installed ({exc})") from None


@contextlib.contextmanager
def initialising(library: str) -> Iterator[None]:
    """A binding's start-up: any error it raises (its own classes, one per driver state) means the
    GPUs are not here, said as BackendUnavailable."""
    try:
        yield
    except Exception as exc:
        raise BackendUnavailable(f"{library} did not initialise: {exc}") from None
