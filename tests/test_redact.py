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


KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0A1B2C\n\n"
    "MIIEowIBAAKCAQEAsecretbody0123+/=\n-----END RSA PRIVATE KEY-----\n"
)


def test_a_private_key_is_masked_and_its_search_never_runs_past_the_next_dashes() -> None:
    """The key's body was `[\\s\\S]*?` up to `-----END`: each `PRIVATE KEY-----` with no end ran on to the end
    of the text, so a JUnit file (up to 64 MiB, masked on the host) of 20,000 such lines took minutes, and
    64 MiB of them days. The body now stops at the next `-----`, which bounds each search to its own block."""
    redactor = Redactor({})
    masked = redactor.text("before\n" + KEY + "after")
    assert "secretbody" not in masked and "Proc-Type" not in masked and "before" in masked and "after" in masked
    # A begin with no end is not a key up to some later block's end: the search stops at the next dashes.
    stray = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----BEGIN CERTIFICATE-----\npublic\n-----END CERTIFICATE-----"
    assert redactor.text(stray) == stray
    assert redactor.bytes(stray.encode()) == stray.encode()
