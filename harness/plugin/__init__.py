"""The parts of gpuci's pytest plugin (`harness.pytest_plugin` holds its hooks and fixtures). They run
inside the container and never import the run (harness.run): what both sides share is in harness.teardown
and harness.in_container."""
