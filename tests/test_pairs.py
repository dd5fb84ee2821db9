"""Dumbbell sites (engine/pairs.py, ``detect.spots: dumbbells``).

Known truth: a centred rectangular lattice of dumbbells (Si [110] in projection, scaled), some pairs
replaced by one spot at their centre (unresolved), some with a dim extra detection beside a column, position
noise and a random rotation; the sites are checked against the pair centres. Then lattices without dumbbells
(the simulator's graphene and MoS2 truths) give no pairs, the option runs end to end on a rendered dumbbell
image, and the headline numbers of the real Si [110] run (skipped without ../shared/data).
"""

import math
from collections import Counter

import numpy as np
import pytest
import yaml
from scipy.spatial import cKDTree

from motifgram.engine.errors import MotifgramError
from motifgram.engine.io import Micrograph
from motifgram.engine.pairs import PAIR_FRACTION, dumbbell_sites
from motifgram.engine.pairs import atoms_at_dumbbells
from motifgram.engine.stages import analyse_micrograph
from motifgram.engine.simulate import simulate
from motifgram.engine.spec import load_spec
from conftest import SPECS, needs_data, seed, seeds
from test_dual import check_parse_reuses_spots, same_points

DUMBBELL = 8.0  # column spacing in a dumbbell, px (Si: 0.136 nm)
CELL = 4 * DUMBBELL  # cubic lattice constant a: the dumbbell is a/4 long along [001]


def dumbbell_lattice(*, size, dumbbell=DUMBBELL, unresolved=0.2, extra=0.05, noise=0.3, angle=0.0, seed=0):
    """Columns of Si [110] in projection (scaled so the dumbbell is ``dumbbell`` px), inside a square of ``size``.

    Dumbbell centres on the centred rectangular lattice a/sqrt(2) x a, each dumbbell two columns along the
    a axis, the whole rotated by ``angle`` (rad) about the square's centre. A fraction ``unresolved`` of the
    dumbbells is one spot at the centre (intensity 1.2), a fraction ``extra`` gets a dim noise peak (intensity
    0.3) 0.45 dumbbell lengths beside one column; columns have intensity 1 +- 0.1; Gaussian position noise of
    ``noise`` px. Returns (spots (N, 2), intensity (N,), centres (D, 2), resolved (D,) bool).
    """
    rng = np.random.default_rng(seed)
    a = dumbbell * 4
    n = int(size / a * 2) + 4
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    corners = np.stack([i * a / math.sqrt(2), j * a], axis=-1).reshape(-1, 2)
    centres = np.concatenate([corners, corners + [a / (2 * math.sqrt(2)), a / 2]])
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])
    axis = np.array([0.0, 1.0]) @ rot
    centres = centres @ rot + size / 2
    keep = np.all((centres > dumbbell) & (centres < size - 1 - dumbbell), axis=1)
    centres = centres[keep]
    resolved = rng.random(len(centres)) >= unresolved
    columns = np.concatenate([centres[resolved] - axis * dumbbell / 2, centres[resolved] + axis * dumbbell / 2])
    intensity = [1 + 0.1 * rng.standard_normal(len(columns)), np.full(int((~resolved).sum()), 1.2)]
    spots = [columns, centres[~resolved]]
    with_extra = np.flatnonzero(resolved)[rng.random(int(resolved.sum())) < extra]
    if len(with_extra):
        side = np.array([axis[1], -axis[0]]) * 0.45 * dumbbell
        spots.append(centres[with_extra] + axis * dumbbell / 2 + side)
        intensity.append(np.full(len(with_extra), 0.3))
    spots = np.concatenate(spots) + rng.normal(scale=noise, size=(sum(map(len, spots)), 2))
    return spots, np.concatenate(intensity), centres, resolved


# ---- known truth: a lattice of dumbbells ---------------------------------------------------------------------------

def measure_sites(seed):
    """Dumbbell sites of a noisy dumbbell lattice at a random angle against the true centres: recall, precision
    (within a quarter dumbbell), RMSE (px)."""
    angle = np.random.default_rng(100 + seed).uniform(0, 2 * math.pi)
    spots, intensity, centres, resolved = dumbbell_lattice(size=300, angle=angle, seed=seed)
    sites = dumbbell_sites(spots, intensity)
    d, j = cKDTree(sites.xy).query(centres)
    match = d < 0.25 * DUMBBELL
    precision = np.mean(cKDTree(centres).query(sites.xy)[0] < 0.25 * DUMBBELL)
    return {"recall": match.mean(), "precision": precision, "rmse": math.sqrt(np.mean(d[match] ** 2))}, (
        spots, intensity, centres, resolved, sites, j)


@pytest.mark.parametrize("seed", seeds(0, 1, 2, 3))
def test_sites_recover_the_dumbbell_centres(seed):
    m, (spots, intensity, centres, resolved, sites, j) = measure_sites(seed)
    recall, precision, rmse = m["recall"], m["precision"], m["rmse"]
    # measured (seeds 0-9, ~150 dumbbells, noise 0.3 px per axis): recall 1, precision 1, RMSE 0.308-0.343 px, as
    # expected: a pair's centre is off by 0.3 px (2-D rms of the mean of two columns), a single spot by 0.42 px,
    # 80 % pairs give 0.33 px
    assert recall == 1.0 and precision == 1.0
    assert len(sites.xy) == len(centres)
    assert rmse < 0.36
    # resolved dumbbells are pairs, unresolved ones single spots; extra peaks join their dumbbell
    assert np.array_equal(sites.paired[j], resolved)
    assert sites.spots[sites.paired].min() >= 0 and np.all(sites.spots[~sites.paired, 1] == -1)
    assert np.array_equal(np.sort(np.unique(sites.site)), np.arange(len(sites.xy)))
    assert np.all(intensity[sites.spots[sites.paired]].min(axis=1) > 0.5)  # never the dim extra peak
    np.testing.assert_allclose(sites.intensity[sites.paired], intensity[sites.spots[sites.paired]].mean(axis=1))
    # the pair cut falls in the gap: the partner at 8 px, the next column at sqrt(3) x 8 px
    assert sites.scale_px == pytest.approx(math.sqrt(3) * DUMBBELL, rel=0.05)


@pytest.mark.parametrize("angle", [0.0, 0.4, math.pi / 2, 2.5])
def test_rotation_and_permutation_invariance(angle):
    rng = np.random.default_rng(seed(5))
    spots, intensity, _, _ = dumbbell_lattice(size=300, angle=0.3, seed=seed(9))
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])
    ref = dumbbell_sites(spots, intensity)
    perm = rng.permutation(len(spots))
    turned = dumbbell_sites(((spots - 150) @ rot + 150)[perm], intensity[perm])
    assert same_points((ref.xy - 150) @ rot + 150, turned.xy, tol=1e-9)
    assert Counter(ref.paired.tolist()) == Counter(turned.paired.tolist())
    # the same spots make the same site
    back = np.empty_like(perm)
    back[perm] = np.arange(len(perm))
    _, k = cKDTree(turned.xy).query((ref.xy - 150) @ rot + 150)
    assert np.array_equal(k[ref.site], turned.site[back])


@pytest.mark.parametrize("kind, options", [("graphene", {}), ("graphene", {"stone_wales_density": 0.02,
                                                                            "vacancy_density": 0.02}),
                                           ("mos2", {}), ("perovskite", {})])
def test_no_pairs_without_dumbbells(kind, options):
    truth = simulate(kind, size=256, seed=seed(1), dose=None, **options).truth
    sites = dumbbell_sites(truth.xy, np.ones(len(truth.xy)))
    assert not sites.paired.any()
    assert same_points(sites.xy, truth.xy, tol=1e-9)
    assert np.array_equal(sites.xy[sites.site], truth.xy)  # each spot is its own site
    # the nearest neighbour is far above the cut (measured: >= 0.95 x the second-nearest for these lattices)
    d, _ = cKDTree(truth.xy).query(truth.xy, k=3)
    assert np.min(d[:, 1] / np.median(d[:, 2])) > PAIR_FRACTION + 0.15


def test_degenerate_and_bad_input():
    for n in (0, 1, 2):
        xy = np.arange(2.0 * n).reshape(n, 2) * 3
        sites = dumbbell_sites(xy, np.ones(n))
        assert sites.xy.shape == (n, 2) and not sites.paired.any() and sites.site.shape == (n,)
    with pytest.raises(MotifgramError, match="pair_fraction"):
        dumbbell_sites(np.zeros((3, 2)), np.ones(3), pair_fraction=1.0)
    with pytest.raises(MotifgramError, match="intensity"):
        dumbbell_sites(np.zeros((3, 2)), np.ones(4))
    with pytest.raises(MotifgramError, match="xy"):
        dumbbell_sites(np.full((3, 2), np.nan), np.ones(3))


# ---- end to end: a rendered dumbbell image --------------------------------------------------------------------------

RENDER_SIZE = 256
RENDER_DUMBBELL = 10.0


def render(spots, amplitude, sigma, *, size, seed):
    """Gaussian spots (``sigma`` (N,) px) on a background of 0.2, Poisson and read noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.full((size, size), 0.2)
    for (x, y), a, s in zip(spots, amplitude, sigma):
        r = int(math.ceil(4 * s))
        r0, r1 = max(0, int(y) - r), min(size, int(y) + r + 2)
        c0, c1 = max(0, int(x) - r), min(size, int(x) + r + 2)
        image[r0:r1, c0:c1] += a * np.exp(-((xx[r0:r1, c0:c1] - x) ** 2 + (yy[r0:r1, c0:c1] - y) ** 2) / (2 * s**2))
    rng = np.random.default_rng(seed)
    return (rng.poisson(image * 300.0) / 300.0 + rng.normal(scale=0.02, size=image.shape)).astype(np.float32)


def rendered_dumbbells(seed):
    """A rendered dumbbell lattice (a fifth of the dumbbells one round blob), its truth and its analysis."""
    spots, _, centres, resolved = dumbbell_lattice(size=RENDER_SIZE, dumbbell=RENDER_DUMBBELL, extra=0.0, noise=0.0,
                                                   angle=0.35, seed=seed)
    n_columns = 2 * int(resolved.sum())
    amplitude = np.where(np.arange(len(spots)) < n_columns, 1.0, 1.4)
    sigma = np.where(np.arange(len(spots)) < n_columns, 0.22 * RENDER_DUMBBELL, 0.4 * RENDER_DUMBBELL)
    image = render(spots, amplitude, sigma, size=RENDER_SIZE, seed=seed + 2)
    spec = load_spec({"inputs": [{"simulate": {"kind": "graphene"}}], "detect": {"spots": "dumbbells"}})
    micrograph = Micrograph(image=image, pixel_size_nm=0.136 / RENDER_DUMBBELL, id="si", group="g", source="test")
    return image, centres, resolved, analyse_micrograph(micrograph, spec)


@pytest.fixture(scope="module")
def dumbbell_image():
    return rendered_dumbbells(seed(2))


def measure_rendered(seed):
    """Sites of the rendered lattice against the dumbbell centres: one per dumbbell, largest error and RMSE (px),
    and its graph's rings (all triangles, their count)."""
    _, centres, _, analysis = rendered_dumbbells(seed)
    d, j = cKDTree(analysis.atoms.xy).query(centres)
    return {"one_per_dumbbell": float(len(analysis.atoms.xy) == len(centres) == len(np.unique(j))),
            "largest": float(d.max()), "rmse": float(np.sqrt(np.mean(d**2))),
            "triangles_only": float(set(analysis.graph.ring_sizes.tolist()) == {3}),
            "rings": len(analysis.graph.rings)}


def test_pipeline_hook(dumbbell_image):
    image, centres, resolved, analysis = dumbbell_image
    xy = analysis.atoms.xy
    # one site per dumbbell, resolved or not (seeds 0-9: 97 of 97, RMSE 0.049-0.071 px, largest error 0.11-0.39 px)
    d, j = cKDTree(xy).query(centres)
    assert len(xy) == len(centres) and len(np.unique(j)) == len(centres)
    assert d.max() < 0.6 and np.sqrt(np.mean(d**2)) < 0.15
    # the dumbbell lattice is one regular graph: every ring away from the border a triangle (seeds 0-9: 88)
    assert set(analysis.graph.ring_sizes.tolist()) == {3} and len(analysis.graph.rings) >= 80
    assert analysis.atoms.nn_distance_px == pytest.approx(math.sqrt(3 / 8) * 4 * RENDER_DUMBBELL, rel=0.03)
    # the columns the sites come from: the same detection with spots: atoms
    spec = load_spec({"inputs": [{"simulate": {"kind": "graphene"}}]})
    micrograph = Micrograph(image=image, pixel_size_nm=0.0136, id="si", group="g", source="test")
    columns = analyse_micrograph(micrograph, spec).atoms
    sites_atoms, sites = atoms_at_dumbbells(columns)
    assert np.array_equal(sites_atoms.xy, xy)
    assert np.array_equal(sites.paired[j], resolved)  # the round blobs stay single spots
    np.testing.assert_allclose(analysis.atoms.intensity, sites.intensity, rtol=1e-6)
    assert set(analysis.graph.ring_sizes.tolist()) != set(analyse_micrograph(micrograph, spec).graph.ring_sizes.tolist())


def test_parse_reuses_the_runs_spots_option(dumbbell_image, tmp_path):
    """``motifgram parse`` with a grammar learned on dumbbell sites tokenises the same sites, not the columns."""
    image, _, _, analysis = dumbbell_image
    check_parse_reuses_spots(image, "dumbbells", analysis.atoms.xy, tmp_path, pixel_size_nm=0.0136)


# ---- the real Si [110] (AtomSegNet, MIT): specs/si110_dumbbells.yaml ----------------------------------------------

from test_real_data import grammar_of, read_run, run_spec

real_data = needs_data


@pytest.fixture(scope="module")
def si_dumbbells(tmp_path_factory):
    from motifgram.engine.stages import load_input

    raw = yaml.safe_load((SPECS / "si110_dumbbells.yaml").read_text())
    run_dir = run_spec("si110_dumbbells", seed(0), tmp_path_factory.mktemp("si110_dumbbells"))
    columns_spec = load_spec({**raw, "detect": {"spots": "atoms"}}, base_dir=SPECS)
    columns = analyse_micrograph(load_input(columns_spec.inputs[0]), columns_spec).atoms
    return run_dir, columns


@real_data
def test_si110_dumbbell_sites(si_dumbbells):
    run_dir, columns = si_dumbbells
    xy, *_ = read_run(run_dir)
    _, sites = atoms_at_dumbbells(columns)
    assert same_points(xy, sites.xy, tol=1e-3)
    # measured (detection does not depend on the seed): 397 columns -> 202 sites: 189 pairs (6 of them with an
    # extra, dim detection beside the dumbbell) and 13 single spots (unresolved dumbbells, or columns whose partner
    # is outside the image); the pair cut at 26.9 px. The test pinned these four counts; it now asks that nearly
    # every site be a resolved pair and that few columns be extra detections.
    extra = len(columns) - 2 * int(sites.paired.sum()) - int((~sites.paired).sum())
    assert sites.paired.mean() > 0.85 and extra <= 0.03 * len(columns)
    assert len(sites.xy) == pytest.approx(len(columns) / 2, rel=0.1)
    assert sites.scale_px == pytest.approx(26.9, abs=0.5)


@real_data
def test_si110_dumbbell_lattice_is_one_graph(si_dumbbells):
    run_dir, _ = si_dumbbells
    _, token, _, _, rings = read_run(run_dir)
    # every ring is a triangle of dumbbells (measured: 246, the centred rectangular lattice)
    sizes = Counter(size for size, _ in rings)
    assert set(sizes) == {3} and sizes[3] >= 200
    g = grammar_of(run_dir)
    ring_size = {r.name: r.size for r in g.rings}
    largest = max(g.domains, key=lambda d: d.size)
    assert (ring_size[largest.symbol], largest.count) == (3, 1) and largest.size >= 200


@real_data
def test_si110_dumbbells_one_domain(si_dumbbells):
    # one token: BIC's second component of 8 sites was rejected (fewer than D + 1 members; engine/mixture.py);
    # one domain of triangles on every spec seed 0-7
    g = grammar_of(si_dumbbells[0])
    ring_size = {r.name: r.size for r in g.rings}
    assert [(ring_size.get(d.symbol), d.count) for d in g.domains] == [(3, 1)]


def measure_si110_dumbbells(run_dir):
    """The real Si [110] as dumbbell sites: ring sizes, token count and the grammar's domains (ring size, count)."""
    _, token, _, _, rings = read_run(run_dir)
    g = grammar_of(run_dir)
    ring_size = {r.name: r.size for r in g.rings}
    return {"triangles": sum(size == 3 for size, _ in rings), "other_rings": sum(size != 3 for size, _ in rings),
            "tokens": len(set(token)), "domains": len(g.domains),
            "one_triangle_domain": float([(ring_size.get(d.symbol), d.count) for d in g.domains] == [(3, 1)])}
