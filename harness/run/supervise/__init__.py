"""Supervision and stop: start, wait, the stop's policy (grace, kill, VRAM wait), process trees."""
