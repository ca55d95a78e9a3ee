"""Secrets (variables whose names contain TOKEN, SECRET, KEY or PASSWORD) never reach logs or reports."""

from __future__ import annotations

import re
from collections.abc import Mapping

SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD", re.IGNORECASE)
MASK = "[redacted]"
# Shorter values would mask innocent text everywhere (a secret of "1" is no secret).
MIN_SECRET_LEN = 4


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Masks the values of secret variables wherever they appear."""

    def __init__(self, *environments: Mapping[str, str]) -> None:
        values = {v for env in environments for k, v in env.items() if is_secret(k) and len(v) >= MIN_SECRET_LEN}
        # Longest first, so a secret that contains another is masked whole.
        self._values = sorted(values, key=len, reverse=True)
        self._bytes = [v.encode() for v in self._values]

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {k: (MASK if is_secret(k) else self.text(v)) for k, v in env.items()}

    def text(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        return text

    def bytes(self, data: bytes) -> bytes:
        for value in self._bytes:
            data = data.replace(value, MASK.encode())
        return data
