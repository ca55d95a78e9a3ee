"""One run, read straight through (`commands`): begun, its workload prepared by a backend (container or
host), supervised, its report assembled and written; the host's clean-up of what crashed runs left."""
