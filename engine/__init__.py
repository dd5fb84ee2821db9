"""motifgram.engine: image → atoms → features → tokens → graph; the pipeline and the CLI."""

__all__ = ["run", "load_spec"]


def __getattr__(name):
    # Loaded on first use: the pipeline imports JAX, SciPy and matplotlib (1.2 s), which light commands
    # (`motifgram --help`, `motifgram validate`) and the engine's own submodules do not need.
    if name == "run":
        from .pipeline import run

        return run
    if name == "load_spec":
        from .spec import load_spec

        return load_spec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
