"""Graphene and its defects for the simulator: Stone–Wales, (di)vacancies, dislocations, grain boundaries,
substitutional Si dopants (``dopant_density``: label ``"Si"``, Z-contrast brighter).

Defects are placed on a relaxed honeycomb (see :mod:`motifgram.engine.simulate` for the densities and how
they are honoured); each keeps its rings, which the truth lists.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from motifgram.engine.graph import face_cycles
from motifgram.engine.simspec import A_CC_NM
from motifgram.engine.structures import (
    MAX_RING,
    SQRT3,
    DefectSpec,
    Structure,
    bonds_within,
    compact_structure,
    contains_any,
    contains_bond,
    csr_neighbours,
    draw_rotation,
    honeycomb,
    prune_dangling,
    relax_springs,
    rotation_matrix,
    sort_bonds,
)
from scipy.spatial import Delaunay, cKDTree

log = logging.getLogger(__name__)

#: Column amplitude of a substitutional Si atom relative to C (HAADF ``Z**1.7``: ``(14 / 6)**1.7``).
SI_INTENSITY = (14 / 6) ** 1.7


def build_graphene(size, rng, opts):
    acc = A_CC_NM / opts["pixel_size_nm"]
    rotation = draw_rotation(opts, rng, math.pi / 3)
    xy, _ = honeycomb(acc, rotation, size, 4 * acc, rng)
    n = len(xy)
    bonds = bonds_within(xy, 1.2 * acc)
    ptr, nbr = csr_neighbours(n, bonds)
    inside = np.all((xy >= -0.5) & (xy <= size - 0.5), axis=1)
    n_inside = int(inside.sum())
    todo = (
        ["stone_wales"] * round(opts["stone_wales_density"] * n_inside)
        + ["vacancy"] * round(opts["vacancy_density"] * n_inside)
        + ["divacancy"] * round(opts["divacancy_density"] * n_inside)
        + ["dislocation"] * round(opts["dislocation_density"] * n_inside)
    )
    rng.shuffle(todo)
    sites = _DefectSites(xy, bonds, ptr, nbr, size=size, acc=acc, rng=rng)
    bond_set = set(map(tuple, bonds.tolist()))
    alive = np.ones(n, dtype=bool)
    centres, defects = [], []
    stuck = 0  # dislocation dipoles that found no free glide and stayed Stone–Wales defects
    for kind in todo:
        site = sites.take(kind)
        if site is None:
            break
        atom, choice = site
        centres.append(xy[atom].copy())
        neighbours = [int(k) for k in nbr[ptr[atom] : ptr[atom + 1]]]
        if kind in ("stone_wales", "dislocation"):
            i, j = atom, neighbours[choice]
            others = sorted((set(nbr[ptr[i] : ptr[i + 1]]) | set(nbr[ptr[j] : ptr[j + 1]])) - {i, j})
            _rotate_bond(xy, bond_set, i, j, others)
            if kind == "stone_wales":
                defects.append(DefectSpec("stone_wales", contains_any({i, j}), (i, j), (), True))
            else:
                defects.extend(_glide(xy, bond_set, i, j, acc=acc, sites=sites, rng=rng))
                stuck += defects[-1].kind == "stone_wales"
        elif kind == "vacancy":
            n1, n2 = (neighbours[k] for k in ((0, 1), (0, 2), (1, 2))[choice])
            alive[atom] = False
            bond_set.add(tuple(sorted((n1, n2))))
            defects.append(DefectSpec("vacancy", contains_bond(n1, n2), (n1, n2), (), True))
        else:  # divacancy: the bonded pair (atom, partner) goes; each one's other two neighbours bond
            i, j = atom, neighbours[choice]
            p1, p2 = (int(k) for k in nbr[ptr[i] : ptr[i + 1]] if k != j)
            q1, q2 = (int(k) for k in nbr[ptr[j] : ptr[j + 1]] if k != i)
            alive[[i, j]] = False
            bond_set.update({tuple(sorted((p1, p2))), tuple(sorted((q1, q2)))})
            selects = contains_bond(p1, p2), contains_bond(q1, q2)
            defects.append(DefectSpec("divacancy", lambda ring, s=selects: s[0](ring) or s[1](ring),
                                       (p1, p2, q1, q2), (), True))
    if len(defects) < len(todo):
        log.warning(
            "placed %d of %d requested graphene defects (%.4f of %.4f per atom): every remaining site's rings "
            "overlap another defect's at size %d",
            len(defects),
            len(todo),
            len(defects) / max(n_inside, 1),
            len(todo) / max(n_inside, 1),
            size,
        )
    if stuck:
        log.warning("%d of %d dislocation dipoles found no free glide and stayed Stone–Wales defects",
                    stuck, todo.count("dislocation"))
    bonds = sort_bonds(list(bond_set))
    if centres:
        mobile = alive & (cKDTree(np.array(centres)).query(xy)[0] < 3 * SQRT3 * acc)
        xy = relax_springs(xy, bonds[alive[bonds].all(axis=1)], mobile, bond_px=acc)
    label = np.full(n, "C", dtype="<U2")
    if opts["dopant_density"] > 0:  # drawn only when asked for, so undoped structures keep their seeds' truths
        candidates = np.flatnonzero(alive & inside)
        n_dopants = min(round(opts["dopant_density"] * n_inside), len(candidates))
        label[rng.choice(candidates, size=n_dopants, replace=False)] = "Si"
    xy, label, bonds, defects = compact_structure(xy, label, bonds, alive, defects)
    return Structure(xy, label, bonds, defects, acc, {"C": 1.0, "Si": SI_INTENSITY})


class _DefectSites:
    """Where the next graphene defect goes: sparse sites first, then dense, non-interacting ones.

    A defect's *footprint* is the set of pristine hexagons it rewires: for a Stone–Wales defect on bond
    (i, j) the four hexagons holding i or j (they become its 5-, 5-, 7- and 7-rings), for a vacancy at v the
    three hexagons holding v (its 5- and 9-ring). All bonds a defect removes or adds lie inside its
    footprint, so two defects with disjoint footprints never change each other's rings, and each keeps its
    exact topology (they may still share atoms and bonds of their rings).

    Sparse phase (the only one for the default densities, which it leaves unchanged): centre atoms in
    random order at least 3 lattice periods from the image edge, each at least 4 periods from every earlier
    centre. When no such atom is left, the dense phase visits every atom once, in a new random order, and
    takes it if its footprint is disjoint from every placed defect's and all the footprint's atoms lie at
    least one bond length inside the image (for a Stone–Wales defect the three bonds of the atom are
    tried in random order). Dense Stone–Wales placement jams near 0.08 defects per atom (measured at
    512 px); vacancies fit up to the 0.1 cap (random sequential adsorption of footprints of 4 and 3
    hexagons, 0.5 hexagon per atom).
    """

    def __init__(self, xy, bonds, ptr, nbr, *, size, acc, rng):
        a = SQRT3 * acc
        border = 3 * a
        self._xy = xy.copy()  # pristine positions (the caller's array is rewired in place)
        self._bonds, self._ptr, self._nbr = bonds, ptr, nbr
        self._size, self._acc, self._rng = size, acc, rng
        candidates = np.flatnonzero(np.all((xy >= border - 0.5) & (xy <= size - 0.5 - border), axis=1))
        self._sparse = candidates[rng.permutation(len(candidates))].tolist()
        self._separation = 4 * a
        self._period = a
        self._cursor = 0
        self._centres = []
        self._placed = []  # atoms whose hexagons form each placed defect's footprint
        self._dense = None  # (order, hexagons per atom, usable hexagon mask), built when the sparse sites run out
        self._occupied = None
        self._last = None  # hexagons of the defect taken last (dense phase), which claim() may extend

    def _neighbours(self, atom):
        return [int(k) for k in self._nbr[self._ptr[atom] : self._ptr[atom + 1]]]

    def take(self, kind):
        """``(centre atom, choice)`` for a defect of ``kind``, or None when no site is left.

        ``choice`` indexes the centre's neighbours: the rotated bond's partner (Stone–Wales) or, as 0, 1, 2,
        the pair (0, 1), (0, 2), (1, 2) of neighbours that the vacancy bonds.
        """
        if self._dense is None:
            while self._cursor < len(self._sparse):
                atom = self._sparse[self._cursor]
                self._cursor += 1
                gaps = np.hypot(*(np.array(self._centres) - self._xy[atom]).T) if self._centres else [np.inf]
                if np.min(gaps) >= self._separation:
                    choice = int(self._rng.integers(3))
                    self._centres.append(self._xy[atom])
                    partner = self._neighbours(atom)[choice] if kind != "vacancy" else None
                    self._placed.append((atom,) if partner is None else (atom, partner))
                    return atom, choice
            self._start_dense()
        order, hexes_of, usable = self._dense
        while self._cursor < len(order):
            atom = order[self._cursor]
            self._cursor += 1
            own = hexes_of[atom]
            if not usable[own].all() or self._occupied[own].any():
                continue
            if kind == "vacancy":
                choice = int(self._rng.integers(3))
                self._occupied[own] = True
                self._last = own
                return atom, choice
            neighbours = self._neighbours(atom)
            for choice in self._rng.permutation(3).tolist():
                theirs = hexes_of[neighbours[choice]]
                if usable[theirs].all() and not self._occupied[theirs].any():
                    self._occupied[own] = True
                    self._occupied[theirs] = True
                    self._last = np.union1d(own, theirs)
                    return atom, choice
        return None

    def claim(self, atoms):
        """Add the hexagons of ``atoms`` to the footprint of the defect just taken; False (nothing claimed) when
        one of them is another defect's or too close to the edge (dense phase), or when an atom lies within 2.5
        lattice periods of another defect's rewired atoms (sparse phase)."""
        if self._dense is None:
            others = [a for placed in self._placed[:-1] for a in placed]
            if others and np.min(cKDTree(self._xy[others]).query(self._xy[list(atoms)])[0]) < 2.5 * self._period:
                return False
            self._placed[-1] = tuple(self._placed[-1]) + tuple(atoms)
            return True
        _, hexes_of, usable = self._dense
        hexes = hexes_of[list(atoms)].ravel()
        new = np.setdiff1d(hexes, self._last)
        if not usable[hexes].all() or self._occupied[new].any():
            return False
        self._occupied[new] = True
        self._last = np.union1d(self._last, new)
        return True

    def _start_dense(self):
        n = len(self._xy)
        faces = [f for f in face_cycles(self._xy, self._bonds, max_ring=MAX_RING) if len(f) == 6]
        hexagons = np.array(faces, dtype=np.int64).reshape(-1, 6)
        edge = self._acc
        clear = np.all((self._xy >= edge - 0.5) & (self._xy <= self._size - 0.5 - edge), axis=1)
        usable = np.append(clear[hexagons].all(axis=1), False)  # index -1: a missing hexagon, never usable
        hexes_of = np.full((n, 3), -1, dtype=np.int64)
        filled = np.zeros(n, dtype=np.int64)
        for h, ring in enumerate(hexagons.tolist()):
            for atom in ring:
                hexes_of[atom, filled[atom]] = h
                filled[atom] += 1
        self._occupied = np.zeros(len(hexagons) + 1, dtype=bool)
        for atoms in self._placed:
            for atom in atoms:
                self._occupied[hexes_of[atom]] = True
        self._dense = (self._rng.permutation(n).tolist(), hexes_of, usable)
        self._cursor = 0
        log.debug("graphene defects: sparse sites used up after %d; placing the rest densely", len(self._placed))


def _rotate_bond(xy, bond_set, i, j, others):
    """Rotate bond (i, j) by 90 degrees about its midpoint (in place): i bonds to its two nearest of the four
    ``others`` (the atoms bonded to i or j), j to the other two. On a pristine bond: a Stone–Wales defect."""
    mid = (xy[i] + xy[j]) / 2
    quarter = rotation_matrix(math.pi / 2)
    xy[i] = mid + quarter @ (xy[i] - mid)
    xy[j] = mid + quarter @ (xy[j] - mid)
    for o in others:
        bond_set.discard(tuple(sorted((i, int(o)))))
        bond_set.discard(tuple(sorted((j, int(o)))))
    near_i = sorted(others, key=lambda o: float(np.hypot(*(xy[o] - xy[i]))))
    bond_set.update(tuple(sorted((i, int(o)))) for o in near_i[:2])
    bond_set.update(tuple(sorted((j, int(o)))) for o in near_i[2:])


def _glide(xy, bond_set, i, j, *, acc, sites, rng):
    """Split the Stone–Wales defect just made on bond (i, j) into a dislocation dipole; its two defect specs.

    A second bond rotation next to the defect moves one of its 5-7 pairs one step away (Stone–Wales glide):
    5-7 and 7-5, each a dislocation core, with hexagons between them. Every bond within 2.5 bond lengths of
    the defect is tried on a local copy (rotated as :func:`_rotate_bond` does, then relaxed) and kept when the
    faces at the two rotated bonds become exactly two pentagons and two heptagons in two bond-sharing 5-7 pairs that share
    no bond with each other; one of those bonds is taken at random (its hexagons must be free, see
    :meth:`_DefectSites.claim`). Each core's spec selects its pentagon and heptagon.
    """
    centre = (xy[i] + xy[j]) / 2
    near = np.flatnonzero(np.hypot(*(xy - centre).T) < 8 * acc)
    index = {int(k): n for n, k in enumerate(near.tolist())}
    local_xy = xy[near]
    local_bonds = sorted((index[p], index[q]) for p, q in bond_set if p in index and q in index)
    mobile = np.hypot(*(local_xy - centre).T) < 3 * SQRT3 * acc  # as the final relaxation moves them
    valid = []
    for a, b in local_bonds:
        if {a, b} == {index[i], index[j]} or np.hypot(*((local_xy[a] + local_xy[b]) / 2 - centre)) >= 2.5 * acc:
            continue
        trial_xy, trial_bonds = local_xy.copy(), set(local_bonds)
        others = sorted({o for e in trial_bonds for o in e if a in e or b in e} - {a, b})
        if len(others) != 4:
            continue
        _rotate_bond(trial_xy, trial_bonds, a, b, others)
        relaxed = relax_springs(trial_xy, np.array(sorted(trial_bonds), dtype=np.int64), mobile, bond_px=acc)
        cores = _dislocation_cores(relaxed, trial_bonds, {index[i], index[j], a, b})
        if cores is not None:
            valid.append((int(near[a]), int(near[b]), [int(near[o]) for o in others],
                          [frozenset(frozenset(int(near[x]) for x in ring) for ring in core) for core in cores]))
    rng.shuffle(valid)
    for a, b, others, cores in valid:
        if sites.claim((a, b)):
            _rotate_bond(xy, bond_set, a, b, others)
            return [DefectSpec("dislocation", lambda ring, c=frozenset(core): frozenset(ring) in c,
                                tuple(sorted({x for ring in core for x in ring})), (), True) for core in cores]
    return [DefectSpec("stone_wales", contains_any({i, j}), (i, j), (), True)]


def _dislocation_cores(xy, bonds, moved):
    """The two 5-7 cores (each a pair of atom frozensets) when the faces holding an atom of ``moved`` (the two
    rotated bonds) other than hexagons are exactly two bond-sharing 5-7 pairs sharing no bond with each
    other, else None."""
    faces = face_cycles(xy, np.array(sorted(bonds), dtype=np.int64).reshape(-1, 2), max_ring=MAX_RING)
    odd = [f for f in faces if len(f) != 6 and not moved.isdisjoint(f)]
    if sorted(map(len, odd)) != [5, 5, 7, 7]:
        return None
    edges = [{frozenset((f[k], f[k - 1])) for k in range(len(f))} for f in odd]
    touching = [(x, y) for x in range(4) for y in range(x + 1, 4) if edges[x] & edges[y]]
    if len(touching) != 2 or {len(odd[x]) + len(odd[y]) for x, y in touching} != {12}:
        return None
    (x1, y1), (x2, y2) = touching
    if len({x1, y1, x2, y2}) != 4:
        return None
    return [frozenset((frozenset(odd[x]), frozenset(odd[y]))) for x, y in touching]


def build_graphene_gb(size, rng, opts):
    acc = A_CC_NM / opts["pixel_size_nm"]
    rotation = draw_rotation(opts, rng, math.pi / 3)
    if opts["boundary_angle"] is None:
        opts["boundary_angle"] = float(rng.uniform(0.0, math.pi))
    phi = opts["boundary_angle"]
    normal = np.array([-math.sin(phi), math.cos(phi)])
    centre = np.full(2, (size - 1) / 2)
    grains = [honeycomb(acc, rotation + turn, size, 4 * acc, rng)[0] for turn in (0.0, opts["misorientation"])]
    side = [(g - centre) @ normal for g in grains]
    xy = np.concatenate([grains[0][side[0] < 0], grains[1][side[1] >= 0]])
    grain = np.concatenate([np.zeros((side[0] < 0).sum(), int), np.ones((side[1] >= 0).sum(), int)])
    n = len(xy)
    close = cKDTree(xy).query_pairs(0.7 * acc, output_type="ndarray")
    alive = np.ones(n, dtype=bool)
    alive[close[grain[close] == 1]] = False  # of each too-close pair across the boundary, drop grain 2's atom
    for _ in range(10):
        live = np.flatnonzero(alive)
        simplices = live[Delaunay(xy[live]).simplices]
        edges = sort_bonds(np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]]))
        bonds = edges[np.hypot(*(xy[edges[:, 0]] - xy[edges[:, 1]]).T) <= 1.25 * acc]
        # A 3-ring at the seam is an artefact of the distance cut: drop its lone atom from the other grain.
        triangles = np.array([f for f in face_cycles(xy, bonds, max_ring=MAX_RING) if len(f) == 3], dtype=np.int64).reshape(-1, 3)
        if not len(triangles):
            break
        tags = grain[triangles]
        lone = np.where((tags.sum(axis=1) == 1)[:, None], tags == 1, tags == 0).argmax(axis=1)
        alive[triangles[np.arange(len(triangles)), lone]] = False
    alive = prune_dangling(n, bonds, alive)
    bonds = bonds[alive[bonds].all(axis=1)]
    distance = np.abs((xy - centre) @ normal)
    xy = relax_springs(xy, bonds, alive & (distance < 4 * acc), bond_px=acc, repel_px=1.5 * acc)
    degree = np.bincount(bonds.ravel(), minlength=n)
    in_image = np.all((xy >= 0) & (xy <= size - 1), axis=1)
    odd = tuple(int(k) for k in np.flatnonzero(alive & in_image & (degree != 3) & (distance < 3 * acc)))
    grain_of = grain.copy()

    def selects(ring):
        return len(ring) != 6 or len({int(grain_of[k]) for k in ring}) == 2

    defects = [DefectSpec("grain_boundary", selects, tuple(int(k) for k in np.flatnonzero(alive)), odd, True)]
    xy, label, bonds, defects = compact_structure(xy, np.full(n, "C"), bonds, alive, defects)
    return Structure(xy, label, bonds, defects, acc, {"C": 1.0})


