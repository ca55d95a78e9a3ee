"""The names the host's run and gpuci's code inside its container agree on: what the pytest plugin
writes into the outbox, and where Buildkite's collector is mounted. Both sides import them from here
(the plugin never imports the run), so what is written and what is read back cannot drift apart."""

from __future__ import annotations

# The files gpuci's pytest plugin writes into the outbox, one of each per xdist worker.
RECORDS_NAME = "pytest-records"
RESULTS_PREFIX, RUNNING_PREFIX, STACKS_PREFIX = "tests-", "running-", "stacks-"
# Where Buildkite's test collector is mounted, named for gpuci's plugin.
TEST_ENGINE_FOLDER_ENV = "GPUCI_TEST_ENGINE"
