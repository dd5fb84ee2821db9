"""Bundled YAML specs (the demo and real-data analyses)."""
