"""``features.npz``: every atom's features in a run directory, so that a comparison can refit tokens.

A run writes the feature vector of every atom it detected (the same vectors its token model was fitted on and
assigned with) into ``features.npz``, one array per micrograph in the row order of ``atoms.csv``. ``motifgram
compare`` reads them to put several runs on one token vocabulary (a joint token model, or a reference run's)
without the micrographs. The file holds:

``descriptor``
    0-d string: what the features are (``TokenModel.descriptor``: ``zernike``, ``intensity`` or
    ``zernike_context``); runs with different descriptors share no feature space.
``n_max``
    0-d int: the Zernike order the features were computed with.
``images``
    (I,) strings: the micrograph ids, in input order.
``features_<i>``
    (N_i, M) float32: the features of micrograph ``images[i]``, one row per atom of ``atoms.csv`` (same order).

The archive is not compressed: float32 features barely compress (a 2048² graphene run's 50,238 × 36 features:
6.5 MB compressed, 7.2 MB not) and deflating them cost 1.05 s of the run's write stage against 0.02 s
(``np.savez_compressed`` against ``np.savez``, at load ~8 on 2 cores). Both kinds are read alike, so runs
written compressed before still compare.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motifgram.engine.errors import MotifgramError
from motifgram.engine.tokens import TokenModel

__all__ = ["FEATURES_NPZ", "FeatureStore", "write_features", "read_features", "reference_token_model"]

FEATURES_NPZ = "features.npz"


@dataclass(frozen=True)
class FeatureStore:
    """The per-atom features of a run's micrographs.

    Attributes
    ----------
    descriptor : str
        What the features are (``TokenModel.descriptor``).
    n_max : int
        Zernike order of the features.
    images : dict of str to ndarray
        Micrograph id -> (N, M) float32 features, one row per atom of ``atoms.csv``.
    """

    descriptor: str
    n_max: int
    images: dict

    @property
    def n_features(self) -> int:
        """M, the length of one feature vector (0 for a run without atoms)."""
        return next((int(a.shape[1]) for a in self.images.values() if a.ndim == 2), 0)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """At most ``n`` distinct rows drawn without replacement over all micrographs (seeded), as (S, M) float32.

        Rows that repeat exactly are one row: a descriptor writes a copy of a typical atom's features for an atom it
        cannot measure (``chemistry``: the columns at the image edge), and many copies of one point would give a
        mixture fitted to the sample a token of their own."""
        rows = np.concatenate([a for a in self.images.values() if len(a)]) if self.images else np.zeros((0, 0))
        if len(rows):
            rows = rows[np.sort(np.unique(rows, axis=0, return_index=True)[1])]  # first copies, in order
        if len(rows) <= n:
            return rows.astype(np.float32)
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=n, replace=False))
        return rows[pick].astype(np.float32)


def write_features(run_dir, images: Mapping[str, np.ndarray], *, descriptor: str, n_max: int) -> Path:
    """Write ``features.npz`` into ``run_dir``.

    Parameters
    ----------
    run_dir : str or Path
    images : mapping of str to (N, M) array_like of float
        Micrograph id -> features, one row per atom of ``atoms.csv``.
    descriptor : str
    n_max : int

    Returns
    -------
    Path
        The file written.
    """
    path = Path(run_dir) / FEATURES_NPZ
    arrays = {f"features_{i}": np.asarray(a, dtype=np.float32) for i, a in enumerate(images.values())}
    np.savez(path, descriptor=np.array(descriptor), n_max=np.array(int(n_max)),
             images=np.array(list(images), dtype=str), **arrays)
    return path


def read_features(run_dir) -> FeatureStore | None:
    """Read a run's ``features.npz``; None when the run has none (written before it existed).

    Raises
    ------
    MotifgramError
        The file exists but is not a readable feature store (the message names it).
    """
    path = Path(run_dir) / FEATURES_NPZ
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = [str(i) for i in data["images"]]
            images = {image: np.asarray(data[f"features_{i}"], dtype=np.float32) for i, image in enumerate(ids)}
            return FeatureStore(str(data["descriptor"]), int(data["n_max"]), images)
    except (OSError, KeyError, ValueError) as exc:
        raise MotifgramError(f"{path}: not a readable feature file ({exc}); run 'motifgram run' again to "
                             "rewrite it, or delete it to compare with each run's own tokens") from exc


def reference_token_model(path, *, descriptor: str | None = None, n_max: int | None = None) -> TokenModel:
    """The token model of a reference run (spec ``tokens: {model: RUN}``), for a run that reuses its vocabulary.

    Parameters
    ----------
    path : str or Path
        A run directory (its ``tokens.npz``) or a ``tokens.npz`` file.
    descriptor, n_max : optional
        The features the reusing run computes: the model must have been learned on the same ones.

    Raises
    ------
    MotifgramError
        No token model at ``path``, or one learned on other features (the message names both).
    """
    path = Path(path)
    model_path = path / "tokens.npz" if path.is_dir() else path
    if not model_path.is_file():
        raise MotifgramError(f"tokens.model: {model_path} is missing; give a run directory written by 'motifgram "
                             "run' (it holds tokens.npz) or the tokens.npz file itself")
    model = TokenModel.load(model_path)
    if descriptor is not None and model.descriptor != descriptor:
        raise MotifgramError(f"tokens.model: {model_path} was learned on '{model.descriptor}' features but this run "
                             f"computes '{descriptor}'; set features.descriptor: {model.descriptor} (and the "
                             "reference run's detect.method) or drop tokens.model")
    if n_max is not None and int(model.n_max) != int(n_max):
        raise MotifgramError(f"tokens.model: {model_path} was learned with features.n_max {model.n_max} but this "
                             f"run uses {n_max}; set features.n_max: {model.n_max} or drop tokens.model")
    return model
