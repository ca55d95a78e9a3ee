"""Images: content-addressed recipes, air-gapped builds, the engine connection."""
