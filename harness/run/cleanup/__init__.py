"""Clean-up on the host: what crashed runs left (reaper, handoff, janitor, orphan watcher) and gc."""
