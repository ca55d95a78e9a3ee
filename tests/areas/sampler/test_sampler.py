"""The sampler area: sampling checks against a running engine, and two engines in one file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import Engine
from sampling import greedy, softmax, top_k_filter, top_p_filter

LOGITS = [0.1, 2.5, -1.0, 2.4, 0.0, 1.0]


def test_greedy_picks_the_largest_logit(engine: Engine) -> None:
    assert engine.ask(logits=LOGITS, temperature=0) == 1
    assert greedy(LOGITS) == 1


def test_topk_only_samples_the_k_best(engine: Engine) -> None:
    seen = {engine.ask(logits=LOGITS, top_k=2, seed=s) for s in range(60)}
    assert seen == {1, 3}


def test_topp_keeps_the_smallest_nucleus(engine: Engine) -> None:
    probs = softmax(LOGITS)
    nucleus = top_p_filter(probs, 0.5)
    assert [i for i, p in enumerate(nucleus) if p > 0] == [1, 3]
    seen = {engine.ask(logits=LOGITS, top_p=0.5, seed=s) for s in range(60)}
    assert seen <= {1, 3} and len(seen) == 2


def test_low_temperature_concentrates_on_the_mode(engine: Engine) -> None:
    cold = [engine.ask(logits=LOGITS, temperature=0.05, seed=s) for s in range(40)]
    assert cold.count(1) >= 30
    assert top_k_filter(softmax(LOGITS), 1)[1] == pytest.approx(1.0)


def test_second_engine_starts_after_the_first_shuts_down() -> None:
    """Two engines never fit at once: the second starts only once the first's memory is back."""
    from harness.vram import sim
    from harness.vram.release import take_baseline, wait_for_release

    backend = sim.SimBackend() if os.environ.get("GPUCI_SIM_GPUS") else None
    baseline = take_baseline(backend, backend.devices()[:1]) if backend else {}
    first = Engine()
    assert first.ask(logits=LOGITS, temperature=0) == 1
    assert first.shutdown() == 0
    if backend:
        released = wait_for_release(backend, backend.devices()[:1], baseline, timeout=30)
        assert released.released, f"engine memory not released: {released}"
    second = Engine()
    try:
        assert second.ask(logits=LOGITS, temperature=0) == 1
        assert second.info["pid"] != first.info["pid"]
    finally:
        assert second.shutdown() == 0
    assert os.environ.get("GPUCI_PLATFORM", "cpu") in ("cpu", "cuda", "rocm")
