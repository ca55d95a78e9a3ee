"""Buildkite annotations: a run's or the lint's summary on the build page, when the agent is at hand."""

from __future__ import annotations

import re
import shutil
import subprocess

from harness.ci_provider import detect
from harness.console import printable, say

# CommonMark lets a backslash make any ASCII punctuation literal.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>&:\"'=$])")


def inline(text: str) -> str:
    """Text for an annotation's markdown (a label, a session): no emphasis, link, HTML or line of its own."""
    return _MARKDOWN.sub(r"\\\1", printable(text))


def block(text: str) -> str:
    """Lines for an annotation, shown as they are: an HTML <pre>, whose end no escaped text can forge
    (a label's ``` would end a markdown fence and have the rest rendered)."""
    return f"<pre>{_escaped(printable(text, keep_lines=True))}</pre>\n"


def _escaped(text: str) -> str:
    """`html.escape(text)`, the same five replacements: importing `html` loads its entity table
    (about 30 ms), paid by every lint that finds something, on the build page or not."""
    for raw, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;")):
        text = text.replace(raw, entity)
    return text


def annotate(body: str, context: str, style: str) -> bool:
    """A Buildkite annotation, when running in a job with the agent at hand; False otherwise."""
    agent = shutil.which("buildkite-agent")
    if not detect().in_job() or agent is None:
        return False
    done = subprocess.run(
        [agent, "annotate", "--context", context, "--style", style],
        input=body,
        text=True,
        capture_output=True,
    )
    if done.returncode != 0:
        say(f"buildkite-agent annotate failed: {done.stderr.strip()[:200]}")
    return done.returncode == 0
