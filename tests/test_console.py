"""gpuci's own lines: what a workload or a project wrote is shown, never acted on, its secrets masked."""

from __future__ import annotations

import pytest

from harness.console import printable, say

HOSTILE = "ok\x1b]52;c;ZXZpbA==\x07 \x1b[2J\x1b[H\rgpuci: passed\n\u202egpuci: passed\x9b31m\x00"


def test_printable_leaves_no_character_a_terminal_acts_on() -> None:
    shown = printable(HOSTILE)
    assert shown.isprintable() and "\n" not in shown and "\r" not in shown and "\x1b" not in shown
    assert "\\x1b]52;c;ZXZpbA==\\x07" in shown and "\\rgpuci: passed" in shown  # seen, for what it is
    assert printable("plain text · ünïcode") == "plain text · ünïcode"


def test_printable_keeping_lines_never_lets_a_line_start_as_gpucis() -> None:
    shown = printable("first\ngpuci: passed\r\x1b[2K", keep_lines=True)
    assert shown.splitlines() == ["first", "  gpuci: passed\\r\\x1b[2K"]


def test_say_masks_the_environments_secrets_and_escapes(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-0123456789-secret")
    say(f"failed: {HOSTILE} with tok-0123456789-secret and ghp_{'a' * 36}")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gpuci: failed: ok")
    assert "tok-0123456789-secret" not in err and "a" * 36 not in err and "[redacted]" in err
    assert "\x1b" not in err and "\r" not in err and "\u202e" not in err and "\x9b" not in err
