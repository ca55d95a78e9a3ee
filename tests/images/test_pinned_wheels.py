"""gpuci's own pins' wheels remembered in the host cache: a fresh wheelhouse is filled from the cache with
no resolution, and only while every wheel named is in the cache and the pins file is the same bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.images import pinned_wheels, uv_resolve
from harness.images.airgap import fill_wheelhouse
from harness.images.uv_resolve import Wheel
from harness.images.wheels import sha256_of
from tests.conftest import ROOT


def test_remembered_wheels_are_recalled_only_with_the_same_pins_and_every_wheel_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUCI_CACHE_DIR", str(tmp_path / "cache"))
    pins = tmp_path / "requirements.txt"
    pins.write_text("six==1.17.0\n")
    wheel = Wheel("six-1.17.0-py2.py3-none-any.whl", "https://example.invalid/six.whl", "a" * 64)
    pinned_wheels.remember(pins, "x86_64", (wheel,))
    assert pinned_wheels.recall(pins, "x86_64") is None  # its bytes are not in the host cache
    cached = tmp_path / "cache" / "wheels" / ("a" * 64)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"wheel")
    assert pinned_wheels.recall(pins, "x86_64") == [wheel]
    assert pinned_wheels.recall(pins, "aarch64") is None
    pins.write_text("six==1.16.0\n")  # a project's edited pins are another key
    assert pinned_wheels.recall(pins, "x86_64") is None
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)  # the project's pins file made a FIFO: never opened for reading (it would block)
    assert pinned_wheels.recall(fifo, "x86_64") is None
    pinned_wheels.remember(fifo, "x86_64", (wheel,))


def test_a_second_wheelhouse_is_filled_from_the_cache_without_asking_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements = ROOT / "containers" / "requirements.txt"
    fill_wheelhouse(requirements, tmp_path / "first")

    def no_resolution(*args: object, **kwargs: object) -> None:
        raise AssertionError("the index was asked again")

    monkeypatch.setattr(uv_resolve, "compile_wheels", no_resolution)
    fill_wheelhouse(requirements, tmp_path / "second")
    first = {p.name: sha256_of(p) for p in (tmp_path / "first").glob("*.whl")}
    second = {p.name: sha256_of(p) for p in (tmp_path / "second").glob("*.whl")}
    assert second == first and len(first) >= 9
