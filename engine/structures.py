"""The atomic structures behind :func:`motifgram.engine.simulate.simulate`: lattices, bonds, relaxation.

Shared construction helpers (a rotated lattice covering the image, bonds by distance, CSR neighbours,
dropping dead atoms, a harmonic spring relaxation) and the builders of 2H-MoS2 (with S vacancies, Se
substitution, Se clusters and S-vacancy lines), an ABO3 perovskite, the Cairo pentagonal tiling, an amorphous
continuous random network and the twisted bilayer. Graphene and its defects live in
:mod:`motifgram.engine.graphene_structures`. A builder returns a :class:`Structure` in pixels, including a
margin of atoms outside the image; the simulator crops it and computes the truth.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from motifgram.engine.simspec import (
    A_CC_NM,
    CAIRO_EDGE_NM,
    MOS2_MO_S_NM,
    PEROVSKITE_A_NM,
)
from scipy.spatial import Delaunay, cKDTree

log = logging.getLogger(__name__)

STACKING_CLASSES = ("AA'", "AB'", "A'B", "other")
"""Local stacking classes of ``tbl_mos2`` (see :class:`Stacking`)."""

MAX_RING = 12
SQRT3 = math.sqrt(3.0)


def _z_contrast(*atomic_numbers):
    """HAADF column intensity: sum of Z**1.7 over the atoms in the column."""
    return float(sum(z**1.7 for z in atomic_numbers))


_Z = {"Mo": 42, "S": 16, "Se": 34, "Sr": 38, "Ti": 22, "O": 8}
_MOS2_INTENSITY = {
    name: _z_contrast(*(_Z[a] for a in atoms)) / _z_contrast(_Z["Mo"])
    for name, atoms in {
        "Mo": ("Mo",),
        "S2": ("S", "S"),
        "S1": ("S",),
        "SSe": ("S", "Se"),
        "Se2": ("Se", "Se"),
    }.items()
}
_PEROVSKITE_B_INTENSITY = _z_contrast(_Z["Ti"], _Z["O"]) / _z_contrast(_Z["Sr"])


@dataclass(frozen=True, eq=False)
class Stacking:
    """Local stacking of a twisted bilayer, sampled on a square grid.

    At a point ``r`` the top layer (layer 2) is the 2H-stacked (AA') partner of layer 1 rotated by the
    twist ``theta`` about the pivot ``p``; locally it is that partner translated by
    ``u(r) = (I - R(-theta)) (r - p)``. ``u`` modulo the lattice is compared with the three high-symmetry
    registries of 2H bilayers: ``u = 0`` "AA'" (Mo over S2, S2 over Mo: 2H), ``u = -delta`` "AB'" (Mo over
    Mo, top S2 over the hollow), ``u = +delta`` "A'B" (S2 over S2, top Mo over the hollow), where ``delta``
    is the Mo -> S2 vector of layer 1 (length a / sqrt(3)). A point within ``a / 4`` of one registry takes
    its class, else ``"other"``; the three disks cover 3 x 22.7 % of the plane, so a large enough field
    of view holds ~23 % of each class and ~32 % "other" (at zero twist, 100 % "AA'").

    Attributes
    ----------
    grid_xy : (G, 2) float64 ndarray, px
        Grid points (x, y) inside the image, spaced by the lattice constant ``a``.
    grid_label : (G,) str ndarray
        One of :data:`STACKING_CLASSES` per point.
    """

    grid_xy: np.ndarray
    grid_label: np.ndarray


class DefectSpec(NamedTuple):
    """A defect before cropping: which rings belong to it and which atoms it always holds (full indices)."""

    kind: str
    selects: Callable[[tuple[int, ...]], bool]  # called only on the rings that hold an anchor atom
    anchors: tuple[int, ...]
    atoms: tuple[int, ...]
    ring_atoms: bool  # whether the atoms of the selected rings join the defect's atoms


class Structure(NamedTuple):
    xy: np.ndarray  # (N, 2) float64 px, including a margin of atoms outside the image
    label: np.ndarray  # (N,) str
    bonds: np.ndarray  # (B, 2) int64, i < j
    defects: list  # of DefectSpec
    nn_px: float  # nearest-neighbour (bond) distance, px
    intensity: Mapping[str, float]  # column amplitude per label
    stacking: Stacking | None = None  # local stacking classes (tbl_mos2), grid inside the image


def rotation_matrix(theta):
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def lattice_points(cell, basis, *, size, margin, rotation, rng):
    """Points of a rotated, randomly shifted lattice covering the image plus ``margin`` px.

    Parameters
    ----------
    cell : (2, 2) float, px
        Rows are the lattice vectors.
    basis : (K, 2) float, px
        Basis positions in the cell.

    Returns
    -------
    xy : (N, 2) float64 px
    site : (N,) int64, the basis index of each point
    """
    centre = np.full(2, (size - 1) / 2)
    radius = (size / 2 + margin) * math.sqrt(2) + np.linalg.norm(cell, axis=1).sum() + np.abs(basis).max()
    coeff_bound = np.ceil(radius * np.linalg.norm(np.linalg.inv(cell.T), axis=1)).astype(int)
    n, m = np.meshgrid(
        np.arange(-coeff_bound[0], coeff_bound[0] + 1), np.arange(-coeff_bound[1], coeff_bound[1] + 1), indexing="ij"
    )
    shift = rng.random(2) @ cell
    pts = (np.stack([n.ravel(), m.ravel()], axis=1) @ cell + shift)[:, None, :] + basis[None, :, :]
    xy = pts.reshape(-1, 2) @ rotation_matrix(rotation).T + centre
    site = np.tile(np.arange(len(basis)), n.size)
    keep = np.all((xy >= -margin) & (xy <= size - 1 + margin), axis=1)
    return xy[keep], site[keep]


def bonds_within(xy, cutoff):
    """(B, 2) int64 sorted pairs closer than ``cutoff``."""
    pairs = cKDTree(xy).query_pairs(cutoff, output_type="ndarray").astype(np.int64)
    return sort_bonds(pairs)


def sort_bonds(bonds):
    bonds = np.sort(np.asarray(bonds, dtype=np.int64).reshape(-1, 2), axis=1)
    bonds = np.unique(bonds, axis=0)
    return bonds[bonds[:, 0] != bonds[:, 1]]


def csr_neighbours(n, bonds):
    """CSR adjacency: ``nbr[ptr[i]:ptr[i+1]]`` are the neighbours of atom ``i``."""
    src = np.concatenate([bonds[:, 0], bonds[:, 1]])
    dst = np.concatenate([bonds[:, 1], bonds[:, 0]])
    order = np.argsort(src, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    return ptr, dst[order]


def compact_structure(xy, label, bonds, alive, defects):
    """Drop dead atoms, reindexing bonds and defect specs."""
    new = np.cumsum(alive) - 1
    bonds = bonds[alive[bonds].all(axis=1)]
    inverse = np.flatnonzero(alive)  # one array shared by every spec's closure (one each grew as N x defects)
    old_to_new = {int(o): int(new[o]) for o in inverse}

    def remap(spec):
        selects = spec.selects
        return spec._replace(
            selects=lambda ring: selects(tuple(int(inverse[i]) for i in ring)),
            anchors=tuple(old_to_new[a] for a in spec.anchors if a in old_to_new),
            atoms=tuple(old_to_new[a] for a in spec.atoms if a in old_to_new),
        )

    return xy[alive], label[alive], sort_bonds(new[bonds]), [remap(s) for s in defects]


def prune_dangling(n, bonds, alive):
    """Mark atoms with fewer than two bonds dead, repeatedly (returns the new alive mask)."""
    alive = alive.copy()
    while True:
        live_bonds = bonds[alive[bonds].all(axis=1)]
        degree = np.bincount(live_bonds.ravel(), minlength=n)
        dangling = alive & (degree < 2)
        if not dangling.any():
            return alive
        alive &= ~dangling


def relax_springs(xy, bonds, mobile, *, bond_px, angle_weight=0.1, repel_px=None, n_iter=300):
    """Relax ``mobile`` atoms in a harmonic spring model.

    Energy: ``sum (|x_i - x_j| - bond_px)**2`` over bonds plus ``angle_weight * sum (|x_i - x_k| -
    sqrt(3) bond_px)**2`` over the second neighbours (i, k) around each 2- or 3-coordinated atom, which
    keeps bond angles near 120 degrees, plus, when ``repel_px`` is given, ``sum (repel_px - |x_i -
    x_j|)**2`` over non-bonded pairs closer than ``repel_px`` (pairs refreshed every 25 steps), which
    keeps a gap between bonded and non-bonded distances. Atoms not ``mobile`` stay fixed. Minimised by heavy-ball gradient
    descent in elementwise numpy (no BLAS calls: scipy's L-BFGS-B was 7x slower here on 2 busy cores
    because its BLAS threads fought; this is stable for the stiffness above, ``step * max curvature < 2``).

    Returns
    -------
    (N, 2) float64 px
    """
    n = len(xy)
    ptr, nbr = csr_neighbours(n, bonds)
    degree = np.diff(ptr)
    second = []
    for deg, combos in ((2, [(0, 1)]), (3, [(0, 1), (0, 2), (1, 2)])):
        centres = np.flatnonzero(degree == deg)
        table = nbr[ptr[centres][:, None] + np.arange(deg)]
        second.extend(table[:, list(c)] for c in combos)
    pairs = np.concatenate([bonds, *second])
    rest = np.concatenate([np.full(len(bonds), bond_px), np.full(len(pairs) - len(bonds), SQRT3 * bond_px)])
    weight = np.concatenate([np.ones(len(bonds)), np.full(len(pairs) - len(bonds), angle_weight)])
    touch = mobile[pairs].any(axis=1)
    i, j, rest, weight = pairs[touch, 0], pairs[touch, 1], rest[touch], weight[touch]
    out = xy.copy()
    velocity = np.zeros_like(xy)
    frozen = ~mobile
    bond_keys = bonds[:, 0] * n + bonds[:, 1]
    i0, j0, rest0, weight0 = i, j, rest, weight
    for step in range(n_iter):
        if repel_px is not None and step % 25 == 0:
            close = cKDTree(out).query_pairs(repel_px, output_type="ndarray").astype(np.int64)
            close = close[mobile[close].any(axis=1) & ~np.isin(close[:, 0] * n + close[:, 1], bond_keys)]
            i, j = np.concatenate([i0, close[:, 0]]), np.concatenate([j0, close[:, 1]])
            rest = np.concatenate([rest0, np.full(len(close), repel_px)])
            weight = np.concatenate([weight0, np.ones(len(close))])
            repulsive = np.arange(len(i)) >= len(i0)
        d = out[i] - out[j]
        length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        stretch = length - rest
        if repel_px is not None:
            stretch[repulsive] = np.minimum(stretch[repulsive], 0.0)  # repulsion only, never attraction
        g = (2 * weight * stretch / length)[:, None] * d
        grad = np.stack(
            [np.bincount(i, g[:, k], minlength=n) - np.bincount(j, g[:, k], minlength=n) for k in range(2)], axis=1
        )
        grad[frozen] = 0.0
        velocity = 0.8 * velocity - 0.08 * grad
        out += velocity
    return out


def honeycomb(bond_px, rotation, size, margin, rng):
    """Honeycomb lattice (sublattices 0 and 1) with nearest-neighbour distance ``bond_px``."""
    a = SQRT3 * bond_px
    cell = np.array([[a, 0.0], [a / 2, a * SQRT3 / 2]])
    basis = np.array([[0.0, 0.0], [a / 2, a * SQRT3 / 6]])
    return lattice_points(cell, basis, size=size, margin=margin, rotation=rotation, rng=rng)

def contains_any(atoms):
    return lambda ring: any(a in atoms for a in ring)

def contains_bond(p, q):
    def selects(ring):
        return any({ring[k], ring[k - 1]} == {p, q} for k in range(len(ring)))

    return selects


def draw_rotation(opts, rng, period):
    if opts["rotation"] is None:
        opts["rotation"] = float(rng.uniform(0.0, period))
    return opts["rotation"]


def build_mos2(size, rng, opts):
    d = MOS2_MO_S_NM / opts["pixel_size_nm"]
    rotation = draw_rotation(opts, rng, 2 * math.pi / 3)
    xy, site = honeycomb(d, rotation, size, 4 * d, rng)
    label = np.where(site == 0, "Mo", "S2").astype("<U3")
    sulfur = np.flatnonzero(site == 1)
    vacant = rng.random(len(sulfur)) < opts["s_vacancy_density"]
    selenium = (rng.random((len(sulfur), 2)) < opts["se_fraction"]).sum(axis=1)
    label[sulfur] = np.where(vacant, "S1", np.array(["S2", "SSe", "Se2"])[selenium])
    if opts["se2_fraction"] > 0:
        _se2_columns(xy[sulfur], label, sulfur, fraction=opts["se2_fraction"],
                     superlattice=int(opts["se2_superlattice"]), cluster_size=int(opts["se2_cluster_size"]), d=d,
                     rotation=rotation, size=size, rng=rng)
    bonds = bonds_within(xy, 1.2 * d)
    defects = [DefectSpec("s_vacancy", contains_any({int(k)}), (int(k),), (int(k),), False) for k in sulfur[vacant]]
    n_inside = int(np.all((xy >= -0.5) & (xy <= size - 0.5), axis=1).sum())
    todo = (["se_cluster"] * round(opts["se_cluster_density"] * n_inside)
            + ["s_vacancy_line"] * round(opts["s_vacancy_line_density"] * n_inside))
    if todo:
        rng.shuffle(todo)
        defects += _chalcogen_defects(xy, label, sulfur, todo, d=d, size=size, rng=rng,
                                      cluster_size=int(opts["se_cluster_size"]),
                                      line_length=int(opts["s_vacancy_line_length"]))
    return Structure(xy, label, bonds, defects, d, _MOS2_INTENSITY)


def _se2_columns(s_xy, label, sulfur, *, fraction, superlattice, cluster_size, d, rotation, size, rng):
    """Turn an exact number of S2 columns into Se2, ordered on a superlattice or in compact clusters (in place).

    ``round(fraction x size**2 / unit-cell area)`` columns (one chalcogen site per unit cell), so that every image
    of one size holds the same number of Se2 columns whatever its arrangement, rotation and shift: ``fraction`` of
    its chalcogen columns to within one lattice row. The candidates are the S2 columns inside the image; for
    ``superlattice`` m > 1 only those on a superlattice of index m of the chalcogen lattice, ``i + q j = r (mod
    m)`` in lattice coordinates with the q whose superlattice is the most open (shortest vector longest) and a
    random r: the Se2 columns are ordered. The columns come in clusters of ``cluster_size`` (the last one
    smaller when it does not divide the count): a random candidate, grown by the candidate next to the cluster
    (one lattice constant away) with the most cluster neighbours, ties at random, as long as one is free. Clusters
    of more than one column touch no other (so each keeps its size and the clustering is the same in every
    image); single columns (``cluster_size`` 1) are placed at random. A warning says when the candidates run out.
    """
    a = SQRT3 * d
    inside = np.all((s_xy >= -0.5) & (s_xy < size - 0.5), axis=1)  # the columns the truth keeps
    n = round(fraction * size**2 / (a * a * SQRT3 / 2))
    free = inside & (label[sulfur] == "S2")
    if superlattice > 1:
        cell = a * np.array([[1.0, 0.0], [0.5, SQRT3 / 2]]) @ rotation_matrix(rotation).T
        ij = np.rint(np.linalg.solve(cell.T, (s_xy - s_xy[0]).T).T).astype(np.int64)
        q = _open_superlattice(superlattice)
        free &= (ij[:, 0] + q * ij[:, 1] - int(rng.integers(superlattice))) % superlattice == 0
    ptr, nbr = csr_neighbours(len(s_xy), cKDTree(s_xy).query_pairs(1.1 * a, output_type="ndarray"))
    placed = 0
    while placed < n and free.any():
        members = [int(rng.choice(np.flatnonzero(free)))]
        while len(members) < min(cluster_size, n - placed):
            frontier = np.setdiff1d(np.concatenate([nbr[ptr[m]:ptr[m + 1]] for m in members]), members)
            frontier = frontier[free[frontier]]
            if not len(frontier):
                break
            touching = np.array([np.isin(nbr[ptr[q]:ptr[q + 1]], members).sum() for q in frontier])
            members.append(int(rng.choice(frontier[touching == touching.max()])))
        label[sulfur[members]] = "Se2"
        free[members] = False
        if cluster_size > 1:
            free[np.concatenate([nbr[ptr[m]:ptr[m + 1]] for m in members])] = False
        placed += len(members)
    if placed < n:
        log.warning("placed %d of %d MoS2 Se2 columns: no free S2 column left at size %d", placed, n, size)


def _open_superlattice(m):
    """The q of the superlattice ``i + q j = 0 (mod m)`` of a triangular lattice whose shortest vector is longest."""
    i, j = (g.ravel() for g in np.meshgrid(np.arange(-m, m + 1), np.arange(-m, m + 1)))
    i, j = i[(i != 0) | (j != 0)], j[(i != 0) | (j != 0)]
    norm2 = i * i + i * j + j * j  # |i v1 + j v2|^2 / a^2 for lattice vectors 60 degrees apart
    return max(range(m), key=lambda q: norm2[(i + q * j) % m == 0].min())


def _chalcogen_defects(xy, label, sulfur, todo, *, d, size, rng, cluster_size, line_length):
    """Se clusters and S-vacancy lines on the chalcogen sites of MoS2 (labels changed in place); their specs.

    A Se cluster is ``cluster_size`` S2 columns that become Se2: a random site and the other chalcogen
    columns around one of its Mo neighbours (for 3, the triangle around that Mo column: one shape, so a
    grammar can count it), grown beyond 3 by adding, among the chalcogen sites next to the cluster (one
    lattice constant apart), one with the most cluster neighbours (ties at random). An S-vacancy line is
    ``line_length`` consecutive chalcogen columns along a lattice direction that lose one S each (S1). Every
    column of a defect and every chalcogen site next to it must be pristine S2, and defects keep three
    lattice constants between their columns, so that each is isolated and its count exact; sites are tried
    in random order, at least three lattice constants inside the image, and a warning says how many did not
    fit.
    """
    a = SQRT3 * d
    s_xy = xy[sulfur]
    tree = cKDTree(s_xy)
    pairs = tree.query_pairs(1.1 * a, output_type="ndarray")
    nbrs = [[] for _ in sulfur]
    for p, q in pairs.tolist():
        nbrs[p].append(q)
        nbrs[q].append(p)
    molybdenum = np.setdiff1d(np.arange(len(xy)), sulfur)
    mo_tree = cKDTree(xy[molybdenum])
    mo_of = [sorted(q) for q in tree.query_ball_point(xy[molybdenum], 1.1 * d)]  # chalcogens around each Mo
    inside = np.all((s_xy >= 3 * a - 0.5) & (s_xy <= size - 0.5 - 3 * a), axis=1)
    order = np.flatnonzero(inside)[rng.permutation(int(inside.sum()))].tolist()
    placed = np.empty((0, 2))
    specs = []
    cursor = 0
    for kind in todo:
        while cursor < len(order):
            seed = order[cursor]
            cursor += 1
            if kind == "se_cluster":
                # the chalcogen columns around one Mo column next to the seed (a triangle for 3), then grown
                mo = mo_tree.query_ball_point(s_xy[seed], 1.1 * d)
                members = mo_of[mo[int(rng.integers(len(mo)))]][:]
                members = [seed] + [m for m in members if m != seed][: cluster_size - 1]
                while len(members) < cluster_size:
                    frontier = sorted({q for m in members for q in nbrs[m]} - set(members))
                    frontier = [frontier[k] for k in rng.permutation(len(frontier))]
                    members.append(max(frontier, key=lambda q: sum(m in nbrs[q] for m in members)))
            else:
                step = s_xy[nbrs[seed][int(rng.integers(len(nbrs[seed])))]] - s_xy[seed]
                dist, members = tree.query(s_xy[seed] + np.arange(line_length)[:, None] * step)
                if dist.max() > 0.3 * d:
                    continue
                members = members.tolist()
            around = set(members) | {q for m in members for q in nbrs[m]}
            if any(label[sulfur[q]] != "S2" for q in around) or not inside[members].all():
                continue
            if len(placed) and cKDTree(placed).query(s_xy[members])[0].min() < 3 * a:
                continue
            placed = np.concatenate([placed, s_xy[members]])
            columns = tuple(sorted(int(sulfur[m]) for m in members))
            label[list(columns)] = "Se2" if kind == "se_cluster" else "S1"
            specs.append(DefectSpec(kind, contains_any(set(columns)), columns, columns, False))
            break
    if len(specs) < len(todo):
        log.warning("placed %d of %d requested MoS2 Se clusters / S-vacancy lines: no isolated site left at size %d",
                    len(specs), len(todo), size)
    return specs


def build_perovskite(size, rng, opts):
    h = PEROVSKITE_A_NM / 2 / opts["pixel_size_nm"]  # A–O = B–O distance
    rotation = draw_rotation(opts, rng, math.pi / 2)
    cell = np.array([[2 * h, 0.0], [0.0, 2 * h]])
    basis = np.array([[0.0, 0.0], [h, h], [h, 0.0], [0.0, h]])
    xy, site = lattice_points(cell, basis, size=size, margin=4 * h, rotation=rotation, rng=rng)
    label = np.array(["A", "B", "O", "O"])[site]
    bonds = bonds_within(xy, 1.2 * h)  # the square grid of step a/2: every A–O and B–O nearest neighbour
    intensity = {"A": 1.0, "B": _PEROVSKITE_B_INTENSITY, "O": opts["o_intensity"]}
    return Structure(xy, label, bonds, [], h, intensity)


def build_cairo(size, rng, opts):
    edge = CAIRO_EDGE_NM / opts["pixel_size_nm"]
    # 4-valent vertices on a square grid of step s; in each grid square a bonded pair of 3-valent vertices,
    # horizontal or vertical in a checkerboard, each bonded to the two corners on its side. All edges are
    # equal when t (half the pair's length, in units of s) solves 3 t**2 + t - 1/2 = 0.
    t = (math.sqrt(7.0) - 1) / 6
    s = edge / (2 * t)
    rotation = draw_rotation(opts, rng, math.pi / 2)
    frac = [(0, 0), (1, 0), (0, 1), (1, 1)]
    frac += [(0.5 - t, 0.5), (0.5 + t, 0.5), (1.5 - t, 1.5), (1.5 + t, 1.5)]
    frac += [(1.5, 0.5 - t), (1.5, 0.5 + t), (0.5, 1.5 - t), (0.5, 1.5 + t)]
    basis = np.array(frac, dtype=float) * s
    xy, site = lattice_points(np.array([[2 * s, 0.0], [0.0, 2 * s]]), basis, size=size, margin=4 * s, rotation=rotation, rng=rng)
    label = np.where(site < 4, "B", "A")
    bonds = bonds_within(xy, 1.2 * edge)
    return Structure(xy, label, bonds, [], edge, {"A": 1.0, "B": 1.0})


def build_crn(size, rng, opts):
    acc = A_CC_NM / opts["pixel_size_nm"]
    # One Voronoi cell (ring) per blue-noise point; a regular hexagon of side acc has area 3 sqrt(3)/2 acc**2.
    margin = 6 * acc
    lo, hi = -2 * margin, size - 1 + 2 * margin
    n_points = round((hi - lo) ** 2 / (1.5 * SQRT3 * acc**2))
    points = rng.uniform(lo, hi, size=(n_points, 2))
    radius = opts["regularity"] * SQRT3 * acc  # repulsion radius: blue noise, short of crystallising
    for _ in range(30):
        pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
        d = points[pairs[:, 0]] - points[pairs[:, 1]]
        length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        push = (0.5 * (radius - length) / length)[:, None] * d
        for k in range(2):
            points[:, k] += np.bincount(pairs[:, 0], push[:, k], minlength=n_points)
            points[:, k] -= np.bincount(pairs[:, 1], push[:, k], minlength=n_points)
        np.clip(points, lo, hi, out=points)
    tri = Delaunay(points)
    p = points[tri.simplices]  # (T, 3, 2) -> circumcentres
    ax, ay, bx, by, cx, cy = p[:, 0, 0], p[:, 0, 1], p[:, 1, 0], p[:, 1, 1], p[:, 2, 0], p[:, 2, 1]
    den = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    sa, sb, sc = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    xy = np.stack(
        [(sa * (by - cy) + sb * (cy - ay) + sc * (ay - by)) / den, (sa * (cx - bx) + sb * (ax - cx) + sc * (bx - ax)) / den],
        axis=1,
    )
    neighbours = tri.neighbors
    own = np.repeat(np.arange(len(xy)), 3)
    bonds = np.stack([own, neighbours.ravel()], axis=1)
    bonds = sort_bonds(bonds[bonds[:, 1] >= 0])
    alive = np.all((xy >= lo) & (xy <= hi), axis=1)
    alive = prune_dangling(len(xy), bonds, alive)
    bonds = bonds[alive[bonds].all(axis=1)]
    # Scale the network to a mean bond of acc so that relaxing does not stretch it, then relax it whole.
    centre = np.full(2, (size - 1) / 2)
    mean_bond = np.hypot(*(xy[bonds[:, 0]] - xy[bonds[:, 1]]).T).mean()
    xy = centre + (xy - centre) * (acc / mean_bond)
    alive &= np.all((xy >= -margin) & (xy <= size - 1 + margin), axis=1)
    alive = prune_dangling(len(xy), bonds, alive)
    bonds = bonds[alive[bonds].all(axis=1)]
    xy = relax_springs(xy, bonds, alive, bond_px=acc, repel_px=1.5 * acc, n_iter=400)
    xy, label, bonds, _ = compact_structure(xy, np.full(len(xy), "C"), bonds, alive, [])
    return Structure(xy, label, bonds, [], acc, {"C": 1.0})


def build_tbl_mos2(size, rng, opts):
    d = MOS2_MO_S_NM / opts["pixel_size_nm"]
    a = SQRT3 * d
    rotation = draw_rotation(opts, rng, 2 * math.pi / 3)
    twist = math.radians(opts["twist"])
    pivot = rng.uniform(0.0, size - 1, size=2)
    margin = 4 * d
    # Layer 2 before the twist is layer 1's 2H partner (Mo over S2, S2 over Mo): one lattice, four basis sites.
    # Its points within reach of the image after the twist lie within `reach` of the image (plus margin).
    reach = 2 * math.sin(abs(twist) / 2) * math.sqrt(2) * (size + 2 * margin)
    cell = np.array([[a, 0.0], [a / 2, a * SQRT3 / 2]])
    delta = np.array([a / 2, a * SQRT3 / 6])  # Mo -> S2 of layer 1, in the lattice frame
    basis = np.array([[0.0, 0.0], delta, delta, [0.0, 0.0]])
    xy, site = lattice_points(cell, basis, size=size, margin=margin + reach, rotation=rotation, rng=rng)
    top = site >= 2
    xy[top] = pivot + (xy[top] - pivot) @ rotation_matrix(twist).T
    keep = np.all((xy >= -margin) & (xy <= size - 1 + margin), axis=1)
    xy, site = xy[keep], site[keep]
    names = np.array(["Mo@L1", "S2@L1", "Mo@L2", "S2@L2"])
    intensity = {name: _MOS2_INTENSITY[name.split("@")[0]] for name in names.tolist()}
    turn = rotation_matrix(rotation)
    stacking = _stacking_classes(size, lattice=cell @ turn.T, delta=turn @ delta, twist=twist, pivot=pivot)
    return Structure(xy, names[site], np.empty((0, 2), dtype=np.int64), [], d, intensity, stacking)


def _stacking_classes(size, *, lattice, delta, twist, pivot):
    """Local stacking class on a square grid of step ``a`` over the image (see :class:`Stacking`).

    Parameters
    ----------
    lattice : (2, 2) float, px
        Rows: layer 1's lattice vectors in the image.
    delta : (2,) float, px
        Layer 1's Mo -> S2 vector in the image.
    twist : float, rad
    pivot : (2,) float, px
    """
    a = float(np.linalg.norm(lattice[0]))
    ticks = np.arange(a / 2, size, a) - 0.5
    gx, gy = np.meshgrid(ticks, ticks)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    u = (grid - pivot) - (grid - pivot) @ rotation_matrix(-twist).T
    inverse = np.linalg.inv(lattice)
    registries = np.array([[0.0, 0.0], -delta, delta]) @ inverse  # AA', AB', A'B in lattice coordinates
    frac = (u @ inverse)[:, None, :] - registries[None, :, :]  # (G, 3, 2)
    frac -= np.round(frac)
    cells = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
    distance = np.linalg.norm((frac[:, :, None, :] + cells[None, None, :, :]) @ lattice, axis=-1).min(axis=2)
    nearest = distance.argmin(axis=1)
    label = np.array(STACKING_CLASSES)[np.where(distance.min(axis=1) <= a / 4, nearest, 3)]
    return Stacking(grid_xy=grid, grid_label=label)

