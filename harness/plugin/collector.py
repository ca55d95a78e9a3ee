"""Buildkite's test collector inside the container: on the path when the run mounted it
(harness.run.buildkite.collector installs and mounts it on the host)."""

from __future__ import annotations

import contextlib
import os
import sys

from harness.ci_provider import detect
from harness.in_container import TEST_ENGINE_FOLDER_ENV


def enable_in_plugin() -> None:
    """From gpuci's plugin: the collector on the path (after the image's own packages), before pytest
    loads plugins by their entry points."""
    folder = os.environ.get(TEST_ENGINE_FOLDER_ENV)
    if folder and detect().test_engine_token() and folder not in sys.path:
        with contextlib.suppress(OSError):
            if os.path.isdir(folder):
                sys.path.append(folder)
