"""motifgram: learn the vocabulary and grammar of atomic-resolution electron micrographs.

The top-level package holds the version and the notebook entry points; the work is done in
:mod:`motifgram.engine` (image -> atoms -> features -> tokens -> graph, the pipeline and the CLI) and
:mod:`motifgram.grammar` (the grammar: DSL, induction, parsing, comparison). Importing it is light: the
command line imports it first, so nothing here loads JAX.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
