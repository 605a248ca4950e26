"""ferry's internals: the glue between the Python API and ferry._core."""
