"""gpuci: a containerized CI harness for GPU test suites."""

__version__ = "0.1.0"
