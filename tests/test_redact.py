"""Secrets masked by value: passed ones whatever their name, and credentials by their shape."""

from __future__ import annotations

import pytest

from harness.redact import MASK, Redactor

GITHUB = "ghp_" + "x" * 36


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"push with {GITHUB}", "push with "),
        ("DB_URL=postgres://app:s3cr3t-pw@db:5432/app", "postgres://app:"),
        ("https://user:tok-123456@github.com/org/repo", "@github.com/org/repo"),
        ('{"auths": {"r.example": {"auth": "dXNlcjpwYXNzd29yZA=="}}}', '"auth": "'),
        ("Authorization: Bearer abcdefghijklmnop", "Authorization: Bearer "),
        ("hf_" + "a" * 30, ""),
        ("AKIA" + "B" * 16, ""),
        ("glpat-" + "c" * 20, ""),
    ],
)
def test_credential_shapes_are_masked_whatever_their_name(text: str, kept: str) -> None:
    masked = Redactor({}).text(text)
    assert MASK in masked and kept in masked
    assert Redactor({}).bytes(text.encode()) == masked.encode()


def test_passed_values_are_masked_by_value_and_plain_words_are_not() -> None:
    redactor = Redactor({"MY_PAT": "plain-value-42", "GIT_AUTHOR_NAME": "Jane Doe"}, secrets=["passed-by-env"])
    text = redactor.text("plain-value-42 passed-by-env Jane Doe cpu_sampler")
    assert text == f"{MASK} {MASK} Jane Doe cpu_sampler"


def test_a_variable_whose_value_is_a_credential_is_masked_everywhere() -> None:
    redactor = Redactor({"DATABASE": "postgres://u:pw-9910@db/x"})
    assert "pw-9910" not in redactor.text("connecting to postgres://u:pw-9910@db/x")
