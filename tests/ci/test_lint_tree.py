"""The tree's lookups answer as trying every file would."""

from __future__ import annotations

import itertools

from harness.ci.lint.tree import Tree
from harness.declare.dependencies import DEPENDENCY_MATCHES, matches

FILES = [
    "vllm/config.py",
    "vllm/config/model.py",
    "vllm/engine/core.py",
    "tests/test_config.py",
    "tests/models/test_llama.py",
    "csrc/ops.cu",
    "setup.py",
]
ENTRIES = [
    "vllm/config",
    "/vllm/config/",
    "vllm/conf",
    "config",
    "tests/test_config",
    "tests/models",
    "tests/model",
    "csrc/",
    " setup.py ",
    "setup",
    "",
    ".",
    "gone/folder",
    "y.py\ntests",  # across two names: no file holds it
]


def test_matched_by_agrees_with_matching_each_file() -> None:
    tree = Tree.scan(None, FILES)  # type: ignore[arg-type]
    for entry, mode in itertools.product(ENTRIES, DEPENDENCY_MATCHES):
        expected = any(matches(f, entry, mode) for f in FILES)
        assert tree.matched_by(entry, mode) is expected, (entry, mode)
    assert not Tree.scan(None, []).matched_by("", "substring")  # type: ignore[arg-type]
