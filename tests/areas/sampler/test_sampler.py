"""The sampler area: sampling checks against a running engine, and two engines in one file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import ENGINE, Engine, engine_env
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


def test_first_engine_shuts_down_cleanly() -> None:
    """An engine holding most of the GPU; its memory may stay counted after it exits (ROCm)."""
    first = Engine()
    assert first.ask(logits=LOGITS, temperature=0) == 1
    assert first.shutdown() == 0


def test_second_engine_starts_after_the_first() -> None:
    """Two engines never fit at once. gpuci's VRAM guard waited, before this test, for the first
    engine's memory to be released: no hand-written "wait for memory" call is needed here."""
    second = Engine()
    try:
        assert second.ask(logits=LOGITS, temperature=0) == 1
    finally:
        assert second.shutdown() == 0


def test_several_servers_stop_together(gpuci_servers, tmp_path) -> None:
    """The data-parallel case: N engines, one parallel teardown, one wait for VRAM."""
    servers = []
    for i in range(4):
        ready = tmp_path / f"ready-{i}"
        env = engine_env(SAMPLER_ENGINE_FRACTION="0.1", SAMPLER_READY_FILE=str(ready), SAMPLER_RELEASE_LAG="0")
        servers.append(gpuci_servers.start([sys.executable, str(ENGINE)], env=env, ready=ready.exists, grace=5))
    assert len({s.pid for s in servers}) == 4
    gpuci_servers.stop_all()
    assert all(s.proc.returncode is not None for s in servers)


def test_engine_shutdown_is_within_budget(gpuci_shutdown_timer) -> None:
    engine = Engine(SAMPLER_RELEASE_LAG="0")
    measured = gpuci_shutdown_timer.measure(engine.proc)
    gpuci_shutdown_timer.assert_within_budget(measured)


def test_engine_startup_times_are_recorded(gpuci_startup_timer) -> None:
    for kind in ("cold", "warm"):
        engine, seconds = gpuci_startup_timer.measure(lambda: Engine(SAMPLER_RELEASE_LAG="0"), kind)
        assert seconds > 0 and engine.shutdown() == 0
