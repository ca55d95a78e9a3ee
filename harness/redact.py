"""Secrets never reach logs, reports, annotations or error messages.

Masked by value: every variable passed by `--env` or declared secret ([tool.gpuci] secrets),
every variable whose name says it is one (TOKEN, SECRET, KEY, PASSWORD, AUTH, CREDENTIAL, PAT),
and anything in the shape of a well-known credential, wherever it appears (a URL's password,
tokens with a vendor's prefix, registry auth): a name is not enough to know a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSW|AUTH(?!OR)|CREDENTIAL|(^|_)PAT($|_)", re.IGNORECASE)
MASK = "[redacted]"
# Shorter values would mask innocent text everywhere (a secret of "1" is no secret).
MIN_SECRET_LEN = 4

# Credential shapes, each with one group (the part masked; the rest stays readable). Each starts with
# a literal, so the regular expression engine jumps from one occurrence of it to the next: a log of
# hundreds of MiB is scanned at memory speed, not tried at every position.
_SHAPES = (
    r"://[^\s:/@]{0,256}:([^\s@/]{1,1024})@",  # scheme://user:PASSWORD@host
    r"gh[pousr]_([A-Za-z0-9]{20,})",  # GitHub tokens
    r"github_pat_([A-Za-z0-9_]{20,})",
    r"glpat-([A-Za-z0-9_-]{20,})",  # GitLab
    r"xox[abpors]-([A-Za-z0-9-]{10,})",  # Slack
    r"AKIA([0-9A-Z]{16})",  # AWS access key ids
    r"ASIA([0-9A-Z]{16})",
    r"hf_([A-Za-z0-9]{20,})",  # Hugging Face
    r"sk-([A-Za-z0-9_-]{20,})",  # OpenAI-style keys
    r"npm_([A-Za-z0-9]{30,})",
    r"pypi-([A-Za-z0-9_-]{40,})",
    r"bkua_([A-Za-z0-9]{30,})",  # Buildkite API tokens
    r"auths?\"\s*:\s*\"([A-Za-z0-9+/=]{8,})\"",  # Docker registry auth (DOCKER_AUTH_CONFIG, config.json)
    r"uthorization:\s*(?:[Bb]earer|[Bb]asic|[Tt]oken)\s+([A-Za-z0-9._~+/=-]{8,})",
    # The body stops at the next `-----` (a dash not starting five is a header's, `Proc-Type`): with
    # `[\s\S]*?` each begin without an end searched to the end of the text, a JUnit file of them for days.
    r"PRIVATE KEY-----((?:[^-]|-(?!----)){0,65536}?)-----END",
)
# The literal each shape starts with: a text without it is not searched by that shape at all.
_MARKERS = ("://", "gh", "github_pat_", "glpat-", "xox", "AKIA", "ASIA", "hf_", "sk-", "npm_", "pypi-", "bkua_",
            "auth", "uthorization", "PRIVATE KEY")  # fmt: skip
SHAPES = [(marker, re.compile(shape)) for marker, shape in zip(_MARKERS, _SHAPES, strict=True)]
SHAPES_BYTES = [(marker.encode(), re.compile(shape.encode())) for marker, shape in zip(_MARKERS, _SHAPES, strict=True)]


def _cut(match: re.Match) -> Any:  # type: ignore[type-arg]
    """The match with its group masked (only the secret part: `https://user:[redacted]@host`)."""
    whole, start = match.group(0), match.start(0)
    a, b = match.start(1) - start, match.end(1) - start
    mask = MASK.encode() if isinstance(whole, bytes) else MASK
    return whole[:a] + mask + whole[b:]


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def looks_like_credential(value: str) -> bool:
    return any(marker in value and shape.search(value) for marker, shape in SHAPES)


def _mask_shapes(text: str) -> str:
    for marker, shape in SHAPES:
        if marker in text:
            text = shape.sub(_cut, text)
    return text


def _mask_shapes_bytes(data: bytes) -> bytes:
    for marker, shape in SHAPES_BYTES:
        if marker in data:
            data = shape.sub(_cut, data)
    return data


class Redactor:
    """Masks secret values wherever they appear, and credential shapes whatever they are called."""

    def __init__(self, *environments: Mapping[str, str], secrets: Iterable[str] = ()) -> None:
        named = {v for env in environments for k, v in env.items() if is_secret(k) or looks_like_credential(v)}
        values = {v for v in (*named, *secrets) if v and len(v) >= MIN_SECRET_LEN}
        # Longest first, so a secret that contains another is masked whole.
        self._values = sorted(values, key=len, reverse=True)
        self._bytes = [v.encode() for v in self._values]

    def is_secret_value(self, value: str) -> bool:
        return value in self._values or looks_like_credential(value)

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {k: (MASK if is_secret(k) else self.text(v)) for k, v in env.items()}

    def text(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        return _mask_shapes(text)

    def bytes(self, data: bytes) -> bytes:
        for value in self._bytes:
            data = data.replace(value, MASK.encode())
        return _mask_shapes_bytes(data)

    def xml(self, data: bytes) -> bytes:
        """`bytes`, and each value as XML writes it too (`&amp;`, `&lt;`, `&quot;` in text and attributes):
        a JUnit file holds a test's output escaped, where a secret with `&` or `<` is not found as it is."""
        from xml.sax.saxutils import escape

        for value in self._values:
            for form in {escape(value), escape(value, {'"': "&quot;"}), escape(value, {'"': "&quot;", "'": "&apos;"})}:
                if form != value:
                    data = data.replace(form.encode(), MASK.encode())
        return self.bytes(data)
