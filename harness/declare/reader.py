"""Field access on one YAML mapping of a declaration, with errors that name file and line."""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

from harness.declare.yaml_nodes import Converter
from harness.declare.yaml_nodes import Node as _Node
from harness.errors import DeclarationError

# Similarity above which an unknown key is taken for a misspelling rather than a foreign key.
TYPO_CUTOFF = 0.8


@functools.lru_cache(maxsize=4096)  # a large pipeline repeats its foreign keys in every step
def suggest(key: str, known: frozenset[str], cutoff: float = TYPO_CUTOFF) -> str | None:
    match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=cutoff)
    return match[0] if match else None


class Reader:
    """Field access on one mapping with errors that name file and line."""

    def __init__(self, path: Path, mapping: dict[str, _Node], line: int, what: str, conv: Converter) -> None:
        self.path, self.mapping, self.line, self.what, self.conv = path, mapping, line, what, conv

    def fail(self, key: str | None, message: str) -> DeclarationError:
        line = self.mapping[key].line if key and key in self.mapping else self.line
        return DeclarationError(self.path, line, f"{self.what}: {message}")

    def check_keys(self, known: frozenset[str]) -> None:
        for key in self.mapping:
            if key in known:
                continue
            suggestion = suggest(key, known)
            if suggestion:
                raise self.fail(key, f"unknown key {key!r}; did you mean {suggestion!r}?")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in self.mapping:
            return default
        value = self.conv.unwrap(self.mapping[key].value)
        if value is None:
            return default  # `key: ~` is Buildkite's "not set"
        if kind in (int, float) and isinstance(value, str):
            value = _number(value, kind)  # numbers given as strings ("30"), as Buildkite accepts
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(key, f"{key!r} must be {names}, not {type(value).__name__} ({value!r}).")
        return value

    def dependencies(self, key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """`depends_on` as Buildkite takes it: keys, or {step: KEY, allow_failure: BOOL} mappings; the
        keys, and those whose failure is allowed."""
        value = self.get(key, (list, str), [])
        keys: list[str] = []
        allowed: list[str] = []
        for item in [value] if isinstance(value, str) else value:
            if isinstance(item, dict) and isinstance(item.get("step"), str):
                keys.append(item["step"])
                if item.get("allow_failure") is True:
                    allowed.append(item["step"])
            elif isinstance(item, str):
                keys.append(item)
            elif item is not None:
                raise self.fail(key, f"every entry of {key!r} must be a step key or {{step: KEY}}, not {item!r}.")
        return tuple(keys), tuple(allowed)

    def string_list(self, key: str) -> tuple[str, ...]:
        value = self.get(key, (list, str), [])
        items = [value] if isinstance(value, str) else value
        # Lists inside the list (per-node commands of multi-node steps) count as their lines.
        items = [x for item in items for x in (item if isinstance(item, list) else [item]) if x is not None]
        for item in items:
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise self.fail(key, f"every entry of {key!r} must be a string, not {item!r}.")
        return tuple(str(item) for item in items)


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text.strip())
    except ValueError:
        return text
