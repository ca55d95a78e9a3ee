"""Process trees ended completely (`process_tree`), by the one `StopPolicy` (harness.declare.stop_policy):
shared by the run on the host and the pytest plugin inside the container, which never imports the run."""
