"""Stage 1: the declarations (areas, platforms, [tool.gpuci])."""
