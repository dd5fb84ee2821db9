"""What tokens are called and what they look like: default names, brightness labels, class averages.

Names are ``A``, ``B``, ... (most abundant first, as the grammar text and ``atoms.csv`` write them) unless
the user gives ``tokens.names``. With the ``chemistry`` descriptor a token's mean column intensity is known,
and :func:`brightness_labels` ranks the tokens by it (``bright``, ``mid``, ``dim``) for the summary and the
report. The token gallery shows each token's rotation-aligned class average (:func:`class_averages`).
"""

import string

import numpy as np

from motifgram.engine.patches import rotate_patches
from motifgram.engine.zernike import moment_orientation, n_max_for, zernike_orders

__all__ = ["token_names", "brightness_labels", "class_averages"]


def token_names(k):
    """Default token names: ``A`` ... ``Z``, then ``AA``, ``AB``, ... (k names)."""
    letters = string.ascii_uppercase
    names = list(letters[:k])
    width = 2
    while len(names) < k:
        for i in range(len(letters) ** width):
            digits = []
            for _ in range(width):
                i, r = divmod(i, len(letters))
                digits.append(letters[r])
            names.append("".join(reversed(digits)))
            if len(names) == k:
                break
        width += 1
    return tuple(names)

def class_averages(patches, moments, labels, k, *, max_per_token=2048, seed=0):
    """Rotation-aligned average patch of each token.

    For each token the ``m >= 1`` Zernike moment with the largest mean magnitude over its members sets
    the orientation (:func:`motifgram.engine.zernike.moment_orientation`); each member is rotated into that
    common pose and the members are averaged.

    Parameters
    ----------
    patches : (N, P, P) array_like of float
    moments : (N, M) array_like of complex
        Zernike moments of the patches.
    labels : (N,) array_like of int
        Token index per patch, in ``[0, k)``.
    k : int
        Number of tokens.
    max_per_token : int
        At most this many members (a seeded random subset) are averaged per token.
    seed : int
        Seed for that subset.

    Returns
    -------
    (k, P, P) ndarray of float32
        Zeros for a token without members.
    """
    arr = np.asarray(patches, dtype=np.float32)
    mom = np.asarray(moments)
    lab = np.asarray(labels)
    if not (len(arr) == len(mom) == len(lab)):
        raise ValueError(f"patches, moments and labels differ in length: {len(arr)}, {len(mom)}, {len(lab)}")
    n, m = zernike_orders(n_max_for(mom.shape[1]))
    rng = np.random.default_rng(seed)
    picked, angles, owner = [], [], []
    for token in range(k):
        members = np.flatnonzero(lab == token)
        if len(members) == 0:
            continue
        if len(members) > max_per_token:
            members = np.sort(rng.choice(members, max_per_token, replace=False))
        strength = np.where(m > 0, np.abs(mom[members]).mean(axis=0), -1.0)
        col = int(np.argmax(strength))
        picked.append(members)
        angles.append(moment_orientation(mom[members], nm=(int(n[col]), int(m[col]))))
        owner.append(np.full(len(members), token))
    out = np.zeros((k,) + arr.shape[1:], np.float32)
    if not picked:
        return out
    idx = np.concatenate(picked)
    token_of = np.concatenate(owner)
    aligned = rotate_patches(arr[idx], -np.concatenate(angles))
    np.add.at(out, token_of, aligned)
    counts = np.bincount(token_of, minlength=k).astype(np.float32)
    return out / np.maximum(counts, 1.0)[:, None, None]



def brightness_labels(log_intensities):
    """Labels of tokens by their mean column intensity: ``bright`` ... ``dim``.

    Parameters
    ----------
    log_intensities : (T,) array_like of float
        Each token's mean log relative column intensity (the ``chemistry`` descriptor's first column).

    Returns
    -------
    tuple of str
        One label per token, in the given order: one token is ``"all"``; two are ``"bright"`` and ``"dim"``;
        three add ``"mid"``; more number the middle ones from the brightest (``"mid1"``, ``"mid2"``, ...).

    Examples
    --------
    >>> brightness_labels([0.0, -1.1, 1.4])
    ('mid', 'dim', 'bright')
    """
    values = np.asarray(log_intensities, dtype=np.float64).ravel()
    t = len(values)
    if t == 1:
        return ("all",)
    ranked = ["bright"] + (["mid"] if t == 3 else [f"mid{i}" for i in range(1, t - 1)]) + ["dim"]
    order = np.argsort(-values, kind="stable")
    labels = [""] * t
    for rank, token in enumerate(order):
        labels[token] = ranked[rank]
    return tuple(labels)
