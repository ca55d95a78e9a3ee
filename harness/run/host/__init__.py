"""The host backend (`--no-container`): the step as a process tree on the host."""
