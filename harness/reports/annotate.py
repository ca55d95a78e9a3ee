"""Buildkite annotations: a run's or the lint's summary on the build page, when the agent is at hand."""

from __future__ import annotations

import os
import shutil
import subprocess

from harness.console import say


def annotate(body: str, context: str, style: str) -> bool:
    """A Buildkite annotation, when running in a job with the agent at hand; False otherwise."""
    agent = shutil.which("buildkite-agent")
    if os.environ.get("BUILDKITE") != "true" or agent is None:
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
