"""The one small protocol every VRAM backend implements."""

from __future__ import annotations

from dataclasses import dataclass
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
