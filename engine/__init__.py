"""motifgram.engine: image -> atoms -> features -> tokens -> graph; pipeline and CLI."""
