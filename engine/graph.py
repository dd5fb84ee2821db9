"""Bond graph of atom columns and its rings (faces of the planar bond network).

Pipeline (:func:`build_graph`):

1. **Candidates.** The Delaunay triangulation of the positions (``scipy.spatial.Delaunay``) gives the
   candidate edges; every atom's nearest neighbour is among them, so its nearest-neighbour distance
   ``d_nn[i]`` is the shortest candidate edge at ``i``. The *local* nearest-neighbour distance ``s[i]`` is
   the lower median of ``d_nn`` over ``i`` and its candidate neighbours, so that neither a stray atom far
   out in vacuum nor a spurious detection right next to an atom sets the scale.
2. **Bonds.** A candidate edge ``(i, j)`` of length ``L`` is a bond when its *ratio*
   ``L / max(s[i], s[j])`` is below the bond factor ``tau``. Bonds are a subset of Delaunay edges, so
   they never cross: the bond graph is a planar straight-line graph.
3. **Auto bond factor** (``bond_factor=None``): histogram of the ratios of all candidate edges on
   ``[1, 2.5]`` in bins of 0.02, smoothed with a 3-bin box. Nearest-neighbour bonds form the first peak,
   at ratio ~1; ``tau`` is the first minimum after it: the midpoint of the first run of bins that attain
   the lowest smoothed count inside the window :data:`AUTO_BOND_WINDOW` = [1.15, 1.6]. When that cut gives
   a mean degree below :data:`MIN_MEAN_DEGREE` (pairs or chains, e.g. Si dumbbells or a rectangular
   lattice's short side, which cannot hold rings), ``tau`` moves on to the next valley (a local minimum at
   most half as high as the highest bin before it) whose cut reaches that degree, up to ratio 2.5. A
   perfect honeycomb (ratios 1 and sqrt(3)) gives 1.37, a square lattice (1 and sqrt(2)) 1.26. The value
   is logged at INFO and kept as :attr:`AtomGraph.bond_factor`.
4. **Faces** by half-edge traversal, vectorised: half-edges sorted by (origin, angle); the successor of
   half-edge ``u -> v`` in its face is ``v -> w``, where ``w`` is the neighbour of ``v`` following ``u``
   in increasing ``atan2(dy, dx)`` order at ``v``. Face cycles are the cycles of this permutation,
   labelled with ``scipy.sparse.csgraph.connected_components``.
5. **Rings** are the bounded faces that are

   * simple cycles of 3..``max_ring`` atoms (no atom repeated, so faces with dangling bonds drop out),
   * empty: the Delaunay triangles inside the face number exactly ``size - 2`` (no atom, bonded or not,
     lies inside the ring),
   * of a size whose mean corner, ``180 (size - 2) / size`` degrees, is at most ``regions.ANGLE_TOLERANCE``
     narrower than the network's typical narrowest angle between consecutive bonds (a triangle of stray
     atoms, 60 degrees, in a honeycomb or a glass of 3-coordinated atoms, 105-120: no ring; a triangular
     lattice's triangles and a honeycomb's 4- and 5-rings pass),
   * on a crystal, made at least half (:data:`RING_ORDERED`) of *ordered* atoms
     (:mod:`motifgram.engine.regions`: regular atoms among regular neighbours), or enclosed by them (at
     least :data:`RING_ENCLOSED` of the bonds leaving the ring end at ordered atoms: a lone defect ring
     such as a dislocation core of 5-coordinated atoms in a triangular lattice): amorphous carbon or noise
     peaks over a crystal form no rings, its defects do. An image without a lattice (a glass) keeps every
     ring.

   Every atom is labelled ``network`` or ``disordered`` (:mod:`motifgram.engine.regions`:
   contamination and noise peaks).

   A ring with an atom within ``border_px`` of the image edge (the edge of pixel ``(0, 0)`` is at
   ``x = -0.5``, ``y = -0.5``; the far edges at ``W - 0.5`` and ``H - 0.5``) or on the *outer face* (the
   region outside the bond network, reached from beyond the convex hull without crossing a bond) is kept
   and flagged (:attr:`AtomGraph.ring_border`): a complete ring next to the edge is a ring; a face left open
   by the edge is not a bounded face at all.

Orientation: every ring lists its atoms **counter-clockwise as displayed** (x to the right, y pointing
down, as ``imshow`` shows an image). Equivalently, the shoelace sum
``sum(x[k] * y[k+1] - x[k+1] * y[k])`` over the raw ``xy`` is negative. Each ring starts at its
smallest atom index, and rings are sorted lexicographically; the output is deterministic.

Degenerate input: 0 or 1 atoms give no bonds. When the Delaunay triangulation fails (2 atoms, or all
atoms collinear: ``QhullError``), the candidate edges are the consecutive pairs along the line and the
same bond rule applies, giving a chain; there are no rings. Duplicate positions (two atoms closer than
:data:`DUPLICATE_TOL_PX`) raise :class:`~motifgram.engine.errors.MotifgramError`: merging them silently
would renumber atoms relative to their tokens and intensities.

Why not networkx: ``PlanarEmbedding.traverse_face`` walks faces one Python step at a time (1.25 s for
50k atoms); the array version here does graph and rings for 50k atoms in ~0.2 s.

Scaling: everything here but the triangulation grows linearly with the atom count (b = 0.96 from 3k to 50k
atoms); scipy's qhull Delaunay does not (b = 1.27-1.36 measured, on random points too: 5.6 ms for 3k, 0.27 s
for 50k, 1.4 s for 200k), and it is ~75% of the stage at 50k atoms.
"""

import dataclasses
import functools
import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay, QhullError, cKDTree

from motifgram.engine.display import format_counts, summary_html, summary_text
from motifgram.engine.errors import MotifgramError
from motifgram.engine.geometry import border_distance
from motifgram.engine.regions import ANGLE_TOLERANCE, REGION_DISORDERED, REGION_NETWORK, Regions, atom_regions
from motifgram.engine.uniq import radix_argsort, unique_pairs

__all__ = [
    "AUTO_BOND_WINDOW",
    "AUTO_BOND_SEARCH_MAX",
    "MIN_MEAN_DEGREE",
    "DUPLICATE_TOL_PX",
    "RING_ENCLOSED",
    "RING_ORDERED",
    "AtomGraph",
    "Rings",
    "RingStats",
    "build_graph",
    "graph_from_bonds",
    "ring_statistics",
    "face_cycles",
    "empty_polygons",
    "triangle_regions",
    "aboav_weaire",
]

log = logging.getLogger(__name__)

AUTO_BOND_WINDOW = (1.15, 1.6)
#: When the first cut leaves pairs or chains, the auto bond factor searches later valleys of the ratio
#: histogram, up to this ratio, ...
AUTO_BOND_SEARCH_MAX = 2.5
#: ... for the first whose bonds give the atoms at least this mean degree (a network with rings: a honeycomb
#: has 3, a square lattice 4; a cut inside a dumbbell or a chain gives 1–2).
MIN_MEAN_DEGREE = 2.5
"""Bounds of the automatic bond factor (ratio of edge length to local nearest-neighbour distance)."""

DUPLICATE_TOL_PX = 1e-6
"""Two atoms closer than this (px) are duplicates, and :func:`build_graph` refuses them."""
#: On a crystal, a ring is kept when at least this share of its atoms is ordered (:mod:`motifgram.engine.regions`)
RING_ORDERED = 0.5
#: ... or when at least this share of the bonds leaving it end at ordered atoms (a lone defect ring)
RING_ENCLOSED = 0.75

_HIST_BIN = 0.02  # ratio histogram bin width for the auto bond factor


class Rings(Sequence):
    """Rings as one ragged array: the atom ids of every ring concatenated, with offsets.

    Reads as a tuple of tuples of int (indexing, iteration, ``len``, ``==`` against any sequence of
    sequences, ``repr``) but holds two arrays instead of a Python tuple per ring and an int per atom: for
    50k atoms (24k rings) ~1.2 MB instead of ~7 MB, and array consumers (ring adjacency, ring words, the
    parse tree) read the arrays without a Python loop over rings.

    Attributes
    ----------
    atoms : (S,) int64 ndarray, read-only
        Atom ids of ring 0, then ring 1, ...; ring ``k`` is ``atoms[offsets[k]:offsets[k + 1]]``.
    offsets : (R + 1,) int64 ndarray, read-only
        Start of each ring in ``atoms``, then ``S``.

    Examples
    --------
    >>> r = Rings.from_sequences([(0, 2, 1), (1, 2, 3, 4)])
    >>> len(r), r[1], r.sizes.tolist(), r == ((0, 2, 1), (1, 2, 3, 4))
    (2, (1, 2, 3, 4), [3, 4], True)
    """

    __slots__ = ("atoms", "offsets")

    def __init__(self, atoms, offsets):
        atoms = np.array(atoms, dtype=np.int64).reshape(-1)
        offsets = np.array(offsets, dtype=np.int64).reshape(-1)
        if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(atoms) or np.any(np.diff(offsets) < 0):
            raise MotifgramError(
                f"Rings: offsets must rise from 0 to len(atoms) = {len(atoms)}, got {offsets[:3].tolist()}..."
            )
        atoms.setflags(write=False)
        offsets.setflags(write=False)
        self.atoms = atoms
        self.offsets = offsets

    @classmethod
    def from_sequences(cls, rings):
        """Rings from a sequence of sequences of atom ids (a ``Rings`` is returned as it is)."""
        if isinstance(rings, Rings):
            return rings
        rings = [r if isinstance(r, tuple) else tuple(r) for r in rings]
        sizes = np.fromiter(map(len, rings), dtype=np.int64, count=len(rings))
        atoms = np.fromiter((int(a) for r in rings for a in r), dtype=np.int64, count=int(sizes.sum()))
        return cls(atoms, np.concatenate([[0], np.cumsum(sizes)]))

    @classmethod
    def from_padded(cls, padded, sizes):
        """Rings from an (R, L) array whose row ``k`` starts with ring ``k``'s ``sizes[k]`` atoms."""
        sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
        if len(sizes) == 0:  # (0, W) rows: reshape(0, -1) would fail
            return cls([], [0])
        padded = np.asarray(padded, dtype=np.int64).reshape(len(sizes), -1)
        return cls(padded[np.arange(padded.shape[1]) < sizes[:, None]], np.concatenate([[0], np.cumsum(sizes)]))

    @property
    def sizes(self):
        """(R,) int64 ndarray: atoms per ring."""
        return np.diff(self.offsets)

    def padded(self, fill=-1):
        """(R, L) int64 ndarray of the rings padded with ``fill`` to the longest ring ``L`` (0 columns when R = 0)."""
        sizes = self.sizes
        width = int(sizes.max()) if len(sizes) else 0
        out = np.full((len(sizes), width), fill, dtype=np.int64)
        out[np.arange(width) < sizes[:, None]] = self.atoms
        return out

    def to_tuples(self):
        """The rings as a tuple of tuples of int."""
        sizes = self.sizes
        out = [()] * len(sizes)
        starts = self.offsets[:-1]
        for m in np.unique(sizes).tolist():  # one tolist per ring size: ~10x faster than slicing each ring
            idx = np.flatnonzero(sizes == m)
            block = self.atoms[starts[idx, None] + np.arange(m)]
            for k, r in zip(idx.tolist(), map(tuple, block.tolist())):
                out[k] = r
        return tuple(out)

    def take(self, index):
        """The rings ``index`` ((K,) int or bool array_like), in that order, as ``Rings``."""
        index = np.arange(len(self))[np.asarray(index)].reshape(-1)
        sizes = self.sizes[index]
        ends = np.cumsum(sizes)
        pos = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(self.offsets[index] - (ends - sizes), sizes)
        return Rings(self.atoms[pos], np.concatenate([[0], ends]))

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, k):
        if isinstance(k, slice):
            return self.take(np.arange(len(self))[k])
        k = range(len(self))[k]  # IndexError and negative indices as for a tuple
        return tuple(self.atoms[self.offsets[k]:self.offsets[k + 1]].tolist())

    def __iter__(self):
        return iter(self.to_tuples())

    def __eq__(self, other):
        if isinstance(other, Rings):
            return np.array_equal(self.offsets, other.offsets) and np.array_equal(self.atoms, other.atoms)
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and self.to_tuples() == tuple(tuple(r) for r in other)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return repr(self.to_tuples())

    def __reduce__(self):
        return Rings, (self.atoms, self.offsets)


@dataclasses.dataclass(frozen=True, eq=False)
class AtomGraph:
    """Atoms, their bonds and rings in one micrograph.

    Compared by identity (``eq=False``): the fields hold numpy arrays.

    Attributes
    ----------
    xy : (N, 2) float64 ndarray, px
        Atom positions (x = column, y = row; origin at the centre of the top-left pixel).
    tokens : (N,) str ndarray
        Token name per atom; empty strings before tokenisation (see :meth:`with_tokens`).
    bonds : (B, 2) int64 ndarray
        Bonded atom pairs with ``i < j``, sorted lexicographically.
    rings : Rings
        Atom indices of each ring in cyclic order, counter-clockwise as displayed (y down), starting at
        the ring's smallest index; rings sorted lexicographically. Bounded faces of size 3..max_ring not
        touching the border (see the module docstring for the exact rule). Reads as a tuple of tuples of
        int; ``rings.atoms`` and ``rings.offsets`` are its arrays. The constructor also takes any sequence
        of sequences of atom ids.
    image_shape : tuple of int
        ``(H, W)`` of the micrograph, px.
    bond_factor : float
        Bond factor ``tau`` used (auto or given); NaN when the graph was not built by :func:`build_graph`.
    ring_border : (R,) bool ndarray
        Rings with an atom near the image edge or on the outer face (kept, flagged); default all False.
    region : (N,) str ndarray
        ``"network"`` for atoms of the regular bonded network, ``"disordered"`` for the rest
        (:mod:`motifgram.engine.regions`); default all ``"network"``.
    """

    xy: np.ndarray
    tokens: np.ndarray
    bonds: np.ndarray
    rings: Rings
    image_shape: tuple
    bond_factor: float = math.nan
    ring_border: np.ndarray | None = None
    region: np.ndarray | None = None

    def __post_init__(self):
        xy = np.asarray(self.xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise MotifgramError(f"AtomGraph.xy must have shape (N, 2), got {xy.shape}")
        n = len(xy)
        tokens = np.asarray(self.tokens, dtype=np.str_)
        if tokens.shape != (n,):
            raise MotifgramError(f"AtomGraph.tokens must have shape ({n},) to match xy, got {tokens.shape}")
        bonds = np.asarray(self.bonds, dtype=np.int64).reshape(-1, 2)
        if len(bonds) and (bonds.min() < 0 or bonds.max() >= n or np.any(bonds[:, 0] >= bonds[:, 1])):
            raise MotifgramError(f"AtomGraph.bonds must be pairs (i, j) of atom indices with 0 <= i < j < {n}")
        rings = Rings.from_sequences(self.rings)
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "bonds", bonds)
        object.__setattr__(self, "rings", rings)
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        object.__setattr__(self, "bond_factor", float(self.bond_factor))
        border = np.zeros(len(rings), dtype=bool) if self.ring_border is None else np.asarray(self.ring_border, bool)
        if border.shape != (len(rings),):
            raise MotifgramError(f"AtomGraph.ring_border must have shape ({len(rings)},), got {border.shape}")
        region = np.full(n, REGION_NETWORK) if self.region is None else np.asarray(self.region, dtype=np.str_)
        if region.shape != (n,):
            raise MotifgramError(f"AtomGraph.region must have shape ({n},), got {region.shape}")
        object.__setattr__(self, "ring_border", border)
        object.__setattr__(self, "region", region)

    @property
    def n_atoms(self):
        """Number of atoms ``N``."""
        return len(self.xy)

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        names, counts = np.unique(self.tokens, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        sizes, size_counts = np.unique(self.ring_sizes, return_counts=True)
        by_count = np.argsort(-size_counts, kind="stable")
        rows = [
            ("image", f"{self.image_shape[0]} x {self.image_shape[1]} px"),
            ("tokens", format_counts({names[i]: int(counts[i]) for i in order}) if names.size and names[0] != ""
             else "not assigned"),
            ("rings", format_counts({f"{sizes[i]}-rings": int(size_counts[i]) for i in by_count})),
            ("bond factor", f"{self.bond_factor:.3g}"),
        ]
        return f"AtomGraph: {self.n_atoms} atoms, {len(self.bonds)} bonds, {len(self.rings)} rings", rows

    def __repr__(self) -> str:
        return summary_text(*self._summary())

    def _repr_html_(self) -> str:
        return summary_html(*self._summary())

    def bond_lengths_px(self):
        """(B,) float64 ndarray, px: the length of every bond, in the order of :attr:`bonds`."""
        return np.hypot(*(self.xy[self.bonds[:, 1]] - self.xy[self.bonds[:, 0]]).T)

    @functools.cached_property
    def ring_sizes(self):
        """(R,) int64 ndarray: number of atoms of each ring."""
        return self.rings.sizes

    def interior(self):
        """This graph without its border-flagged rings (:attr:`ring_border`); itself when none is flagged.

        A flagged ring is complete, but some of its atoms' neighbourhoods are cut by the image edge (or face
        the outside of the atom network), so their tokens are measured on part of what defines them: grammar
        induction, the parse tree and the disorder measures read the interior rings only.
        """
        if not self.ring_border.any():
            return self
        return dataclasses.replace(self, rings=self.rings.take(~self.ring_border), ring_border=None)

    def with_tokens(self, tokens):
        """Return a copy with ``tokens`` ((N,) str) as the atoms' token names."""
        return dataclasses.replace(self, tokens=np.asarray(tokens, dtype=np.str_))

    def ring_adjacency(self):
        """Pairs of rings that share a bond.

        Returns
        -------
        (E, 2) int64 ndarray
            Ring index pairs ``(i, j)``, ``i < j``, sorted lexicographically, each pair once.
        """
        rings = self.rings
        if not len(rings):
            return np.empty((0, 2), dtype=np.int64)
        sizes = rings.sizes
        r = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        a = rings.atoms
        following = np.arange(1, len(a) + 1)
        ends = sizes > 0
        following[rings.offsets[1:][ends] - 1] = rings.offsets[:-1][ends]  # a ring's last atom bonds to its first
        b = a[following]
        key = np.minimum(a, b) * self.n_atoms + np.maximum(a, b)
        order = radix_argsort(key, self.n_atoms**2)
        key, r = key[order], r[order]
        # A bond borders at most two faces, so shared bonds are equal neighbours in the sorted keys.
        same = np.flatnonzero(key[1:] == key[:-1])
        pairs = np.sort(np.stack([r[same], r[same + 1]], axis=1), axis=1)
        return unique_pairs(pairs, len(sizes))

    def to_networkx(self):
        """The bond graph as an ``nx.Graph``.

        Nodes are atom indices with attributes ``xy`` (tuple of float, px) and ``token`` (str); edges are
        the bonds; graph attributes ``rings`` (:attr:`rings` as a tuple of tuples), ``image_shape`` and ``bond_factor``.
        """
        import networkx as nx  # only here: 0.07 s of imports a run does not need

        g = nx.Graph(rings=self.rings.to_tuples(), image_shape=self.image_shape, bond_factor=self.bond_factor)
        g.add_nodes_from(
            (i, {"xy": (x, y), "token": t}) for i, ((x, y), t) in enumerate(zip(self.xy.tolist(), self.tokens.tolist()))
        )
        g.add_edges_from(self.bonds.tolist())
        return g


class RingStats(NamedTuple):
    """Ring-size statistics.

    p_n : dict of int to float
        Fraction of rings with ``n`` atoms, keys ascending.
    mean : float
        Mean ring size ``<n>`` (NaN without rings).
    mu2 : float
        Second moment ``sum_n p_n (n - <n>)**2`` (NaN without rings).
    """

    p_n: dict
    mean: float
    mu2: float


def ring_statistics(ring_sizes):
    """Distribution of ring sizes, its mean and second moment ``mu2``.

    Parameters
    ----------
    ring_sizes : (R,) array_like of int
        Atoms per ring, e.g. :attr:`AtomGraph.ring_sizes`.

    Returns
    -------
    RingStats
        ``p_n``, ``mean`` and ``mu2 = sum_n p_n (n - mean)**2``; NaN moments and an empty ``p_n`` for R = 0.

    Examples
    --------
    >>> ring_statistics([5, 7, 6, 6])
    RingStats(p_n={5: 0.25, 6: 0.5, 7: 0.25}, mean=6.0, mu2=0.5)
    """
    sizes = np.asarray(ring_sizes, dtype=np.int64).ravel()
    if sizes.size == 0:
        return RingStats({}, math.nan, math.nan)
    n, counts = np.unique(sizes, return_counts=True)
    p = counts / sizes.size
    mean = float(np.sum(p * n))
    return RingStats(dict(zip(n.tolist(), p.tolist())), mean, float(np.sum(p * (n - mean) ** 2)))


def aboav_weaire(graph):
    """Fit the Aboav–Weaire law ``m(n) = 6 - a + (6 a + mu2) / n`` to a graph's rings.

    ``m(n)`` is the mean size of the rings sharing a bond with an ``n``-ring, pooled over all
    (n-ring, neighbour) pairs. Only kept rings count as neighbours, so rings next to the border or to
    large holes contribute fewer pairs. ``a`` is the least-squares solution of
    ``n m(n) - 6 n - mu2 = a (6 - n)``, weighted by the number of ``n``-rings.

    Parameters
    ----------
    graph : AtomGraph

    Returns
    -------
    a : float
        Aboav–Weaire parameter; NaN when fewer than one ring size other than 6 has neighbours.
    mu2 : float
        Second moment of the ring-size distribution (:func:`ring_statistics`).

    References
    ----------
    D. Weaire, "Some remarks on the arrangement of grains in a polycrystal", Metallography 7, 157 (1974).
    """
    sizes = graph.ring_sizes
    mu2 = ring_statistics(sizes).mu2
    pairs = graph.ring_adjacency()
    if len(pairs) == 0:
        return math.nan, mu2
    own = np.concatenate([sizes[pairs[:, 0]], sizes[pairs[:, 1]]])
    other = np.concatenate([sizes[pairs[:, 1]], sizes[pairs[:, 0]]])
    n = np.unique(own)
    idx = np.searchsorted(n, own)
    m = np.bincount(idx, weights=other) / np.bincount(idx)
    w = np.bincount(np.searchsorted(n, sizes[np.isin(sizes, n)]), minlength=len(n))
    x = 6.0 - n
    y = n * m - 6.0 * n - mu2
    denom = np.sum(w * x * x)
    if denom == 0:
        return math.nan, mu2
    return float(np.sum(w * x * y) / denom), mu2


def build_graph(xy, *, image_shape, bond_factor=None, max_ring=12, border_px=None):
    """Bond graph and rings of atom positions.

    Parameters
    ----------
    xy : (N, 2) array_like of float, px
        Atom positions (x = column, y = row). Must be finite and pairwise farther apart than
        :data:`DUPLICATE_TOL_PX`.
    image_shape : tuple of int
        ``(H, W)`` of the micrograph, px.
    bond_factor : float or None
        ``tau`` > 1: candidate edges shorter than ``tau * max(s[i], s[j])`` are bonds (``s``: local
        nearest-neighbour distance). None picks it from the ratio histogram, within
        :data:`AUTO_BOND_WINDOW`; the module docstring gives both rules.
    max_ring : int
        Largest ring size kept (>= 3).
    border_px : float or None
        Rings with an atom closer than this to the image edge are dropped, px (>= 0). None: half the
        median bond length.

    Returns
    -------
    AtomGraph
        With empty tokens; see the module docstring for the ring rule and orientation.

    Raises
    ------
    MotifgramError
        Malformed ``xy``, bad parameters, or duplicate positions.

    Examples
    --------
    A 4 x 4 square grid: 24 bonds, and only the central square is away from the outer face. It runs
    down, right, then up on screen: counter-clockwise as displayed.

    >>> xy = np.array([[x, y] for y in range(4) for x in range(4)], float) * 10 + 5
    >>> g = build_graph(xy, image_shape=(40, 40))
    >>> round(g.bond_factor, 2), len(g.bonds), g.rings
    (1.26, 24, ((5, 9, 10, 6),))
    """
    xy = _validate_xy(xy)
    image_shape = _validate_image_shape(image_shape)
    if isinstance(max_ring, bool) or not isinstance(max_ring, (int, np.integer)) or max_ring < 3:
        raise MotifgramError(f"max_ring must be an integer >= 3, got {max_ring!r}")
    if bond_factor is not None and not (math.isfinite(bond_factor) and bond_factor > 1):
        raise MotifgramError(f"bond_factor must be a finite number > 1 (or None for auto), got {bond_factor!r}")
    if border_px is not None and not (math.isfinite(border_px) and border_px >= 0):
        raise MotifgramError(f"border_px must be a finite number >= 0 px (or None for auto), got {border_px!r}")
    n = len(xy)

    tri = None
    if n >= 3:
        try:
            tri = Delaunay(xy)
        except QhullError:
            log.debug("Delaunay failed for %d atoms (collinear): bonds along the line, no rings", n)
    if tri is not None:
        indptr, indices = tri.vertex_neighbor_vertices
        i = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        key = np.sort(i[i < indices] * n + indices[i < indices])
        cand = np.stack([key // n, key % n], axis=1)
    else:
        cand = _chain_edges(xy)

    length = np.hypot(*(xy[cand[:, 1]] - xy[cand[:, 0]]).T)
    scale = _local_scale(n, cand, length)
    ratio = length / np.maximum(scale[cand[:, 0]], scale[cand[:, 1]])
    if bond_factor is None:
        bond_factor = _auto_bond_factor(ratio, n)
        log.info("auto bond factor %.3f (edge ratio histogram of %d candidate edges)", bond_factor, len(ratio))
    bond_factor = float(bond_factor)
    keep = ratio < bond_factor
    bonds, bond_len = cand[keep], length[keep]
    if border_px is None:
        border_px = 0.5 * float(np.median(bond_len)) if len(bond_len) else 0.0
        log.debug("auto border %.2f px", border_px)

    if tri is None or len(bonds) < 3:
        network = np.ones(n, dtype=bool)
        rings, border = Rings([], [0]), np.zeros(0, bool)
    else:
        faces = triangle_regions(xy, bonds, tri)
        regions = atom_regions(xy, bonds, image_shape=image_shape, outer=faces[2])
        network = regions.network
        rings, border = _rings(xy, bonds, tri, image_shape, max_ring, float(border_px), regions, faces)
    return AtomGraph(
        xy=xy,
        tokens=np.full(n, "", dtype="<U1"),
        bonds=bonds,
        rings=rings,
        image_shape=image_shape,
        bond_factor=bond_factor,
        ring_border=border,
        region=np.where(network, REGION_NETWORK, REGION_DISORDERED),
    )


def graph_from_bonds(xy, bonds, *, image_shape, max_ring=12, border_px=None, bond_factor=math.nan):
    """Rings of atoms whose bonds are given rather than found by a distance cut (e.g. a triangulation's dual).

    The rings follow :func:`build_graph`'s rule (module docstring, step 5), with the emptiness and
    outer-face tests made on the given bonds instead of the Delaunay triangulation of ``xy`` (given bonds
    need not be Delaunay edges): a ring is a simple bounded face of 3..``max_ring`` atoms with no other atom
    inside its polygon, no atom on the outer boundary walk of a connected piece of the graph (its outer
    face) and no atom within ``border_px`` of the image edge.

    Parameters
    ----------
    xy : (N, 2) array_like of float, px
        Atom positions (x = column, y = row), finite, no duplicates (as for :func:`build_graph`).
    bonds : (B, 2) array_like of int
        Bonded atom pairs, in any order and orientation; the straight bonds must not cross (a planar
        straight-line graph), as the dual of a triangulation's triangles does not.
    image_shape : tuple of int
        ``(H, W)`` of the micrograph, px.
    max_ring : int
        Largest ring size kept (>= 3).
    border_px : float or None
        Rings with an atom closer than this to the image edge are dropped, px (>= 0). None: half the median
        bond length.
    bond_factor : float
        Kept as :attr:`AtomGraph.bond_factor` (e.g. the bond factor of the lattice the bonds were derived
        from); NaN: none.

    Returns
    -------
    AtomGraph
        With empty tokens, the bonds once each as ``(i, j)``, ``i < j``, sorted, and the rings oriented,
        started and sorted as :func:`build_graph`'s.

    Raises
    ------
    MotifgramError
        Malformed ``xy`` or ``bonds``, bad parameters, or duplicate positions.

    See Also
    --------
    build_graph : bonds from the distances.
    motifgram.engine.dual.ring_centre_sites : atoms and bonds dual to a lattice of ring centres.

    Examples
    --------
    The 4 x 4 square grid of :func:`build_graph`'s example, bonds given: only the central square is away
    from the outer face.

    >>> xy = np.array([[x, y] for y in range(4) for x in range(4)], float) * 10 + 5
    >>> bonds = [(i, i + 1) for i in range(16) if i % 4 < 3] + [(i, i + 4) for i in range(12)]
    >>> graph_from_bonds(xy, bonds, image_shape=(40, 40)).rings
    ((5, 9, 10, 6),)
    """
    xy = _validate_xy(xy)
    image_shape = _validate_image_shape(image_shape)
    if isinstance(max_ring, bool) or not isinstance(max_ring, (int, np.integer)) or max_ring < 3:
        raise MotifgramError(f"max_ring must be an integer >= 3, got {max_ring!r}")
    if border_px is not None and not (math.isfinite(border_px) and border_px >= 0):
        raise MotifgramError(f"border_px must be a finite number >= 0 px (or None for auto), got {border_px!r}")
    n = len(xy)
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2) if len(bonds) else np.empty((0, 2), dtype=np.int64)
    if len(bonds) and (bonds.min() < 0 or bonds.max() >= n or np.any(bonds[:, 0] == bonds[:, 1])):
        raise MotifgramError(f"bonds must be pairs (i, j) of distinct atom indices in 0..{n - 1}")
    bonds = np.unique(np.sort(bonds, axis=1), axis=0).reshape(-1, 2)
    bond_len = np.hypot(*(xy[bonds[:, 1]] - xy[bonds[:, 0]]).T)
    if border_px is None:
        border_px = 0.5 * float(np.median(bond_len)) if len(bond_len) else 0.0
    rings, border = _rings_of_bonds(xy, bonds, image_shape, max_ring, float(border_px))
    return AtomGraph(xy=xy, tokens=np.full(n, "", dtype="<U1"), bonds=bonds, rings=rings,
                     image_shape=image_shape, bond_factor=bond_factor, ring_border=border)


def _rings_of_bonds(xy, bonds, image_shape, max_ring, border_px):
    """Rings of given planar bonds (:func:`graph_from_bonds`), sorted, and their border flags."""
    if len(bonds) < 3:
        return Rings([], [0]), np.zeros(0, bool)
    ring, length, simple, _, _, outer = _face_walk(xy, bonds, max_ring)
    if len(ring) == 0:
        return Rings([], [0]), np.zeros(0, bool)
    keep = simple.copy()
    keep[keep] = empty_polygons(xy, ring[keep], length[keep])
    border = _touches(ring, length, _near_border(xy, image_shape, border_px) | outer)
    return _sorted_rings(ring[keep], length[keep], border[keep])


def _near_border(xy, image_shape, border_px):
    """(N,) bool: atoms closer than ``border_px`` to the image edge."""
    return border_distance(xy, image_shape) < border_px


def _touches(ring, length, atoms):
    """(F,) bool: faces (``ring`` (F, W) padded past ``length``) with an atom where ``atoms`` (N,) is True."""
    valid = np.arange(ring.shape[1]) < length[:, None]
    return np.any(np.where(valid, atoms[np.maximum(ring, 0)], False), axis=1)


def _share(ring, length, atoms):
    """(F,) float: the share of each face's atoms (``ring`` (F, W) padded past ``length``) where ``atoms`` is True."""
    valid = np.arange(ring.shape[1]) < length[:, None]
    return np.sum(np.where(valid, atoms[np.maximum(ring, 0)], False), axis=1) / np.maximum(length, 1)


def _enclosed(ring, length, bonds, ordered):
    """(F,) bool: faces whose bonds leaving the face end at an ordered atom for at least :data:`RING_ENCLOSED` of
    them (a lone defect ring, e.g. a dislocation core of 5-coordinated atoms in a triangular lattice)."""
    n = len(ordered)
    degree = np.bincount(bonds.ravel(), minlength=n)
    o = ordered.astype(np.int64)
    ordered_neighbours = np.bincount(bonds[:, 0], o[bonds[:, 1]], n) + np.bincount(bonds[:, 1], o[bonds[:, 0]], n)
    valid = np.arange(ring.shape[1]) < length[:, None]
    at = np.maximum(ring, 0)
    leaving = np.sum(np.where(valid, degree[at], 0), axis=1) - 2 * length
    to_ordered = np.sum(np.where(valid, ordered_neighbours[at] - 2 * o[at], 0), axis=1)
    return (leaving > 0) & (to_ordered >= RING_ENCLOSED * leaving)


def _sorted_rings(ring, length, border):
    """Rings of padded faces in lexicographic order of their atom ids, and their ``border`` flags reordered."""
    ring = np.where(np.arange(ring.shape[1]) < length[:, None], ring, -1)
    order = np.lexsort(ring.T[::-1])
    return Rings.from_padded(ring[order], length[order]), border[order]


def empty_polygons(xy, ring, length):
    """(F,) bool: no atom but its own lies inside each ring's polygon (even-odd rule), vectorised over
    (ring, nearby atom) pairs; ``ring`` (F, W) padded past ``length``."""
    if len(ring) == 0:
        return np.ones(0, dtype=bool)
    cols = np.arange(ring.shape[1])
    valid = cols < length[:, None]
    p = xy[np.maximum(ring, 0)]  # (F, W, 2)
    centre = np.sum(p * valid[..., None], axis=1) / length[:, None]
    radius = np.max(np.where(valid, np.hypot(*(p - centre[:, None]).transpose(2, 0, 1)), 0.0), axis=1)
    near = cKDTree(xy).query_ball_point(centre, radius * (1 + 1e-9))
    counts = np.fromiter(map(len, near), dtype=np.int64, count=len(near))
    f = np.repeat(np.arange(len(ring)), counts)
    a = np.fromiter((i for lst in near for i in lst), dtype=np.int64, count=int(counts.sum()))
    other = ~np.any(ring[f] == a[:, None], axis=1)
    f, a = f[other], a[other]
    nxt = np.where(cols + 1 < length[:, None], cols + 1, 0)  # (F, W) the following vertex of each edge
    q = np.take_along_axis(p, nxt[..., None], axis=1)
    px, py, qx, qy = p[f, :, 0], p[f, :, 1], q[f, :, 0], q[f, :, 1]
    x0, y0 = xy[a, 0:1], xy[a, 1:2]
    spans = (py > y0) != (qy > y0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = px + (y0 - py) * (qx - px) / (qy - py)
    crossings = np.sum(spans & (x0 < x_cross) & valid[f], axis=1)
    inside = np.zeros(len(ring), dtype=bool)
    inside[f[crossings % 2 == 1]] = True
    return ~inside


def _validate_xy(xy):
    xy = np.asarray(xy, dtype=np.float64)
    if xy.size == 0:
        return np.empty((0, 2))
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise MotifgramError(f"xy must be an (N, 2) array of (x, y) positions in px, got shape {xy.shape}")
    if not np.all(np.isfinite(xy)):
        raise MotifgramError(f"xy holds {np.count_nonzero(~np.isfinite(xy))} non-finite values; drop those atoms")
    pairs = cKDTree(xy).query_pairs(DUPLICATE_TOL_PX, output_type="ndarray")
    if len(pairs):
        i, j = pairs[np.lexsort(pairs.T[::-1])][0]
        raise MotifgramError(
            f"{len(pairs)} pairs of atoms share a position (within {DUPLICATE_TOL_PX} px), e.g. atoms {i} and "
            f"{j} at {tuple(xy[i])}; remove duplicate detections before building the graph"
        )
    return xy


def _validate_image_shape(image_shape):
    shape = tuple(image_shape)
    if len(shape) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise MotifgramError(f"image_shape must be (H, W) positive integers, got {image_shape!r}")
    return tuple(int(s) for s in shape)


def _chain_edges(xy):
    """Consecutive pairs of (near-)collinear points along their principal axis, (M, 2) int64 with i < j."""
    if len(xy) < 2:
        return np.empty((0, 2), dtype=np.int64)
    centred = xy - xy.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    order = np.argsort(centred @ axis, kind="stable")
    pairs = np.sort(np.stack([order[:-1], order[1:]], axis=1), axis=1).astype(np.int64)
    return pairs[np.lexsort(pairs.T[::-1])]


def _local_scale(n, cand, length):
    """Local nearest-neighbour distance per atom (px): lower median of ``d_nn`` over the atom and its candidates."""
    d_nn = np.full(n, np.inf)
    np.minimum.at(d_nn, cand.ravel(), np.repeat(length, 2))
    by_value = np.argsort(d_nn, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[by_value] = np.arange(n)
    atom = np.concatenate([np.arange(n), cand[:, 0], cand[:, 1]])
    member = np.concatenate([np.arange(n), cand[:, 1], cand[:, 0]])
    key = np.sort(atom * n + rank[member])  # one integer sort instead of a two-key lexsort
    count = np.bincount(atom, minlength=n)
    return d_nn[by_value[key[np.cumsum(count) - count + (count - 1) // 2] % n]]


def _auto_bond_factor(ratio, n_atoms):
    """The first minimum of the smoothed edge-ratio histogram that bonds the atoms into a network (module doc)."""
    lo, hi = AUTO_BOND_WINDOW
    n_bins = int(round((AUTO_BOND_SEARCH_MAX - 1.0) / _HIST_BIN))
    hist, edges = np.histogram(ratio, bins=n_bins, range=(1.0, AUTO_BOND_SEARCH_MAX))
    smooth = np.convolve(hist, np.ones(3), mode="same")
    centres = 0.5 * (edges[:-1] + edges[1:])
    sorted_ratio = np.sort(ratio)

    def mean_degree(tau):
        return 2.0 * np.searchsorted(sorted_ratio, tau) / max(n_atoms, 1)

    window = np.flatnonzero((centres >= lo - 1e-9) & (centres <= hi + 1e-9))
    vals = smooth[window]
    lowest = vals == vals.min()
    first = int(np.argmax(lowest))
    last = first + (int(np.argmin(lowest[first:])) if not lowest[first:].all() else len(lowest) - first) - 1
    tau = float(0.5 * (centres[window[first]] + centres[window[last]]))
    if mean_degree(tau) >= MIN_MEAN_DEGREE:
        return tau
    for low, high in _valleys(smooth, centres, tau + _HIST_BIN):
        candidate = float(0.5 * (low + high))
        if mean_degree(candidate) >= MIN_MEAN_DEGREE:
            log.info("bond factor %.3f leaves a mean degree of %.2f (pairs or chains): bonding the next shell, %.3f",
                     tau, mean_degree(tau), candidate)
            return candidate
    return tau


def _valleys(smooth, centres, start):
    """``(low, high)`` ratio spans of the histogram's valleys from ``start`` on, in order.

    A valley is a run of bins at a local minimum whose count is at most half the highest count before it
    (a real gap between two shells of neighbours, not noise on a shoulder).
    """
    out = []
    n = len(smooth)
    i = int(np.searchsorted(centres, start - 1e-9))
    while i < n:
        j = i
        while j + 1 < n and smooth[j + 1] == smooth[i]:
            j += 1
        left = smooth[i - 1] if i > 0 else np.inf
        right = smooth[j + 1] if j + 1 < n else np.inf
        if smooth[i] <= left and smooth[i] < right and smooth[i] <= 0.5 * smooth[: i + 1].max():
            out.append((centres[i], centres[j]))
        i = j + 1
    return out


def _half_edges(xy, bonds):
    """Half-edge structure of the planar straight-line graph ``(xy, bonds)``.

    Returns
    -------
    org, dst : (2B,) int64
        Origin and destination atom of each half-edge, sorted by (origin, angle).
    nxt : (2B,) int64
        Next half-edge of the same face (faces to the right of their half-edges, bounded faces
        clockwise in the raw (x, y) plane, i.e. counter-clockwise as displayed with y down).
    face : (2B,) int64
        Face cycle label of each half-edge, ``0..F-1``.
    """
    n, b = len(xy), len(bonds)
    org = np.concatenate([bonds[:, 0], bonds[:, 1]])
    dst = np.concatenate([bonds[:, 1], bonds[:, 0]])
    d = xy[dst] - xy[org]
    order = np.lexsort((np.arctan2(d[:, 1], d[:, 0]), org))
    inv = np.empty(2 * b, dtype=np.int64)
    inv[order] = np.arange(2 * b)
    twin = inv[(order + b) % (2 * b)]  # the unsorted twin of half-edge h is h +- B
    org, dst = org[order], dst[order]
    deg = np.bincount(org, minlength=n)
    start = np.cumsum(deg) - deg
    rank = np.arange(2 * b) - start[org]
    v = dst
    nxt = start[v] + (rank[twin] + 1) % deg[v]
    _, face = connected_components(
        coo_matrix((np.ones(2 * b, dtype=np.int8), (np.arange(2 * b), nxt)), shape=(2 * b, 2 * b)),
        directed=True,
        connection="weak",
    )
    return org, dst, nxt, face.astype(np.int64)


def _face_walk(xy, bonds, max_ring):
    """Bounded faces of 3..max_ring half-edges of a planar straight-line graph, walked vectorised.

    Returns ``(ring, length, simple, first, dst, outer)``: ``ring`` (F, W) atom ids in the module's
    orientation, starting at the smallest, padded with distinct negatives; ``length`` (F,); ``simple`` (F,)
    no atom repeated; ``first`` (F,) the half-edge each walk starts from and ``dst`` the half-edges'
    destinations; ``outer`` (N,) bool, the atoms on a walk that is not a bounded face (area >= 0: the
    outer boundary of each connected piece of the graph, or a tree).
    """
    org, dst, nxt, face = _half_edges(xy, bonds)
    n_faces = int(face.max()) + 1
    size = np.bincount(face, minlength=n_faces)
    c = xy - xy.mean(axis=0)
    area2 = np.bincount(face, weights=c[org, 0] * c[dst, 1] - c[dst, 0] * c[org, 1], minlength=n_faces)
    outer = np.zeros(len(xy), dtype=bool)
    outer[org[area2[face] >= 0]] = True
    cand = np.flatnonzero((size >= 3) & (size <= max_ring) & (area2 < 0))
    # Walk each candidate face from its half-edge with the smallest origin, so rings start at their minimum.
    by_face = np.lexsort((org, face))
    first = by_face[np.cumsum(size) - size][cand]
    length = size[cand]
    width = int(length.max()) if len(cand) else 0
    cols = np.arange(width)
    ring = np.empty((len(cand), width), dtype=np.int64)
    h = first
    for k in range(width):
        ring[:, k] = org[h]
        h = nxt[h]
    ring = np.where(cols < length[:, None], ring, -1 - cols)  # distinct negative padding
    srt = np.sort(ring, axis=1)
    simple = np.all(srt[:, 1:] != srt[:, :-1], axis=1)
    return ring, length, simple, first, dst, outer


def face_cycles(xy, bonds, *, max_ring=12):
    """Every simple bounded face of 3..``max_ring`` atoms of a planar straight-line graph.

    Unlike :func:`build_graph`'s rings, no face is dropped for the border, the outer face or atoms inside
    it: this is the plain topology of a given bond set (the simulator's truth uses it).

    Parameters
    ----------
    xy : (N, 2) array_like of float
        Positions, px.
    bonds : (B, 2) array_like of int
        Edges that do not cross.
    max_ring : int

    Returns
    -------
    list of tuple of int
        Atom ids in cyclic order (counter-clockwise as displayed, as :attr:`AtomGraph.rings`), smallest first.
    """
    xy = np.asarray(xy, dtype=np.float64)
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    if len(bonds) < 3:
        return []
    ring, length, simple, _, _, _ = _face_walk(xy, bonds, max_ring)
    return [tuple(r[:m]) for r, m, ok in zip(ring.tolist(), length.tolist(), simple.tolist()) if ok]


def _rings(xy, bonds, tri, image_shape, max_ring, border_px, regions: Regions, faces):
    """Rings of the bond graph (module docstring), sorted, and their border flags; ``tri`` is the Delaunay
    triangulation of ``xy``, ``regions`` its atoms' regions, ``faces`` what :func:`triangle_regions` returns."""
    n = len(xy)
    ring, length, simple, first, dst, _ = _face_walk(xy, bonds, max_ring)
    if len(ring) == 0:
        return Rings([], [0]), np.zeros(0, bool)

    # Emptiness and the outer face from the Delaunay triangles grouped into bond-bounded regions.
    region, n_tri, outer_atoms = faces
    t_key = _tri_edge_keys(xy, tri)
    key = dst[first] * n + ring[:, 0]  # triangle right of u -> v is left of v -> u (the walk starts at u)
    pos = np.searchsorted(t_key[0], key)
    found = t_key[0][np.minimum(pos, len(t_key[0]) - 1)] == key
    reg = np.where(found, region[t_key[1][np.minimum(pos, len(t_key[0]) - 1)]], -1)
    empty = found & (reg != region[-1]) & (n_tri[np.maximum(reg, 0)] == length - 2)
    keep = simple & empty
    keep &= ~(np.pi * (length - 2) / length < regions.narrowest_angle - ANGLE_TOLERANCE)
    if regions.lattice:
        ordered = regions.ordered
        keep &= (_share(ring, length, ordered) >= RING_ORDERED) | _enclosed(ring, length, bonds, ordered)
    border = _touches(ring, length, _near_border(xy, image_shape, border_px) | outer_atoms)
    return _sorted_rings(ring[keep], length[keep], border[keep])


def _tri_edge_keys(xy, tri):
    """Directed edges ``a -> b`` of counter-clockwise (raw x, y) triangles: sorted keys ``a * N + b``, triangle."""
    n = len(xy)
    s = tri.simplices.astype(np.int64)
    p = xy[s]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    cross = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    s = np.where((cross < 0)[:, None], s[:, [0, 2, 1]], s)
    a = s.ravel()
    b = s[:, [1, 2, 0]].ravel()
    key = a * n + b
    order = np.argsort(key)
    return key[order], np.repeat(np.arange(len(s)), 3)[order]


def triangle_regions(xy, bonds, tri):
    """Group Delaunay triangles into regions bounded by bonds.

    Returns
    -------
    region : (T + 1,) int64
        Region label per triangle; the last entry is the region of the outside of the convex hull.
    n_tri : (n_regions,) int64
        Triangles per region (the outside counts one).
    outer_atoms : (N,) bool
        Atoms on the outer face: vertices of the outside region's triangles and convex-hull atoms.
    """
    n = len(xy)
    s = tri.simplices.astype(np.int64)
    t = len(s)
    nb = tri.neighbors.astype(np.int64)  # nb[i, k]: triangle across the edge opposite vertex k
    ea = s[:, [1, 2, 0]].ravel()
    eb = s[:, [2, 0, 1]].ravel()
    other = nb.ravel()
    other = np.where(other < 0, t, other)  # the outside is node T
    edge_key = np.minimum(ea, eb) * n + np.maximum(ea, eb)
    bond_key = bonds[:, 0] * n + bonds[:, 1]
    pos = np.minimum(np.searchsorted(bond_key, edge_key), len(bond_key) - 1)
    open_ = bond_key[pos] != edge_key
    src = np.repeat(np.arange(t), 3)[open_]
    _, region = connected_components(
        coo_matrix((np.ones(len(src), dtype=np.int8), (src, other[open_])), shape=(t + 1, t + 1)),
        directed=False,
    )
    n_tri = np.bincount(region)
    outer_atoms = np.zeros(n, dtype=bool)
    outer_atoms[s[region[:t] == region[t]].ravel()] = True
    outer_atoms[tri.convex_hull.ravel()] = True
    return region.astype(np.int64), n_tri, outer_atoms

