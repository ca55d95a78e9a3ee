"""Gates in Python test modules, read from the statements that skip or read the environment."""

from __future__ import annotations

from harness.ci.lint.gates import python_gates

GATED = """\
import os
import pytest

FULL = os.getenv("FULL_SUITE")


@pytest.mark.skipif(not FULL, reason="only the full suite")
def test_big(): pass


@pytest.mark.skipif(os.environ.get("NO_SMALL") == "1", reason="turned off when set")
def test_small(): pass
"""


def test_a_gate_through_a_module_level_name_and_not_a_variable_that_turns_tests_off() -> None:
    assert python_gates(GATED) == {"FULL_SUITE"}


def test_a_skip_quoted_in_a_docstring_is_no_gate() -> None:
    text = 'import os\n"""\n@pytest.mark.skipif(not os.getenv("X"))\n"""\ndef test_x(): pass\n'
    assert python_gates(text) == set()


def test_a_module_that_does_not_parse_is_read_as_text_as_before() -> None:
    # Its skip statements parse alone, but the whole does not: the text's reading counts, as it
    # did before parts were parsed alone: a variable read beside a skip (here one that turns tests
    # off), not one read through a name further up.
    broken = GATED + "\ndef test_broken():\n    x = = 1\n"
    assert python_gates(broken) == {"NO_SMALL"}
