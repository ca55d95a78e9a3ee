"""The vendors gpuci knows, one module each (cuda, rocm, simulated), and the VRAM backends they bring.

A new vendor is one new module defining a `Vendor`, and one entry in BUILT_IN (or a `register`
call): its platform, sessions, pipeline steps, container options and lint names follow from it.
Registration order is platform order (sessions, pipeline steps, `--platform` choices).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from harness.errors import InfrastructureError, UsageError
from harness.gpu.vendors import cuda, rocm, simulated
from harness.gpu.vendors.vendor import Vendor
from harness.gpu.vram import sim
from harness.gpu.vram.base import BackendUnavailable, VramBackend

BUILT_IN: tuple[Vendor, ...] = (simulated.VENDOR, cuda.VENDOR, rocm.VENDOR)
# The vendor an automatic backend choice falls back to where its devices are configured.
FALLBACK = simulated.VENDOR

# name -> vendor: the one registry (as nox's sessions registry), filled with the built-in vendors.
_REGISTRY: dict[str, Vendor] = {v.name: v for v in BUILT_IN}

__all__ = [
    "Vendor",
    "backend_names",
    "for_backend",
    "for_platform",
    "foreign_default",
    "open_backend",
    "register",
    "vendors",
]


def register(vendor: Vendor) -> Vendor:
    """Add a vendor; its platform and backend names must be new."""
    for known in _REGISTRY.values():
        clash = {vendor.name, vendor.platform, vendor.backend} & {known.name, known.platform, known.backend}
        if clash:
            raise ValueError(f"vendor {vendor.name!r}: {', '.join(sorted(clash))} already taken by {known.name!r}")
    _REGISTRY[vendor.name] = vendor
    return vendor


@contextmanager
def registered(vendor: Vendor) -> Iterator[Vendor]:
    """A vendor known for a while (a test's, or a plugin's for one command)."""
    register(vendor)
    try:
        yield vendor
    finally:
        _REGISTRY.pop(vendor.name, None)


def vendors() -> tuple[Vendor, ...]:
    return tuple(_REGISTRY.values())


def for_platform(platform: str) -> Vendor | None:
    return next((v for v in _REGISTRY.values() if v.platform == platform), None)


def for_backend(backend: str) -> Vendor | None:
    return next((v for v in _REGISTRY.values() if v.backend == backend), None)


def foreign_default() -> Vendor:
    """The vendor pipelines of other harnesses are written for: a foreign step with no other mark runs there."""
    return next(v for v in _REGISTRY.values() if v.foreign.default)


def backend_names() -> tuple[str, ...]:
    return tuple(v.backend for v in _REGISTRY.values())


def _open(name: str) -> VramBackend:
    vendor = for_backend(name)
    if vendor is None:
        raise UsageError(f"unknown VRAM backend {name!r}; choose one of {', '.join(backend_names())} or auto.")
    return vendor.open_backend()


def open_backend(name: str | None = None) -> VramBackend:
    """The named backend, or automatically: each probed vendor's in turn (the first that sees devices),
    then the simulated GPUs if configured."""
    if name and name != "auto":
        try:
            return _open(name)
        except BackendUnavailable as exc:
            raise InfrastructureError(f"VRAM backend {name!r} is not available here: {exc}.") from None
    tried = []
    for vendor in vendors():
        if not vendor.probe:
            continue
        try:
            backend = vendor.open_backend()
        except BackendUnavailable as exc:
            tried.append(f"{vendor.backend}: {exc}")
            continue
        if backend.devices():
            return backend
        backend.close()
    if os.environ.get(sim.ENV):
        return FALLBACK.open_backend()
    raise InfrastructureError(
        "no GPU backend found ("
        + "; ".join(tried)
        + f"). Set {sim.ENV}=DIR to use simulated GPUs, or pass --vram-backend."
    )
