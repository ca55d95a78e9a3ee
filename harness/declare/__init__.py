"""Stage 1: the declarations (areas, platforms, [tool.gpuci], the host's policy), and one run's request
resolved from them (`request`)."""
