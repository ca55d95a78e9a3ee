"""One run: spec, container or host workload, supervisor, teardown, reaper."""
