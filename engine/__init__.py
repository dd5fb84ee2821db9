"""motifgram.engine: image → atoms → features → tokens → graph; the pipeline and the CLI."""

from .pipeline import run
from .spec import load_spec

__all__ = ["run", "load_spec"]
