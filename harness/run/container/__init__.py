"""The container backend: a run spec through the Docker SDK, or as an OCI bundle under runc."""
