"""Tests for motifgram.engine.graph: bonds, faces and rings checked against their invariants."""

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.path import Path
from scipy.sparse.csgraph import connected_components
from scipy.sparse import coo_matrix
from scipy.spatial import Delaunay, cKDTree

from conftest import seeds
from motifgram.engine.errors import MotifgramError
from motifgram.engine.graph import (
    AUTO_BOND_WINDOW,
    AtomGraph,
    face_cycles,
    graph_from_bonds,
    aboav_weaire,
    build_graph,
    ring_statistics,
)
from motifgram.engine.simulate import simulate

BOND = 10.0  # px


# ---------------------------------------------------------------- lattices


def honeycomb(width, height, *, b=BOND, origin=(0.0, 0.0)):
    """Honeycomb (one bond vertical) inside the box [0, width) x [0, height), shifted by ``origin``."""
    a1 = np.array([math.sqrt(3) * b, 0.0])
    a2 = np.array([math.sqrt(3) / 2 * b, 1.5 * b])
    n = int(2 * max(width, height) / b) + 4
    i, j = np.meshgrid(np.arange(-n, n), np.arange(-n, n))
    base = i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2
    pts = np.concatenate([base, base + [0.0, b]])
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    return pts[inside] + origin


def square(n, *, a=BOND, origin=(0.0, 0.0)):
    i, j = np.meshgrid(np.arange(n), np.arange(n))
    return np.stack([i.ravel(), j.ravel()], axis=1) * a + origin


def shape_for(xy, margin=3 * BOND):
    """An image shape leaving ``margin`` px around the atoms (all positions assumed >= margin)."""
    return (int(xy[:, 1].max() + margin), int(xy[:, 0].max() + margin))


def central_atom(xy):
    return int(np.argmin(np.hypot(*(xy - xy.mean(axis=0)).T)))


def stone_wales(xy, *, b=BOND, n_relax=30):
    """Rotate the vertical bond nearest the centre by 90 degrees about its midpoint; spring-relax nearby atoms.

    Returns the positions and the two atoms of the rotated bond.
    """
    xy = xy.copy()
    c = central_atom(xy)
    d = xy - xy[c]
    above = np.flatnonzero((np.abs(d[:, 0]) < 1e-6) & (np.abs(np.abs(d[:, 1]) - b) < 1e-6))[0]
    i, j = c, int(above)
    mid = 0.5 * (xy[i] + xy[j])
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    xy[[i, j]] = (xy[[i, j]] - mid) @ rot.T + mid
    # Springs on the new topology (each atom's three nearest neighbours), rest length b, near the defect only.
    dist = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    np.fill_diagonal(dist, np.inf)
    nbr = np.argsort(dist, axis=1)[:, :3]
    mobile = np.hypot(*(xy - mid).T) < 2.5 * b
    for _ in range(n_relax):
        vec = xy[nbr] - xy[:, None]
        length = np.hypot(vec[..., 0], vec[..., 1])
        force = ((length - b) / length)[..., None] * vec
        xy[mobile] += 0.2 * force.sum(axis=1)[mobile]
    return xy, i, j


# ---------------------------------------------------------------- checkers


def signed_area(p):
    return 0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1])


def check_graph(g, *, max_ring=12, border_px=0.0):
    """Assert every documented invariant of an AtomGraph."""
    n = g.n_atoms
    assert g.xy.shape == (n, 2) and g.xy.dtype == np.float64
    assert g.tokens.shape == (n,)
    assert g.bonds.dtype == np.int64 and g.bonds.shape[1] == 2
    if len(g.bonds):
        assert np.all(g.bonds[:, 0] < g.bonds[:, 1])
        keys = g.bonds[:, 0] * n + g.bonds[:, 1]
        assert np.all(np.diff(keys) > 0), "bonds sorted and unique"
    bonded = set(map(tuple, g.bonds.tolist()))
    h, w = g.image_shape
    for ring in g.rings:
        assert 3 <= len(ring) <= max_ring
        assert len(set(ring)) == len(ring), "no atom repeated"
        assert ring[0] == min(ring), "rings start at their smallest atom"
        for a, b in zip(ring, ring[1:] + ring[:1]):
            assert (min(a, b), max(a, b)) in bonded, "consecutive ring atoms are bonded (closed cycle)"
        p = g.xy[list(ring)]
        assert signed_area(p) < 0, "counter-clockwise as displayed (y down) = negative raw shoelace"
        others = np.setdiff1d(np.arange(n), ring)
        assert not Path(p).contains_points(g.xy[others]).any(), "no atom inside a ring"
    assert g.ring_border.shape == (len(g.rings),) and g.region.shape == (n,)
    for ring, flagged in zip(g.rings, g.ring_border):
        p = g.xy[list(ring)]
        near = ~np.all((p[:, 0] + 0.5 >= border_px) & (w - 0.5 - p[:, 0] >= border_px)
                       & (p[:, 1] + 0.5 >= border_px) & (h - 0.5 - p[:, 1] >= border_px))
        assert flagged or not near, "a ring with an atom near the image edge is flagged"
    assert list(g.rings) == sorted(g.rings), "rings sorted"
    assert g.ring_sizes.tolist() == [len(r) for r in g.rings]


def canonical(rings, relabel=None):
    """Rings as a set of tuples rotated to start at their minimum, after mapping atom ids through ``relabel``."""
    out = set()
    for r in rings:
        r = [int(relabel[a]) for a in r] if relabel is not None else list(r)
        k = r.index(min(r))
        out.add(tuple(r[k:] + r[:k]))
    return out


def reversed_canonical(rings):
    return canonical(tuple(tuple(reversed(r)) for r in rings))


# ---------------------------------------------------------------- lattices


def test_honeycomb_interior_is_all_hexagons_with_degree_three():
    xy = honeycomb(200, 200, origin=(30, 30))
    g = build_graph(xy, image_shape=shape_for(xy))
    check_graph(g)
    assert set(g.ring_sizes.tolist()) == {6}
    # Expected: every complete hexagon, flagged when one of its six neighbouring hexagons is incomplete (it
    # has an atom on the outer face). Hexagon centres sit at sqrt(3) b spacing, b from their six atoms.
    angles = np.pi / 6 + np.pi / 3 * np.arange(6)
    centres = (xy[:, None] + BOND * np.stack([np.cos(angles), np.sin(angles)], axis=1)).reshape(-1, 2)
    centres = centres[np.unique(np.round(centres, 6), axis=0, return_index=True)[1]]
    centres = centres[cKDTree(xy).query(centres)[0] > BOND / 2]
    complete = np.array([len(m) for m in cKDTree(xy).query_ball_point(centres, BOND + 1e-6)]) == 6
    nbrs = cKDTree(centres).query_ball_point(centres, math.sqrt(3) * BOND + 1e-6)
    expected = centres[complete]
    interior = [c for c, m in zip(centres, nbrs) if complete[m].all() and len(m) == 7]
    assert len(g.rings) == len(expected) > len(interior) > 50
    found = np.array([g.xy[list(r)].mean(axis=0) for r in g.rings])
    assert set(map(tuple, np.round(found, 6).tolist())) == set(map(tuple, np.round(expected, 6).tolist()))
    assert set(map(tuple, np.round(found[~g.ring_border], 6).tolist())) == set(
        map(tuple, np.round(interior, 6).tolist()))
    assert (g.region == "network").all()
    deg = np.bincount(g.bonds.ravel(), minlength=g.n_atoms)
    in_ring = np.unique(np.concatenate([np.array(r) for r, b in zip(g.rings, g.ring_border) if not b]))
    assert np.all(deg[in_ring] == 3)  # atoms of unflagged rings are inside the network
    assert np.allclose(np.hypot(*(g.xy[g.bonds[:, 0]] - g.xy[g.bonds[:, 1]]).T), BOND)
    assert AUTO_BOND_WINDOW[0] <= g.bond_factor <= AUTO_BOND_WINDOW[1]
    assert g.bond_factor < math.sqrt(3)


def test_square_lattice_gives_four_rings():
    xy = square(12, origin=(20, 20))
    g = build_graph(xy, image_shape=shape_for(xy))
    check_graph(g)
    assert 1.0 < g.bond_factor < math.sqrt(2)
    assert g.ring_sizes.tolist() == [4] * (11 * 11)  # every square, the outermost layer flagged
    assert int((~g.ring_border).sum()) == 9 * 9
    deg = np.bincount(g.bonds.ravel(), minlength=g.n_atoms)
    assert np.bincount(deg).tolist() == [0, 0, 4, 4 * 10, 100]


def test_stone_wales_gives_two_pentagons_and_two_heptagons():
    xy, i, j = stone_wales(honeycomb(160, 160, origin=(30, 30)))
    g = build_graph(xy, image_shape=shape_for(xy))
    check_graph(g)
    sizes = g.ring_sizes
    assert np.count_nonzero(sizes == 5) == 2 and np.count_nonzero(sizes == 7) == 2
    assert set(sizes.tolist()) == {5, 6, 7}
    fives = [set(r) for r in g.rings if len(r) == 5]
    sevens = [set(r) for r in g.rings if len(r) == 7]
    assert all({i, j} <= s for s in sevens), "the heptagons share the rotated bond"
    assert sorted(len(s & {i, j}) for s in fives) == [1, 1] and (fives[0] | fives[1]) >= {i, j}
    (bi, bj) = sorted((i, j))
    assert any((g.bonds == [bi, bj]).all(axis=1))
    # Ring adjacency: each pentagon borders both heptagons, and the heptagons border each other.
    idx = {k for k, r in enumerate(g.rings) if len(r) != 6}
    pairs = {tuple(p) for p in g.ring_adjacency().tolist() if set(p) <= idx}
    assert len(pairs) == 5
    stats = ring_statistics(sizes)
    assert stats.mean == pytest.approx(6.0) and stats.mu2 == pytest.approx(4 / len(sizes))


def test_vacancy_gives_a_twelve_ring():
    xy = honeycomb(160, 160, origin=(30, 30))
    c = central_atom(xy)
    neighbours = np.flatnonzero(np.abs(np.hypot(*(xy - xy[c]).T) - BOND) < 1e-6)
    xy = np.delete(xy, c, axis=0)
    neighbours = neighbours - (neighbours > c)
    g = build_graph(xy, image_shape=shape_for(xy))
    check_graph(g)
    big = [r for r in g.rings if len(r) != 6]
    assert len(big) == 1 and len(big[0]) == 12 and set(neighbours) <= set(big[0])
    g11 = build_graph(xy, image_shape=shape_for(xy), max_ring=11)
    check_graph(g11, max_ring=11)
    assert set(g11.ring_sizes.tolist()) == {6} and len(g11.rings) == len(g.rings) - 1


@pytest.mark.parametrize("seed", seeds(0, 1, 2))
def test_jitter_of_five_percent_keeps_the_honeycomb_rings(seed):
    xy = honeycomb(160, 160, origin=(30, 30))
    ref = build_graph(xy, image_shape=shape_for(xy))
    rng = np.random.default_rng(seed)
    g = build_graph(xy + rng.uniform(-0.05, 0.05, xy.shape) * BOND, image_shape=shape_for(xy))
    check_graph(g)
    assert canonical(g.rings) == canonical(ref.rings)
    assert np.array_equal(g.bonds, ref.bonds)


def test_border_rule_flags_rings_near_the_image_edge():
    xy = honeycomb(300, 300, origin=(-5, -5))  # the lattice overfills the image
    shape = (280, 270)
    g = build_graph(xy, image_shape=shape, border_px=12.0)
    check_graph(g, border_px=12.0)
    assert set(g.ring_sizes.tolist()) == {6}
    auto = build_graph(xy, image_shape=shape)
    check_graph(auto, border_px=0.5 * BOND)
    assert canonical(g.rings) == canonical(auto.rings)  # the same rings, more of them flagged
    assert auto.ring_border.sum() < g.ring_border.sum() < len(g.rings)
    # every complete hexagon is a ring, however close to the edge: the image's size drops none
    full = build_graph(xy, image_shape=(400, 400))
    assert canonical(full.rings) == canonical(g.rings)


def test_explicit_bond_factor_is_used():
    xy = square(6, origin=(20, 20))
    g = build_graph(xy, image_shape=shape_for(xy), bond_factor=1.5)
    assert g.bond_factor == 1.5
    # diagonals are bonds now: each of the 25 squares splits into 2 triangles
    assert set(g.ring_sizes.tolist()) == {3} and len(g.rings) == 50
    check_graph(g)


# ---------------------------------------------------------------- faces: Euler and networkx


def random_planar_graph(seed, n=120):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    tri = Delaunay(xy)
    edges = np.unique(np.sort(np.concatenate([tri.simplices[:, [0, 1]], tri.simplices[:, [1, 2]],
                                              tri.simplices[:, [2, 0]]]), axis=1), axis=0)
    bonds = edges[rng.random(len(edges)) < 0.6].astype(np.int64)
    return xy, bonds, tri


def networkx_faces(xy, bonds):
    """Every face walk of the straight-line embedding, from networkx's PlanarEmbedding (neighbours in angular order)."""
    emb = nx.PlanarEmbedding()
    emb.add_nodes_from(range(len(xy)))
    neighbours = {v: [] for v in range(len(xy))}
    for i, j in bonds.tolist():
        neighbours[i].append(j)
        neighbours[j].append(i)
    for v, nbrs in neighbours.items():
        nbrs.sort(key=lambda w: math.atan2(xy[w, 1] - xy[v, 1], xy[w, 0] - xy[v, 0]))  # counter-clockwise in raw x, y
        for k, w in enumerate(nbrs):
            emb.add_half_edge(v, w, **({"ccw": nbrs[k - 1]} if k else {}))
    emb.check_structure()
    seen, faces = set(), []
    for u, v in emb.edges():
        if (u, v) not in seen:
            faces.append(tuple(emb.traverse_face(u, v, mark_half_edges=seen)))
    return faces


@pytest.mark.parametrize("seed", seeds(0, 1, 2, 3))
def test_faces_satisfy_euler_and_match_networkx(seed):
    xy, bonds, tri = random_planar_graph(seed)
    # a whole triangulation: every bounded face a triangle, and V - E + F = 1
    edges = np.unique(np.sort(np.concatenate([tri.simplices[:, [0, 1]], tri.simplices[:, [1, 2]],
                                              tri.simplices[:, [2, 0]]]), axis=1), axis=0)
    triangles = face_cycles(xy, edges, max_ring=12)
    assert {frozenset(t) for t in triangles} == {frozenset(t) for t in tri.simplices.tolist()}
    assert len(xy) - len(edges) + len(triangles) == 1
    # 60 % of its edges: the simple bounded faces are networkx's simple face walks but for each piece's outer one
    # (networkx walks bounded faces with a positive raw shoelace sum, the outer one of each piece negative)
    expected = set()
    for walk in networkx_faces(xy, bonds):
        p = xy[list(walk)]
        if len(set(walk)) == len(walk) <= 12 and signed_area(p) > 0:
            expected.add(frozenset(walk))
    faces = face_cycles(xy, bonds, max_ring=12)
    assert {frozenset(f) for f in faces} == expected and len(faces) == len(expected) > 5
    for f in faces:
        assert f[0] == min(f) and signed_area(xy[list(f)]) < 0
    # Euler over all faces: V - E + F = 1 + C (F counting one outer face for the whole plane)
    n, e = len(xy), len(bonds)
    n_comp, _ = connected_components(coo_matrix((np.ones(e), tuple(bonds.T)), shape=(n, n)), directed=False)
    pieces_with_edges = len(set(connected_components(coo_matrix((np.ones(e), tuple(bonds.T)), shape=(n, n)),
                                                     directed=False)[1][bonds[:, 0]].tolist()))
    n_bounded = len(networkx_faces(xy, bonds)) - pieces_with_edges
    assert n - e + n_bounded + 1 == 1 + n_comp


def test_rings_exclude_faces_with_atoms_inside():
    # A 4 x 4 grid of bonded atoms: nine square rings, the central one away from the outer face ...
    grid = np.array([[x, y] for y in range(4) for x in range(4)], float) * 30 + 20
    bonds = [(i, i + 1) for i in range(16) if i % 4 < 3] + [(i, i + 4) for i in range(12)]
    plain = graph_from_bonds(grid, bonds, image_shape=(200, 200))
    assert len(plain.rings) == 9 and [r for r, b in zip(plain.rings, plain.ring_border) if not b] == [(5, 9, 10, 6)]
    # ... and the central square is no ring with atoms inside it, bonded to each other (a triangle) or not
    centre = frozenset((5, 6, 9, 10))
    triangle = np.array([[58, 58], [64, 58], [60, 64]], float)
    with_triangle = graph_from_bonds(np.concatenate([grid, triangle]), bonds + [(16, 17), (17, 18), (16, 18)],
                                     image_shape=(200, 200))
    with_atom = graph_from_bonds(np.concatenate([grid, [[62.0, 61.0]]]), bonds, image_shape=(200, 200))
    for g in (with_triangle, with_atom):
        assert centre not in set(map(frozenset, g.rings)) and len({frozenset(r) for r in g.rings} & set(
            map(frozenset, plain.rings))) == 8
    # build_graph bonds such a triangle to the cell's corners; the cell itself is never a ring.
    grid = np.array([[x, y] for y in range(5) for x in range(5)], float) * 20 + 20
    xy = np.concatenate([grid, [[46, 46], [52, 46], [48, 52]]])
    g = build_graph(xy, image_shape=(200, 200), bond_factor=1.2)
    check_graph(g)
    ring_sets = set(map(frozenset, g.rings))
    assert frozenset({6, 7, 11, 12}) not in ring_sets and frozenset({12, 13, 17, 18}) in ring_sets


# ---------------------------------------------------------------- invariance (hypothesis)

_SW = stone_wales(honeycomb(100, 100, origin=(60, 60)))[0]
_SW_SHAPE = (240, 240)
_SW_GRAPH = build_graph(_SW, image_shape=_SW_SHAPE)


def test_stone_wales_fixture_is_sane():
    check_graph(_SW_GRAPH)
    assert sorted(_SW_GRAPH.ring_sizes.tolist()).count(5) == 2


@settings(max_examples=20, deadline=None)
@given(angle=st.floats(0, 2 * math.pi))
def test_rings_invariant_under_rotation(angle):
    c = np.array([119.5, 119.5])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    g = build_graph((_SW - c) @ rot.T + c, image_shape=_SW_SHAPE)
    check_graph(g)
    # the interior rings are invariant; a flagged ring on the outer face of a finite flake can be lost when the
    # rotation changes the Delaunay triangulation of its co-circular atoms (KNOWN ISSUE, issue 18 report)
    inner = [r for r, b in zip(g.rings, g.ring_border) if not b]
    inner_ref = [r for r, b in zip(_SW_GRAPH.rings, _SW_GRAPH.ring_border) if not b]
    assert canonical(inner) == canonical(inner_ref)
    assert np.array_equal(g.bonds, _SW_GRAPH.bonds)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_rings_invariant_under_permutation(seed):
    perm = np.random.default_rng(seed).permutation(len(_SW))
    g = build_graph(_SW[perm], image_shape=_SW_SHAPE)
    check_graph(g)
    assert canonical(g.rings, relabel=perm) == canonical(_SW_GRAPH.rings)


def test_mirror_reverses_ring_orientation():
    mirrored = _SW * [-1, 1] + [_SW_SHAPE[1] - 1, 0]
    g = build_graph(mirrored, image_shape=_SW_SHAPE)
    check_graph(g)
    assert canonical(g.rings) == reversed_canonical(_SW_GRAPH.rings)


# ---------------------------------------------------------------- AtomGraph methods


def test_ring_adjacency_matches_shared_bonds():
    g = _SW_GRAPH
    pairs = g.ring_adjacency()
    assert pairs.dtype == np.int64 and np.all(pairs[:, 0] < pairs[:, 1])
    edge_sets = [{frozenset(e) for e in zip(r, r[1:] + r[:1])} for r in g.rings]
    brute = {(a, b) for a in range(len(g.rings)) for b in range(a + 1, len(g.rings)) if edge_sets[a] & edge_sets[b]}
    assert set(map(tuple, pairs.tolist())) == brute
    assert pairs.tolist() == sorted(pairs.tolist())


def test_to_networkx_and_with_tokens():
    g = _SW_GRAPH
    assert set(g.tokens.tolist()) == {""}
    labelled = g.with_tokens(np.where(np.arange(g.n_atoms) % 2, "A", "B"))
    assert labelled.tokens[1] == "A" and set(g.tokens.tolist()) == {""}
    assert labelled.rings is g.rings and labelled.bond_factor == g.bond_factor
    h = labelled.to_networkx()
    assert h.number_of_nodes() == g.n_atoms and h.number_of_edges() == len(g.bonds)
    assert h.nodes[3]["token"] == "A" and h.nodes[3]["xy"] == tuple(g.xy[3])
    assert h.graph["rings"] == g.rings
    assert all(nx.is_simple_path(h, list(r)) and h.has_edge(r[-1], r[0]) for r in g.rings)
    with pytest.raises(MotifgramError, match="tokens"):
        g.with_tokens(["A"])


def test_ring_statistics_and_aboav_weaire():
    assert ring_statistics([5, 7, 6, 6]) == ({5: 0.25, 6: 0.5, 7: 0.25}, 6.0, 0.5)
    empty = ring_statistics([])
    assert empty.p_n == {} and math.isnan(empty.mean) and math.isnan(empty.mu2)
    g = _SW_GRAPH
    a, mu2 = aboav_weaire(g)
    assert mu2 == ring_statistics(g.ring_sizes).mu2
    # Brute force: pooled neighbour sizes m(n), then the weighted least-squares slope.
    sizes = g.ring_sizes
    nbrs = {k: [] for k in range(len(sizes))}
    for p, q in g.ring_adjacency().tolist():
        nbrs[p].append(sizes[q])
        nbrs[q].append(sizes[p])
    num = den = 0.0
    for n in np.unique(sizes):
        pooled = [m for k in np.flatnonzero(sizes == n) for m in nbrs[k]]
        w = np.count_nonzero(sizes == n)
        num += w * (6 - n) * (n * np.mean(pooled) - 6 * n - mu2)
        den += w * (6 - n) ** 2
    assert a == pytest.approx(num / den)
    hexes = build_graph(honeycomb(100, 100, origin=(30, 30)), image_shape=(200, 200))
    assert math.isnan(aboav_weaire(hexes)[0])


# ---------------------------------------------------------------- degenerate input


@pytest.mark.parametrize("xy", [np.empty((0, 2)), [], [[5.0, 5.0]]])
def test_no_or_one_atom(xy):
    g = build_graph(xy, image_shape=(10, 10))
    assert g.bonds.shape == (0, 2) and g.rings == () and g.n_atoms == len(xy)
    assert g.ring_adjacency().shape == (0, 2)


def test_two_atoms_make_one_bond():
    g = build_graph([[1.0, 1.0], [4.0, 5.0]], image_shape=(10, 10))
    assert g.bonds.tolist() == [[0, 1]] and g.rings == ()


def test_collinear_atoms_make_a_chain():
    t = np.array([0.0, 3.0, 1.0, 2.0, 4.0, 9.0])  # unsorted along the line; 9 is far away
    xy = np.stack([10 + 5 * t, 20 + 3 * t], axis=1)
    g = build_graph(xy, image_shape=(100, 100))
    assert g.bonds.tolist() == [[0, 2], [1, 3], [1, 4], [2, 3]] and g.rings == ()
    check_graph(g)


def test_duplicate_positions_are_refused():
    xy = honeycomb(60, 60, origin=(20, 20))
    xy = np.concatenate([xy, xy[3:4] + 1e-8])
    with pytest.raises(MotifgramError, match="atoms 3 and"):
        build_graph(xy, image_shape=(100, 100))


@pytest.mark.parametrize(
    ("xy", "options", "match"),
    [
        ([[1.0, 2.0, 3.0]], {}, r"\(N, 2\)"),
        ([[1.0, np.nan], [2.0, 2.0]], {}, "non-finite"),
        ([[1.0, 1.0], [2.0, 2.0]], {"bond_factor": 1.0}, "bond_factor"),
        ([[1.0, 1.0], [2.0, 2.0]], {"max_ring": 2}, "max_ring"),
        ([[1.0, 1.0], [2.0, 2.0]], {"border_px": -1.0}, "border_px"),
        ([[1.0, 1.0], [2.0, 2.0]], {"image_shape": (10,)}, "image_shape"),
    ],
)
def test_bad_input_is_named(xy, options, match):
    kwargs = {"image_shape": (10, 10), **options}
    with pytest.raises(MotifgramError, match=match):
        build_graph(xy, **kwargs)


def test_atom_graph_validates_fields():
    with pytest.raises(MotifgramError, match="bonds"):
        AtomGraph(xy=np.zeros((2, 2)), tokens=["", ""], bonds=[[1, 0]], rings=(), image_shape=(4, 4))
    g = AtomGraph(xy=[[0, 0], [1, 0], [0, 1]], tokens=["A", "B", "C"], bonds=[[0, 1], [0, 2], [1, 2]],
                  rings=[[0, 2, 1]], image_shape=(4, 4))
    assert g.rings == ((0, 2, 1),) and math.isnan(g.bond_factor) and g.xy.dtype == np.float64


def dumbbell_columns(spacing_px, seed):
    """Columns of a rectangular lattice of vertical dumbbells: pairs 8 px apart, ``spacing_px`` between the
    dumbbell columns, 20 px between dumbbells along a column (12 px end to end), 0.2 px position noise."""
    rng = np.random.default_rng(seed)
    centres = np.array([[x * spacing_px, y * 20.0] for y in range(10) for x in range(10)]) + 20
    columns = np.concatenate([centres - [0, 4.0], centres + [0, 4.0]]) + rng.normal(0, 0.2, (200, 2))
    return columns, (230, int(9 * spacing_px + 40))


@pytest.mark.parametrize("seed", seeds(3, 4))
def test_auto_bond_factor_bonds_past_a_first_shell_of_pairs_or_chains(seed):
    """A rectangular lattice (rows 1.45x farther apart than columns) and a lattice of dumbbells: the first
    histogram minimum would leave chains or isolated pairs; the auto cut bonds the next shell and finds rings."""
    rng = np.random.default_rng(seed)
    rect = np.array([[x * 10.0, y * 14.5] for y in range(12) for x in range(16)]) + 20
    rect += rng.normal(0, 0.2, rect.shape)
    g = build_graph(rect, image_shape=(220, 200))
    assert 1.45 < g.bond_factor < 1.75  # seeds 0-9: 1.62-1.64
    assert set(g.ring_sizes.tolist()) == {4} and len(g.rings) == 15 * 11 and (g.region == "network").all()
    assert int((~g.ring_border).sum()) == 13 * 9  # the outer layer touches the hull: flagged
    # Dumbbell columns 14 px apart (1.75 x the pair): the ladders between neighbouring columns are rectangles, 7 x 17
    # of them away from the hull. Seeds 0-9 and 1000-1009: 115-120 rings, 97.5-100 % of them 4-rings (now and then
    # a rectangle's diagonal, 2.02 x the pair, is bonded, or a side missed: triangles, hexagons). This geometry
    # replaced the 24 px of the test's first version (d8de7bf, unstated): see the xfail below and the
    # dumbbell-sites test after it.
    columns, shape = dumbbell_columns(14.0, seed)
    g = build_graph(columns, image_shape=shape)
    degree = np.bincount(g.bonds.ravel(), minlength=len(columns))
    assert np.mean(degree) >= 2.5
    inner = g.ring_sizes[~g.ring_border]
    assert abs(len(inner) - 7 * 17) <= 8 and np.mean(inner == 4) >= 0.95


@pytest.mark.xfail(reason="columns 24 px apart are 3 x the 8 px dumbbell: beyond the auto bond factor's search (ratio "
                          "2.5; edge ratios to the local nearest-neighbour distance), so the cut leaves isolated pairs "
                          "and no ring; a longer search cannot help, since the ladders' rectangles (8 x 24 px) have "
                          "diagonals only 5 % longer than their sides (ratios 3.16 vs 3.0, with 0.2 px noise no valley "
                          "between them). Pair the columns first: detect.spots: dumbbells (next test)", strict=True)
@pytest.mark.parametrize("seed", seeds(3))
def test_auto_bond_factor_on_dumbbells_three_times_their_length_apart(seed):
    columns, shape = dumbbell_columns(24.0, seed)
    g = build_graph(columns, image_shape=shape)
    inner = g.ring_sizes[~g.ring_border]
    assert len(inner) == 7 * 17 and set(inner.tolist()) == {4}


@pytest.mark.parametrize("seed", seeds(3, 4))
def test_dumbbell_sites_make_the_wide_dumbbell_lattice_a_graph(seed):
    """The same 24 px lattice with each dumbbell one site (engine/pairs.py): a rectangular lattice, every interior
    rectangle a ring (seeds 0-9: the 7 x 7 away from the hull, nothing else)."""
    from motifgram.engine.pairs import dumbbell_sites

    columns, shape = dumbbell_columns(24.0, seed)
    sites = dumbbell_sites(columns, np.ones(len(columns)))
    assert len(sites.xy) == 100 and sites.paired.all()
    g = build_graph(sites.xy, image_shape=shape)
    assert set(g.ring_sizes.tolist()) == {4} and int((~g.ring_border).sum()) == 7 * 7 and len(g.rings) == 9 * 9


def test_rings_read_as_a_tuple_of_tuples():
    """Rings: a ragged array that indexes, iterates, compares and prints as the tuple of tuples it holds."""
    import pickle

    from motifgram.engine.graph import Rings

    tuples = ((0, 2, 1), (1, 2, 3, 4), (5, 6, 7))
    r = Rings.from_sequences([list(t) for t in tuples])
    assert len(r) == 3 and r[1] == (1, 2, 3, 4) and r[-1] == (5, 6, 7) and type(r[0][0]) is int
    assert tuple(r) == tuples and r == tuples and r == list(tuples) and r != tuples[:2] and repr(r) == repr(tuples)
    assert r.sizes.tolist() == [3, 4, 3] and r.offsets.tolist() == [0, 3, 7, 10]
    assert r.padded().tolist() == [[0, 2, 1, -1], [1, 2, 3, 4], [5, 6, 7, -1]]
    assert r.take([2, 0]) == (tuples[2], tuples[0]) and r[1:] == tuples[1:]
    assert pickle.loads(pickle.dumps(r)) == r and Rings.from_sequences(r) is r
    assert Rings([], [0]) == () and not Rings([], [0])
    with pytest.raises(ValueError):
        r.atoms[0] = 9  # read-only
    with pytest.raises(IndexError):
        r[3]
    with pytest.raises(MotifgramError, match="offsets"):
        Rings([1, 2], [0, 3])
    g = _SW_GRAPH
    assert isinstance(g.rings, Rings) and g.rings.to_tuples() == tuple(g.rings)
    assert AtomGraph(g.xy, g.tokens, g.bonds, g.rings.to_tuples(), g.image_shape).rings == g.rings


@pytest.mark.parametrize("seed", seeds(0, 1))
def test_stray_atoms_in_a_glass_make_no_triangles(seed):
    # a glass has no lattice, so the ordered-atom filter keeps its rings; a stray atom (contamination, a noise
    # peak) inside a ring bonds to its atoms in a fan of triangles whose 60-degree corners a network of 120-degree
    # angles does not have. Seeds 0-2, 1000, 1001 with six strays: 25-35 triangles before the corner rule, none now
    sim = simulate("crn", size=192, seed=seed)
    xy = np.asarray(sim.truth.xy, dtype=np.float64)
    plain = build_graph(xy, image_shape=(192, 192))
    inner = [r for r, b in zip(plain.rings, plain.ring_border) if not b]
    picked = [inner[i] for i in np.random.default_rng(seed).choice(len(inner), 6, replace=False)]
    strays = np.array([xy[list(r)].mean(axis=0) for r in picked])
    g = build_graph(np.vstack([xy, strays]), image_shape=(192, 192))
    check_graph(g)
    assert 3 not in g.ring_sizes.tolist()
    # the strays' rings are lost (seed 1: one of their neighbours too), the others kept
    assert len(set(canonical(plain.rings)) - set(canonical(g.rings))) <= len(picked) + 1
