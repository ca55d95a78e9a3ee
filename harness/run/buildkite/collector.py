"""Buildkite Test Engine: each test's result sent by Buildkite's own pytest collector when its token is set.

On Buildkite, `BUILDKITE_ANALYTICS_TOKEN` (a suite's Test Engine token) in gpuci's environment turns
it on: `buildkite-test-collector`, pinned, is installed once on the host for the image's own Python
(`.gpuci/test-engine/<python>-<machine>`, from the wheelhouse first) and mounted read-only into the
step's container; gpuci's pytest plugin puts it on the path, where pytest loads it by its entry
point. The token reaches the container as a secret (masked, never in its configuration), with the
build's variables the collector reads (build, job, branch, commit). The image and its tag are the
same with and without it, so a local run and a CI run still share their image.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from harness.ci_provider import TEST_ENGINE_TOKEN, detect
from harness.console import say
from harness.errors import ImageBuildError
from harness.images.installer import pip_command
from harness.in_container import TEST_ENGINE_FOLDER_ENV

TOKEN_ENV = TEST_ENGINE_TOKEN
FOLDER_ENV = TEST_ENGINE_FOLDER_ENV  # where the collector is mounted, for gpuci's plugin (harness.plugin.collector)
MOUNT = "/opt/gpuci/test-engine"
# The collector and what it imports beyond pytest (which the image has), pinned. Installed without
# dependencies: the image's pytest must be the one that runs.
COLLECTOR = (
    "buildkite-test-collector==1.9.1",
    "requests==2.34.2",
    "urllib3==2.8.0",
    "certifi==2026.10.19.post1",
    "idna==3.20",
    "charset-normalizer==3.5.3",
    "filelock==4.3.1",
)


def wanted() -> bool:
    return detect().test_engine_token() is not None


def collector_folder(root: Path, client: Any, image: str) -> Path:
    """The collector installed for the image's Python, once per Python and machine."""
    from harness.images.airgap import wheelhouse_dir
    from harness.images.resolve import ask_image
    from harness.untrusted import private_dir

    target = ask_image(client, image)
    pins = hashlib.sha256("\n".join(COLLECTOR).encode()).hexdigest()[:8]
    # Every component a real folder, never a link (the words are the image's, checked plain by ask_image).
    folder = private_dir(root, ".gpuci", "test-engine", f"{target.version}-{target.machine}-{pins}")
    if (folder / ".complete").is_file():
        return folder
    say(f"installing Buildkite's test collector for Python {target.version} into {folder}")
    from harness.host_python import run_python

    wheelhouse = Path(os.path.abspath(wheelhouse_dir(root)))
    folder = Path(os.path.abspath(folder))
    base = [*pip_command(), "install", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--target", str(folder), "--upgrade", *target.pip_args(), *COLLECTOR]  # fmt: skip
    done = run_python([*base, "--no-index", "--find-links", str(wheelhouse)], capture_output=True, text=True)
    if done.returncode != 0:
        done = run_python(base, capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(
            f"{TOKEN_ENV} is set, but Buildkite's test collector could not be installed for Python "
            f"{target.version}: {done.stderr.strip()[-300:]}; put its wheels ({', '.join(COLLECTOR)}) in "
            f"{wheelhouse}, or unset {TOKEN_ENV}."
        )
    (folder / ".complete").write_text("\n".join(COLLECTOR) + "\n")
    return folder


def build_variables() -> dict[str, str]:
    """What the collector reads of the build (besides CI and its API's URL): passed through as they are."""
    return detect().test_engine_variables()
