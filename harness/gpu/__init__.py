"""GPUs: VRAM backends, device options for a lease, leases and their locks."""
