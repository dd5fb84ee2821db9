"""Calibrate motifgram's imaging model (engine/imaging.py) against abTEM multislice.

Run with the peer venv (abTEM is benchmark-only, never a motifgram dependency):

    .bench/venv/bin/python benchmarks/imaging_calibration.py [--out benchmarks/imaging_calibration.json]

Measures (60 kV, 31.5 mrad probe semi-angle, MADF 54-200 mrad, as on the Nion instruments that record
low-dose graphene):
1. the probe's intensity profile and a two-Gaussian fit, core + broad tail: the tail/core integral ratio and
   the tail/core sigma ratio (PROBE_CALIBRATION), for an ideal probe and one with a small residual
   aberration (C5 and defocus spread as a finite-source blur are not modelled);
2. the Z-contrast exponent: the scattered intensity of single C, Si, S, Se, Mo atoms integrated over a scan
   (a fit of I ~ Z**n), for a MADF (54-200 mrad) and a HAADF (80-200 mrad) detector.
Takes ~20 s on 2 cores.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

ROOT = Path(__file__).resolve().parent.parent


def probe_profile(abtem, energy, semiangle, c5=0.0):
    probe = abtem.Probe(energy=energy, semiangle_cutoff=semiangle, extent=20.0, gpts=1024, C5=c5)
    intensity = np.asarray(probe.build().intensity().compute().array)
    intensity = intensity / intensity.sum()
    n = intensity.shape[0]
    d = 20.0 / n
    yy, xx = np.indices(intensity.shape)
    cy, cx = np.unravel_index(np.argmax(intensity), intensity.shape)
    r = np.hypot(yy - cy, xx - cx) * d  # angstrom
    bins = np.arange(0, 8.0, d)
    idx = np.digitize(r.ravel(), bins)
    prof = np.bincount(idx, weights=intensity.ravel(), minlength=len(bins) + 1)[1:len(bins)]
    cnt = np.bincount(idx, minlength=len(bins) + 1)[1:len(bins)]
    rc = 0.5 * (bins[1:] + bins[:-1])
    prof = prof / np.maximum(cnt, 1)

    def model(rr, a, s, f, t):
        return a * (np.exp(-rr**2 / (2 * s * s)) + f * (s * s) / (t * t) * np.exp(-rr**2 / (2 * t * t)))

    p0 = (prof[0], 0.4, 0.2, 1.5)
    w = rc  # weight by the annulus area: the fit matches the intensity, not the peak alone
    popt, _ = curve_fit(model, rc, prof, p0=p0, sigma=1 / np.sqrt(w + 1e-3), bounds=([0, 0.05, 0, 0.2], [np.inf, 2, 5, 8]))
    a, s, f, t = popt
    core_int = 2 * np.pi * s * s * a
    outside_core = float(intensity[r > 3 * s].sum())
    return {"energy_eV": energy, "semiangle_mrad": semiangle, "C5_A": c5, "core_sigma_A": float(s),
            "tail_sigma_A": float(t), "tail_fraction": float(f), "tail_sigma_ratio": float(t / s),
            "intensity_beyond_3_core_sigma": outside_core, "core_integral": float(core_int)}


def z_exponent(abtem, energy, semiangle, inner, outer):
    from ase import Atoms

    out = {}
    for sym in ("C", "Si", "S", "Se", "Mo"):
        atoms = Atoms(sym, positions=[(4.0, 4.0, 2.0)], cell=(8.0, 8.0, 4.0))
        pot = abtem.Potential(atoms, sampling=0.04, slice_thickness=1.0, projection="infinite")
        probe = abtem.Probe(energy=energy, semiangle_cutoff=semiangle)
        det = abtem.AnnularDetector(inner=inner, outer=outer)
        scan = abtem.GridScan(start=(3.0, 3.0), end=(5.0, 5.0), sampling=0.2)
        m = probe.scan(pot, scan=scan, detectors=det).compute()
        arr = np.asarray(m.array)
        out[sym] = {"sum": float(arr.sum()), "peak": float(arr.max())}
    z = {"C": 6, "Si": 14, "S": 16, "Se": 34, "Mo": 42}
    names = list(out)
    zz = np.log([z[k] for k in names])
    for key in ("sum", "peak"):
        n, _ = np.polyfit(zz, np.log([out[k][key] for k in names]), 1)
        out[f"exponent_{key}"] = float(n)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "imaging_calibration.json"))
    args = parser.parse_args()
    import abtem

    abtem.config.set({"device": "cpu", "num_workers": 2})
    start = time.perf_counter()
    result = {"abtem": abtem.__version__}
    result["probe_ideal"] = probe_profile(abtem, 60e3, 31.5)
    result["probe_c5"] = probe_profile(abtem, 60e3, 31.5, c5=5e7)  # 5 mm residual C5
    result["z_contrast_madf"] = z_exponent(abtem, 60e3, 31.5, 54, 200)
    result["z_contrast_haadf"] = z_exponent(abtem, 60e3, 31.5, 80, 200)
    result["seconds"] = time.perf_counter() - start
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
