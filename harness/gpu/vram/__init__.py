"""VRAM backends behind one protocol (base); each vendor's own is in its module (harness.gpu.vendors),
which also opens them by name or automatically (`harness.gpu.vendors.open_backend`)."""

from __future__ import annotations

from harness.gpu.vram.base import BackendUnavailable, Device, Holder, VramBackend

__all__ = ["BackendUnavailable", "Device", "Holder", "VramBackend"]
