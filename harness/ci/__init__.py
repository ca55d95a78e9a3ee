"""CI: the Buildkite pipeline, the CI-coverage lint, `gpuci init`."""
