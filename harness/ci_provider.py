"""The CI service gpuci runs under, read from the environment in this one module (as cibuildwheel's
`ci.py`): Buildkite, whose job variables gpuci uses, or none (a person's machine, or a CI service
gpuci has nothing particular for). `on_ci` is the generic answer every service gives.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

# Variables a CI service sets in every job (Buildkite, GitHub Actions, GitLab, Jenkins, Azure, and the
# common CI=true).
CI_MARKERS = ("CI", "BUILDKITE", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TF_BUILD")

# Buildkite's own (https://buildkite.com/docs/pipelines/configure/environment-variables).
PREFIX = "BUILDKITE_"
IN_JOB = "BUILDKITE"
BRANCH = "BUILDKITE_BRANCH"
DEFAULT_BRANCH = "BUILDKITE_PIPELINE_DEFAULT_BRANCH"
PARALLEL_JOB = "BUILDKITE_PARALLEL_JOB"
PARALLEL_JOB_COUNT = "BUILDKITE_PARALLEL_JOB_COUNT"
CANCEL_GRACE = "BUILDKITE_CANCEL_GRACE_PERIOD"
# A suite's Test Engine token, and what Buildkite's test collector reads of the build besides.
TEST_ENGINE_TOKEN = "BUILDKITE_ANALYTICS_TOKEN"
TEST_ENGINE_VARIABLES = (
    "CI", "BUILDKITE", "BUILDKITE_BUILD_ID", "BUILDKITE_BUILD_URL", "BUILDKITE_BRANCH", "BUILDKITE_COMMIT",
    "BUILDKITE_BUILD_NUMBER", "BUILDKITE_JOB_ID", "BUILDKITE_MESSAGE", "BUILDKITE_AGENT_ID",
    "BUILDKITE_ANALYTICS_API_URL", "BUILDKITE_ANALYTICS_DEBUG_ENABLED", "BUILDKITE_ANALYTICS_EXECUTION_NAME_PREFIX",
    "BUILDKITE_ANALYTICS_EXECUTION_NAME_SUFFIX", "BUILDKITE_ANALYTICS_LOCATION_PREFIX",
)  # fmt: skip


def on_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether any CI service's marker is set (not empty, 0 or false)."""
    env = os.environ if environ is None else environ
    return any(env.get(name, "").lower() not in ("", "0", "false") for name in CI_MARKERS)


class CIProvider(Protocol):
    name: str

    def in_job(self) -> bool:
        """Inside a job whose agent takes annotations and artifacts."""
        ...

    def branch_base(self, default_branch: str) -> str | None:
        """The default branch this build's branch is compared with; None on the default branch itself."""
        ...

    def parallel_share(self) -> tuple[int, int]:
        """(this job's index, the step's job count); count 0 or 1 when the step is not split."""
        ...

    def cancel_grace_s(self) -> float:
        """The agent's grace between its cancel and its SIGKILL; 0 when there is none to fit."""
        ...

    def test_engine_token(self) -> str | None: ...

    def test_engine_variables(self) -> dict[str, str]:
        """What Buildkite's test collector reads of the build, as set."""
        ...


@dataclass(frozen=True)
class Buildkite:
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    name: str = "buildkite"

    def in_job(self) -> bool:
        return self.environ.get(IN_JOB) == "true"

    def branch_base(self, default_branch: str) -> str | None:
        branch = self.environ.get(BRANCH)
        default = self.environ.get(DEFAULT_BRANCH, default_branch)
        return None if not branch or branch == default else default

    def parallel_share(self) -> tuple[int, int]:
        count = int(self.environ.get(PARALLEL_JOB_COUNT, "0") or 0)
        return (int(self.environ.get(PARALLEL_JOB, "0") or 0) if count > 1 else 0), count

    def cancel_grace_s(self) -> float:
        return float(self.environ.get(CANCEL_GRACE, "0") or 0)

    def test_engine_token(self) -> str | None:
        return self.environ.get(TEST_ENGINE_TOKEN) or None

    def test_engine_variables(self) -> dict[str, str]:
        return {name: self.environ[name] for name in TEST_ENGINE_VARIABLES if name in self.environ}


@dataclass(frozen=True)
class NoProvider:
    """A person's machine, or a CI service gpuci has nothing particular for."""

    name: str = "none"

    def in_job(self) -> bool:
        return False

    def branch_base(self, default_branch: str) -> str | None:
        return None

    def parallel_share(self) -> tuple[int, int]:
        return 0, 0

    def cancel_grace_s(self) -> float:
        return 0.0

    def test_engine_token(self) -> str | None:
        return None

    def test_engine_variables(self) -> dict[str, str]:
        return {}


def detect(environ: Mapping[str, str] | None = None) -> CIProvider:
    """Buildkite where its job marker or any of its variables is set (a variable set by hand counts,
    as it always has: `BUILDKITE_PARALLEL_JOB_COUNT=4` alone shards a run); none otherwise."""
    env = os.environ if environ is None else environ
    if env.get(IN_JOB) == "true" or any(name.startswith(PREFIX) for name in env):
        return Buildkite(env)
    return NoProvider()


@dataclass(frozen=True)
class CIJob:
    """What a run reads of its CI job, read once (harness.declare.request): its share of a split step,
    the agent's cancel grace, and whether Test Engine takes its results."""

    parallel_share: tuple[int, int]  # (this job's index, the step's job count): count 0 or 1 when not split
    cancel_grace_s: float  # 0 when there is none to fit
    test_engine: bool


def job(environ: Mapping[str, str] | None = None) -> CIJob:
    provider = detect(environ)
    return CIJob(provider.parallel_share(), provider.cancel_grace_s(), provider.test_engine_token() is not None)
