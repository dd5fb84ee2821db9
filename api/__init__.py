"""motifgram: learn the vocabulary and grammar of atomic-resolution electron micrographs.

The top-level package holds the version and the notebook entry points, :func:`analyse` (micrographs in,
a :class:`Result` out) and :func:`load_run` (a run directory in); the work is done in
:mod:`motifgram.engine` (image -> atoms -> features -> tokens -> graph, the pipeline and the CLI) and
:mod:`motifgram.grammar` (the grammar: DSL, induction, parsing, comparison).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "analyse", "load_run", "Result"]


def __getattr__(name):
    # Loaded on first use: the command line imports this package first, and must not pay for JAX, pandas
    # and matplotlib (over a second) to print its help.
    if name == "analyse":
        from .analysis import analyse

        return analyse
    if name in ("load_run", "Result"):
        from . import result

        return getattr(result, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
