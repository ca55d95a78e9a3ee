"""GPUs: VRAM backends, device options for a lease, leases and their locks, and one run's GPUs stage
(`for_run`: the lease, a crashed run's leftovers cleared by `handoff`, the container's devices)."""
