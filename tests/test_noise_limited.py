"""Noise-limited micrographs: low-dose, finely sampled graphene where each pixel is noisier than the lattice.

The simulations use a broad probe (sigma a third of the bond, as a 60 kV probe on a finely sampled scan) at one
count per unit column peak with read noise: the regime of real low-dose MAADF graphene, which the project's
other simulations (8 px bonds, >= 10 counts) never reach. The real images of that regime, AtomNet's public
graphene scans (Nion UltraSTEM, 60 kV), carry no licence and are not in ``../shared/data``, so CI cannot read
them: ``benchmarks/real_low_dose.py --check`` holds them to the same floor against AtomNet's own detections.
"""

import logging

import numpy as np
import pytest
from scipy.spatial import cKDTree

from conftest import seeds
from motifgram.engine.detect import detect_atoms
from motifgram.engine.period import estimate_lattice_period
from motifgram.engine.simulate import simulate

BOND_PX = 18.0
LOW_DOSE = {  # tests/test_low_dose.py's realistic imaging, with a broad probe, 1 count and strong read noise
    "probe_tail": 0.2, "thickness_variation": 0.05, "drift": 1.5, "row_jitter": 0.15, "contamination": 0.08,
    "contamination_contrast": 0.5, "background_gradient": 0.2, "background_blobs": 0.2, "scan_noise": 0.05,
    "dose": 1.0, "sigma_px": BOND_PX / 3, "read_noise": 0.3,
}


def matched(found, truth, tolerance):
    """(recall, precision): the share of ``truth`` with a found point within ``tolerance`` px, and vice versa."""
    recall = np.mean(cKDTree(found).query(truth)[0] < tolerance)
    precision = np.mean(cKDTree(truth).query(found)[0] < tolerance)
    return float(recall), float(precision)


def test_low_dose_graphene_columns_not_noise_peaks():
    # before the noise-limited first search (seeds 0, 1): nearest-neighbour guess 10.8-11.2 px for an 18 px
    # bond, 822-1353 atoms for 567-569 columns, precision 0.40-0.47; after: guess 17.0-17.1 px, precision
    # 0.915-0.920, recall 0.89-0.93 (seed 1000 passes too; one seed per seed set keeps the test at ~10 s)
    for s in seeds(0):
        sim = simulate("graphene", size=512, seed=s, pixel_size_nm=0.142 / BOND_PX, **LOW_DOSE)
        atoms = detect_atoms(sim.image)
        truth = sim.imaging.xy
        inner = ((truth >= 0.6 * BOND_PX) & (truth <= 511 - 0.6 * BOND_PX)).all(axis=1)
        recall, precision = matched(atoms.xy, truth[inner], 0.3 * BOND_PX)
        assert atoms.nn_distance_px == pytest.approx(BOND_PX, rel=0.08), s
        assert precision >= 0.85 and recall >= 0.8, (s, recall, precision)



def test_period_of_a_few_cells_under_heavy_dopants(caplog):
    # 256 px of graphene with an 18 px bond (about nine {100} periods across, as AtomNet's 512 px Si dimer and
    # trimer scans with a 37 px bond) at 1 count, with three Si dopants: their bright blobs spread power over the
    # low frequencies where the lattice's spots lie. Seeds 0-11 and 1000-1011: before the outlier-clipped closing
    # triple of engine/period.py, 12 of 24 were "amorphous" (the diffuse ring, 1.01-1.08x) or had no lattice
    # (seeds 0, 1, 2 among them); now all 0.984-1.011x the {100} spacing
    for s in seeds(0, 1, 2):
        sim = simulate("graphene", size=256, seed=s, pixel_size_nm=0.142 / BOND_PX, dopant_density=0.02, **LOW_DOSE)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="motifgram.engine"):
            period = estimate_lattice_period(sim.image)
        assert "amorphous" not in caplog.text, s
        assert period == pytest.approx(1.5 * BOND_PX, rel=0.03), s
