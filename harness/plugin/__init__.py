"""The parts of gpuci's pytest plugin (`harness.pytest_plugin` holds its hooks and fixtures)."""
