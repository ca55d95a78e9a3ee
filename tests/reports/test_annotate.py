"""harness/reports/annotate.py: the annotation's <pre> escapes as html.escape does."""

from __future__ import annotations

import html
import random

from harness.console import printable
from harness.reports.annotate import block


def test_block_escapes_as_html_escape() -> None:
    texts = ["", "a < b && c > d", "x=\"1\" y='2'", "&amp; already", "</pre><script>alert(1)</script>"]
    chars = "&<>\"'ab \n"
    rng = random.Random(35)
    texts += ["".join(rng.choice(chars) for _ in range(rng.randint(0, 40))) for _ in range(2000)]
    for text in texts:
        assert block(text) == f"<pre>{html.escape(printable(text, keep_lines=True))}</pre>\n", text


def test_block_cannot_end_its_pre() -> None:
    assert block("</pre>").count("</pre>") == 1
