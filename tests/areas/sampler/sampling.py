"""Token sampling from logits: greedy, temperature, top-k, top-p. Pure Python, deterministic per seed."""

from __future__ import annotations

import math
import random


def softmax(logits: list[float], temperature: float = 1.0) -> list[float]:
    if temperature <= 0:
        raise ValueError("temperature must be > 0; use greedy for temperature 0")
    scaled = [x / temperature for x in logits]
    top = max(scaled)
    exps = [math.exp(x - top) for x in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def greedy(logits: list[float]) -> int:
    return max(range(len(logits)), key=lambda i: (logits[i], -i))


def top_k_filter(probs: list[float], k: int) -> list[float]:
    keep = set(sorted(range(len(probs)), key=lambda i: -probs[i])[:k])
    kept = [p if i in keep else 0.0 for i, p in enumerate(probs)]
    total = sum(kept)
    return [p / total for p in kept]


def top_p_filter(probs: list[float], p: float) -> list[float]:
    """Smallest set of tokens whose mass reaches p (nucleus sampling)."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    keep, mass = set(), 0.0
    for i in order:
        keep.add(i)
        mass += probs[i]
        if mass >= p:
            break
    kept = [q if i in keep else 0.0 for i, q in enumerate(probs)]
    total = sum(kept)
    return [q / total for q in kept]


def sample(
    logits: list[float],
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> int:
    if temperature == 0:
        return greedy(logits)
    probs = softmax(logits, temperature)
    if top_k:
        probs = top_k_filter(probs, top_k)
    if top_p is not None:
        probs = top_p_filter(probs, top_p)
    return random.Random(seed).choices(range(len(probs)), weights=probs)[0]
