"""motifgram.engine: image → atoms → features → tokens → graph; the pipeline and the CLI.

``run`` and ``load_spec`` load on first use (SPEC 1 lazy loading, as scikit-image and SciPy do): the pipeline
imports JAX, SciPy and matplotlib, which light commands (``motifgram --help``, ``validate``) and the engine's
own submodules do not need.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={"pipeline": ["run"], "spec": ["load_spec"]})
