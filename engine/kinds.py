"""Which minor tokens are kinds: patches of contamination, and the columns of a kind on a lattice's sites.

A kind sits on lattice sites, substituted at random or in order with the other kinds; amorphous contamination
over a crystal adds a random amount of scattering to every column under it, in patches. The columns of such a patch
are bonded to each other, and a token of them pays in bits (its columns' neighbours predict it), yet it is no kind.
So a minor token (below :data:`motifgram.engine.chemistry.MAIN_KIND_SHARE`) whose columns are bonded to columns of
their own token more often than its share of the neighbours allows, beyond the odds of a close call
(:func:`patchy_tokens`), marks contamination: its columns and their bonded neighbours leave the coded columns and
the search runs again, until no token is patchy (:func:`motifgram.engine.vocabulary.choose_vocabulary`). They keep
their features and are tokenised by the vocabulary fitted without them, like every atom. In a lattice of one main
kind (graphene, a glass) that is all: a dopant sits alone. Where several main kinds bond to each other (MoS2, a
perovskite) a kind's token can be bonded to itself too, when it holds columns of the kind it bonds to (the MoS2-Se
image's Se-bearing token holds Mo columns of Se-rich parts), yet its columns are one kind's measurement, as tight as
the features' precision, while a patch's token holds columns of several kinds, each raised by a random amount: there
a patchy token is one whose columns also spread beyond :data:`RESOLUTION` precisions in the integrated intensity, and
only its columns bonded to each other are the patch (a kind may share the token with contamination: MoS2's
Se-bearing columns when the Se is rare); its lone columns are the patch's too when, fitted again without the patch,
they make up most of a minor token that spreads as a patch's does (columns whose fit failed, scattered about a
perovskite's patches) and that does not sit on a main kind's sites (:func:`on_kind_sites`). A dim kind's columns
are measured less precisely than the brightest kind's, by which the spread is measured (an S vacancy's single-S
column in MoS2: 2.8-3.7 times Mo's robust sd, against 2.1-2.4 from counting noise), so the spread alone does not tell
a vacancy from a failed fit about a patch; where they stand does: a single-S column sits on an S2 site, bonded to
three Mo columns as an S2 column is, while holes and the failed fits about a patch have odd neighbours, or none.
"""

import numpy as np
from scipy.special import bdtrc, gammaln

from motifgram.engine.chemistry import MAIN_KIND_SHARE

__all__ = ["CLOSE_CALL_BITS", "PATCH_ENRICHMENT", "RESOLUTION", "patchy_tokens", "one_main_kind", "spread_along",
           "neighbour_contexts", "kt_nats", "on_kind_sites"]


#: A choice whose runner-up (another token count) is less than this many bits longer is a close call: odds
#: below 2**10 = 1024 : 1.
CLOSE_CALL_BITS = 10.0

#: Least distance between two tokens' means in units of the features' precision (see
#: :func:`motifgram.engine.vocabulary.resolved`): two kinds this far apart are told apart column by column with at
#: most 16 % error each way.
RESOLUTION = 2.0

#: How many times more often than its share of the neighbours a patchy token's columns neighbour their own token
#: (:func:`patchy_tokens`): at least twice; contamination on graphene, a glass and the Cairo tiling gave 3-7 times
#: (benchmarks/README.md).
PATCH_ENRICHMENT = 2.0


def patchy_tokens(labels, neighbours, n_tokens, *, spread=None):
    """Minor tokens whose columns are bonded to each other beyond chance and are no one kind: patches (module
    docstring).

    A token holding less than :data:`motifgram.engine.chemistry.MAIN_KIND_SHARE` of the coded rows is bonded to
    itself beyond chance when the number of its coded rows' neighbours of its own token is at least
    :data:`PATCH_ENRICHMENT` times what its share of all the coded rows' neighbours predicts, and more than a
    binomial draw at that share gives at odds below ``2**-CLOSE_CALL_BITS``. In a lattice of one main kind (one
    token holding at least that share), where every bond joins columns of that kind, such a token is a patch. With
    several main kinds a kind's token holding columns of a bonded kind is bonded to itself as well (the Se-bearing
    token of the MoS2-Se image, 3.2 % of the columns: 9.3 times its share; its spread 1.3 precisions): there it is a
    patch only when its columns' ``spread`` exceeds :data:`RESOLUTION` precisions (the contamination tokens of the
    benchmarks' perovskite and MoS2: 2.8-18), and without ``spread`` the test is not made.

    Parameters
    ----------
    labels : (N,) array_like of int
        Token of every row.
    neighbours : (S, J) array_like of int
        Row indices of the neighbours of the first ``S`` (coded) rows, ``-1`` pads.
    n_tokens : int
    spread : callable, optional
        ``spread(rows)``: the spread of the features of the coded rows ``rows`` ((n,) int), in precisions.

    Returns
    -------
    (P,) ndarray of int64
        The patchy tokens.

    Examples
    --------
    >>> chain = np.array([[1, -1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7], [6, -1]])
    >>> patch = np.r_[np.zeros(60, np.int64), np.ones(5, np.int64)]
    >>> line = np.array([[i - 1 if i else -1, i + 1 if i < 64 else -1] for i in range(65)])
    >>> patchy_tokens(patch, line, 2).tolist(), patchy_tokens(np.arange(8) % 2, chain, 2).tolist()
    ([1], [])
    >>> two = np.r_[np.arange(60) % 2, np.full(5, 2)]  # two main kinds bonded to each other, and a patch
    >>> [patchy_tokens(two, line, 3, spread=lambda rows: s).tolist() for s in (3.0, 1.0)]
    [[2], []]
    """
    lab = np.asarray(labels, dtype=np.int64)
    nb = np.asarray(neighbours, dtype=np.int64).reshape(len(neighbours), -1)
    coded = lab[: len(nb)]
    valid = nb >= 0
    around = np.where(valid, lab[np.maximum(nb, 0)], -1)  # (S, J) the neighbours' tokens
    slots = np.bincount(around[valid], minlength=n_tokens)
    one_kind = one_main_kind(coded, n_tokens)
    if spread is None and not one_kind:
        return np.zeros(0, np.int64)  # several main kinds: a kind's token holding columns of a bonded kind looks patchy
    patchy = []
    for t in range(n_tokens):
        own = coded == t
        if not own.any() or own.mean() >= MAIN_KIND_SHARE:
            continue
        same, n, share = int(np.sum(around[own] == t)), int(valid[own].sum()), slots[t] / max(int(valid.sum()), 1)
        if (same >= PATCH_ENRICHMENT * share * n and bdtrc(same - 1, n, share) < 2.0**-CLOSE_CALL_BITS
                and (one_kind or spread(np.flatnonzero(own)) > RESOLUTION)):
            patchy.append(t)
    return np.asarray(patchy, dtype=np.int64)


def one_main_kind(coded, n_tokens):
    """Whether exactly one token holds at least :data:`motifgram.engine.chemistry.MAIN_KIND_SHARE` of the rows
    ``coded`` (their tokens)."""
    return int(np.sum(np.bincount(coded, minlength=n_tokens) >= MAIN_KIND_SHARE * len(coded))) == 1


def spread_along(z, floor, heavier, rows):
    """The robust standard deviation (1.4826 x the median absolute deviation) of the rows ``rows`` of ``z`` along
    ``heavier``, in units of the precision ``floor`` along it."""
    along = np.asarray(z, dtype=np.float64)[rows] @ heavier
    return float(1.4826 * np.median(np.abs(along - np.median(along))) / np.sqrt(heavier @ floor @ heavier))


def neighbour_contexts(labels, neighbours, n_tokens):
    """(S,) int64: the context of each of the first ``S`` (coded) rows, the multiset of its neighbours' tokens, as
    an index (equal indices, equal multisets).

    Parameters
    ----------
    labels : (N,) array_like of int
        Token of every row, in ``[0, n_tokens)``.
    neighbours : (S, J) array_like of int
        Row indices of the neighbours of the first ``S`` rows, ``-1`` pads.
    n_tokens : int

    Returns
    -------
    (S,) ndarray of int64
    """
    lab = np.asarray(labels, dtype=np.int64)
    nb = np.asarray(neighbours, dtype=np.int64).reshape(len(neighbours), -1)
    counts = np.zeros((len(nb), n_tokens), np.int64)
    rows, cols = np.nonzero(nb >= 0)
    np.add.at(counts, (rows, lab[nb[rows, cols]]), 1)
    base = nb.shape[1] + 1  # a count is at most J: one integer per multiset, in the rows' lexicographic order
    if base ** n_tokens >= 2**62:
        return np.unique(counts, axis=0, return_inverse=True)[1].ravel()
    # np.unique over rows sorts a structured view, ~30x slower than over one int64 key: the description length
    # codes the contexts of every candidate vocabulary (benchmarks/README.md, "Every restart a candidate")
    return np.unique(counts @ base ** np.arange(n_tokens - 1, -1, -1, dtype=np.int64), return_inverse=True)[1]


def kt_nats(counts):
    """Nats of an adaptive Krichevsky–Trofimov code of a sequence of symbols with the counts ``counts`` (one per
    symbol of the alphabet, along the last axis; a leading axis codes several sequences, each on its own).

    Examples
    --------
    >>> round(float(kt_nats([3, 3]) / np.log(2.0)), 2)  # six symbols of two kinds
    7.68
    """
    counts = np.asarray(counts)
    half = counts.shape[-1] / 2
    return gammaln(counts.sum(axis=-1) + half) - gammaln(half) - (gammaln(counts + 0.5) - gammaln(0.5)).sum(axis=-1)


def on_kind_sites(labels, neighbours, rows):
    """Whether the coded rows ``rows`` sit on a main kind's sites: their neighbours' tokens are told more briefly by
    that kind's than by their own.

    The contexts (:func:`neighbour_contexts`) of ``rows`` coded with those of a main kind's columns (a token of at
    least :data:`motifgram.engine.chemistry.MAIN_KIND_SHARE` of the coded rows; Krichevsky–Trofimov estimate over
    every context of the coded rows) take no more bits than coded by an adaptive code of their own. A single-S
    column's three Mo neighbours are an S2 column's context, while the odd or missing neighbours of the MoS2-Se
    image's holes and of the failed fits about a perovskite's patches are rare in every kind's. Failed fits on the
    lattice have a lattice column's neighbours and pass (``benchmarks/README.md``).

    Parameters
    ----------
    labels : (N,) array_like of int
        Token of every row.
    neighbours : (S, J) array_like of int
        Row indices of the neighbours of the first ``S`` (coded) rows, ``-1`` pads.
    rows : (n,) array_like of int
        Coded rows, none of a main kind's token.

    Returns
    -------
    bool

    Examples
    --------
    >>> line = np.array([[i - 1 if i else -1, i + 1 if i < 59 else -1] for i in range(60)])
    >>> alternating = np.arange(60) % 2  # two main kinds bonded to each other
    >>> vacancy = alternating.copy(); vacancy[[10, 30, 50]] = 2  # three of kind 0's sites, bonded to kind 1
    >>> odd = alternating.copy(); odd[[0, 29, 30]] = 2  # at the end, and bonded to each other
    >>> on_kind_sites(vacancy, line, [10, 30, 50]), on_kind_sites(odd, line, [0, 29, 30])
    (True, False)
    """
    lab = np.asarray(labels, dtype=np.int64)
    coded = lab[: len(neighbours)]
    context = neighbour_contexts(lab, neighbours, int(lab.max()) + 1)
    n_contexts = int(context.max()) + 1
    own = np.bincount(context[np.asarray(rows, dtype=np.int64)], minlength=n_contexts)
    own_bits = kt_nats(own) / np.log(2.0)
    tokens, size = np.unique(coded, return_counts=True)
    for t in tokens[size >= MAIN_KIND_SHARE * len(coded)]:
        kind = np.bincount(context[coded == t], minlength=n_contexts)
        if -np.sum(own * np.log2((kind + 0.5) / (kind.sum() + n_contexts / 2))) <= own_bits:
            return True
    return False
