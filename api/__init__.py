"""motifgram: learn the vocabulary and grammar of atomic-resolution electron micrographs.

The top-level package holds the version and the notebook entry points, :func:`analyse` (micrographs in,
a :class:`Result` out) and :func:`load_run` (a run directory in); the work is done in
:mod:`motifgram.engine` (image -> atoms -> features -> tokens -> graph, the pipeline and the CLI) and
:mod:`motifgram.grammar` (the grammar: DSL, induction, parsing, comparison). The entry points load on first
use (SPEC 1 lazy loading): the command line imports this package first and must not pay for JAX, pandas and
matplotlib to print its help.
"""

import lazy_loader

__version__ = "0.1.0"

__getattr__, __dir__, _lazy = lazy_loader.attach(
    __name__, submod_attrs={"analysis": ["analyse"], "result": ["load_run", "Result"]}
)
__all__ = ["__version__", *_lazy]
