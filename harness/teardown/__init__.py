"""How anything gpuci starts is stopped: the one `StopPolicy` and the process trees it ends, shared by
the run on the host and the pytest plugin inside the container (which never imports the run)."""
