"""Clean-up on the host: what crashed runs left (reaper, janitor) and gc; the watcher inside a container
is planned with it (harness.run.plan)."""
