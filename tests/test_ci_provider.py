"""The CI service, read from the environment in one module: Buildkite's job variables, none elsewhere,
and the generic markers every service sets."""

from __future__ import annotations

import pytest

from harness.ci_provider import TEST_ENGINE_TOKEN, Buildkite, NoProvider, detect, on_ci


@pytest.mark.parametrize("marker", ["CI", "BUILDKITE", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TF_BUILD"])
def test_every_services_marker_means_ci(marker: str) -> None:
    assert on_ci({marker: "true"}) and on_ci({marker: "https://jenkins.example.com/"})
    assert not on_ci({marker: "false"}) and not on_ci({marker: "0"}) and not on_ci({marker: ""})


def test_nothing_set_is_a_persons_machine() -> None:
    assert not on_ci({"HOME": "/root"})
    provider = detect({"HOME": "/root", "GITHUB_ACTIONS": "true"})  # a service gpuci has nothing particular for
    assert isinstance(provider, NoProvider) and provider.name == "none"
    assert (provider.in_job(), provider.parallel_share(), provider.cancel_grace_s()) == (False, (0, 0), 0.0)
    assert provider.branch_base("main") is None and provider.test_engine_token() is None


def test_a_buildkite_job() -> None:
    env = {
        "BUILDKITE": "true",
        "BUILDKITE_BRANCH": "feature/x",
        "BUILDKITE_PIPELINE_DEFAULT_BRANCH": "trunk",
        "BUILDKITE_PARALLEL_JOB": "2",
        "BUILDKITE_PARALLEL_JOB_COUNT": "4",
        "BUILDKITE_CANCEL_GRACE_PERIOD": "10",
        "BUILDKITE_BUILD_ID": "b-1",
        TEST_ENGINE_TOKEN: "secret",
        "UNRELATED": "x",
    }
    provider = detect(env)
    assert isinstance(provider, Buildkite) and provider.in_job()
    assert provider.branch_base("main") == "trunk"  # the pipeline's default branch wins over gpuci's setting
    assert provider.parallel_share() == (2, 4) and provider.cancel_grace_s() == 10.0
    assert provider.test_engine_token() == "secret"
    variables = provider.test_engine_variables()
    assert variables == {"BUILDKITE": "true", "BUILDKITE_BRANCH": "feature/x", "BUILDKITE_BUILD_ID": "b-1"}


def test_the_default_branch_builds_everything_and_an_unsplit_step_is_whole() -> None:
    on_main = detect({"BUILDKITE": "true", "BUILDKITE_BRANCH": "main", "BUILDKITE_PARALLEL_JOB": "3"})
    assert on_main.branch_base("main") is None
    assert on_main.parallel_share() == (0, 0)
    assert detect({"BUILDKITE": "true", "BUILDKITE_BRANCH": "x"}).branch_base("main") == "main"


def test_a_buildkite_variable_set_by_hand_is_read_as_before_but_no_annotations() -> None:
    """`BUILDKITE_PARALLEL_JOB_COUNT=4` alone shards a local run (as it always has); annotations and
    artifacts need the agent's own job (BUILDKITE=true)."""
    provider = detect({"BUILDKITE_PARALLEL_JOB_COUNT": "4", "BUILDKITE_PARALLEL_JOB": "1"})
    assert isinstance(provider, Buildkite) and provider.parallel_share() == (1, 4) and not provider.in_job()
    assert detect({"BUILDKITE_PARALLEL_JOB_COUNT": ""}).parallel_share() == (0, 0)
