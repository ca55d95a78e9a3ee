"""Buildkite's add-ons to a run: a parallel job's share of the tests, the Test Engine collector."""
