"""Test-wide settings."""

import os

# The CLI keeps JAX's compiled kernels in ~/.cache/motifgram/jax; in-process CLI tests must not write there
# (test_cli.py checks the cache with a subprocess and its own cache folder).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "")
