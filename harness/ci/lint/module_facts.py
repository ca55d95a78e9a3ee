"""What the lint reads from each Python module of the tree, as analyses kept by the cache: whether
it defines tests, has a `__main__` block, which tests (a fingerprint), and variables it sets itself."""

from __future__ import annotations

import hashlib
import re

from harness.ci.lint.cache import Analysis

# What pytest collects from a module by default: test functions and Test classes. A library module
# whose name only looks like a test's (`marlin_utils_test.py`) defines neither.
DEFINES_TESTS = re.compile(r"^(?:\s*(?:async\s+)?def test|class Test)", re.M)
TEST_NAMES = re.compile(r"^\s*(?:async\s+)?def (test\w*)|^class (Test\w*)", re.M)

# The project's own code setting a variable at run time (`os.environ["X"] = …` in its package, as an
# engine that picks its mode at import does): such a variable is not a step's to set.
SELF_SET = re.compile(
    r"""os\.environ\[\s*["']([A-Za-z_]\w*)["']\s*\]\s*=[^=]|os\.environ\.setdefault\(\s*["']([A-Za-z_]\w*)["']"""
    r"""|os\.putenv\(\s*["']([A-Za-z_]\w*)["']"""
)


def test_facts(text: str) -> tuple[bool, bool, str]:
    """(defines tests, mentions __main__, a fingerprint of its tests' names: moved, they are the same)."""
    names = sorted(TEST_NAMES.findall(text))
    return bool(DEFINES_TESTS.search(text)), "__main__" in text, hashlib.sha256(repr(names).encode()).hexdigest()[:12]


TEST_FACTS: Analysis[tuple[bool, bool, str]] = Analysis("test-facts", test_facts, list, lambda d: tuple(d))


def self_set(text: str) -> list[str]:
    if "environ" not in text and "putenv" not in text:
        return []  # every form names one of these: not worth the pattern (thousands of modules)
    return sorted({g for m in SELF_SET.finditer(text) for g in m.groups() if g})


SELF_SET_NAMES: Analysis[list[str]] = Analysis("self-set", self_set)
