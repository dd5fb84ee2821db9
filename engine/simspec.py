"""What each kind of synthetic micrograph accepts: its options, their defaults and their checks.

Apart from :mod:`motifgram.engine.simulate` (which renders the images and imports SciPy) so that checking
a spec (``motifgram validate``) knows every simulator option without loading the simulator: a spec that
``validate`` accepts is one that ``run`` accepts.
"""

import difflib
import math
import numbers

from motifgram.engine.errors import SpecError

__all__ = ["KINDS", "REALISTIC_OPTIONS", "simulate_options", "check_simulation"]

KINDS = ("graphene", "graphene_gb", "mos2", "perovskite", "cairo", "crn", "tbl_mos2")

A_CC_NM = 0.142  # graphene C–C bond length
MOS2_MO_S_NM = 0.1825  # projected Mo–S2 column distance (lattice constant sqrt(3) x 0.1825 = 0.316 nm)
PEROVSKITE_A_NM = 0.39  # SrTiO3-like cubic lattice constant
CAIRO_EDGE_NM = 0.2  # nominal edge length of the model Cairo tiling
NN_PX = 8.0  # nearest-neighbour distance (px) at every kind's default pixel size but tbl_mos2's
TBL_NN_PX = 6.0  # tbl_mos2: Mo–S2 distance (px) at its default pixel size, so 1024 px hold 3.4 moire periods at 2 deg

#: Options of the realistic imaging model (:mod:`motifgram.engine.imaging`) with the values that switch each
#: effect off (the defaults).
REALISTIC_OPTIONS = {
    "probe_tail": 0.0,  # integral of the probe's broad tail relative to its core's
    "probe_tail_sigma_px": None,  # the tail's Gaussian sigma (px); None: PROBE_CALIBRATION's ratio x sigma_px
    "thickness_variation": 0.0,  # relative std of a per-column amplitude factor (log-normal, mean 1)
    "drift": 0.0,  # largest slow-scan drift displacement (px)
    "row_jitter": 0.0,  # std of a white per-row x shift (px)
    "contamination": 0.0,  # fraction of the image covered by amorphous contamination, [0, 1)
    "contamination_contrast": 0.5,  # amplitude of a contamination atom, in unit column amplitudes
    "background_gradient": 0.0,  # rise of a linear background ramp across the image, unit amplitudes
    "background_blobs": 0.0,  # peak amplitude of broad background blobs, unit amplitudes
}

_IMAGING_OPTIONS = {
    "sigma_px": None,  # Gaussian column width (px); None: 0.25 x nearest-neighbour distance
    "background": 0.2,  # mean of the smooth background, in units of the unit column amplitude
    "dose": 100.0,  # counts per unit amplitude (Poisson); None: noiseless
    "read_noise": 0.02,  # std of Gaussian read noise, in units of the unit amplitude
    "scan_distortion": 0.0,  # amplitude (px) of the row-wise x shift (sinusoidal drift + jitter)
    "scan_noise": 0.0,  # std of the fast-scan (row) noise, in units of the unit amplitude
    "scan_noise_length": 4.0,  # its correlation length along each row (px); rows are independent
    **REALISTIC_OPTIONS,  # probe tail, thickness, drift, row jitter, contamination, background ramp and blobs
}
_KIND_OPTIONS = {
    "graphene": {
        "pixel_size_nm": A_CC_NM / NN_PX,
        "rotation": None,  # lattice rotation (rad); None: uniform random from the seed
        "stone_wales_density": 0.002,  # Stone–Wales defects per atom
        "vacancy_density": 0.001,  # reconstructed (5-9) single vacancies per atom
        "divacancy_density": 0.0,  # reconstructed (5-8-5) divacancies per atom
        "dislocation_density": 0.0,  # dislocation dipoles per atom: two 5-7 cores each, hexagons between them
        "dopant_density": 0.0,  # substitutional Si atoms per atom (label "Si", (14/6)**1.7 = 4.2x brighter)
    },
    "graphene_gb": {
        "pixel_size_nm": A_CC_NM / NN_PX,
        "rotation": None,  # rotation of grain 1 (rad); None: random
        "misorientation": math.radians(21.7868),  # grain 2 minus grain 1 (rad); default: Sigma-7 CSL
        "boundary_angle": None,  # direction of the boundary line through the centre (rad); None: random
    },
    "mos2": {
        "pixel_size_nm": MOS2_MO_S_NM / NN_PX,
        "rotation": None,
        "s_vacancy_density": 0.05,  # fraction of S2 columns missing one S ("S1")
        "se_fraction": 0.10,  # fraction of the S atoms of intact columns replaced by Se ("SSe", "Se2")
        "se_cluster_density": 0.0,  # compact clusters of Se2 columns per atom
        "se_cluster_size": 3,  # columns per Se cluster (an integer >= 2)
        "se2_fraction": 0.0,  # this fraction of the chalcogen sites of the image area become Se2 (one count per size)
        "se2_superlattice": 1,  # m > 1: those Se2 columns only on a superlattice of index m (ordered)
        "se2_cluster_size": 1,  # those Se2 columns in compact clusters of this many, not touching (1: random)
        "s_vacancy_line_density": 0.0,  # lines of S1 columns along a lattice direction per atom
        "s_vacancy_line_length": 4,  # columns per S-vacancy line (an integer >= 2)
    },
    "perovskite": {
        "pixel_size_nm": PEROVSKITE_A_NM / 2 / NN_PX,
        "rotation": None,
        "o_intensity": 0.25,  # O column amplitude relative to A (HAADF Z**1.7 would give 0.07)
    },
    "cairo": {
        "pixel_size_nm": CAIRO_EDGE_NM / NN_PX,
        "rotation": None,
    },
    "crn": {
        "pixel_size_nm": A_CC_NM / NN_PX,
        "regularity": 0.9,  # blue-noise repulsion radius / (sqrt(3) a_CC), in (0, 1): lower is more disordered
    },
    "tbl_mos2": {
        "pixel_size_nm": MOS2_MO_S_NM / TBL_NN_PX,
        "rotation": None,  # rotation of layer 1 (rad); None: random
        "twist": 4.0,  # rotation of layer 2 relative to 2H (AA') stacking, in DEGREES, about a random point
    },
}


def simulate_options(kind):
    """The options of ``kind`` with their defaults.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.

    Returns
    -------
    dict
        ``{name: default}``; ``None`` means "automatic" (documented per option in the module source:
        ``rotation`` random from the seed, ``sigma_px`` 0.25 x the nearest-neighbour distance,
        ``dose`` noiseless, ``boundary_angle`` random).
    """
    if kind not in _KIND_OPTIONS:
        raise SpecError([("simulate.kind", f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")])
    return {**_KIND_OPTIONS[kind], **_IMAGING_OPTIONS}


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


_CHECKS = {
    # name: (accepts None, lower bound, lower inclusive, upper bound exclusive, description)
    "pixel_size_nm": (False, 0.0, False, None, "a number > 0"),
    "rotation": (True, None, True, None, "a number (radians) or null"),
    "boundary_angle": (True, None, True, None, "a number (radians) or null"),
    "misorientation": (False, None, True, None, "a number (radians)"),
    "stone_wales_density": (False, 0.0, True, 0.1, "a number in [0, 0.1)"),
    "vacancy_density": (False, 0.0, True, 0.1, "a number in [0, 0.1)"),
    "divacancy_density": (False, 0.0, True, 0.1, "a number in [0, 0.1)"),
    "dislocation_density": (False, 0.0, True, 0.1, "a number in [0, 0.1)"),
    "dopant_density": (False, 0.0, True, 0.1, "a number in [0, 0.1)"),
    "s_vacancy_density": (False, 0.0, True, 1.0, "a number in [0, 1)"),
    "se_fraction": (False, 0.0, True, 1.0000001, "a number in [0, 1]"),
    "se_cluster_density": (False, 0.0, True, 0.1, "a number in [0, 0.1)"),
    "se_cluster_size": (False, 2.0, True, 13.0, "an integer in [2, 12]"),
    "se2_fraction": (False, 0.0, True, 1.0000001, "a number in [0, 1]"),
    "se2_superlattice": (False, 1.0, True, 101.0, "an integer in [1, 100]"),
    "se2_cluster_size": (False, 1.0, True, 101.0, "an integer in [1, 100]"),
    "s_vacancy_line_density": (False, 0.0, True, 0.1, "a number in [0, 0.1)"),
    "s_vacancy_line_length": (False, 2.0, True, 13.0, "an integer in [2, 12]"),
    "o_intensity": (False, 0.0, True, None, "a number >= 0"),
    "twist": (False, -60.0, False, 60.0, "a number of degrees in (-60, 60)"),
    "regularity": (False, 0.0, False, 1.0, "a number in (0, 1)"),
    "sigma_px": (True, 0.0, False, None, "a number > 0 (px) or null"),
    "background": (False, 0.0, True, None, "a number >= 0"),
    "dose": (True, 0.0, False, None, "a number > 0 (counts per unit amplitude) or null"),
    "read_noise": (False, 0.0, True, None, "a number >= 0"),
    "scan_distortion": (False, 0.0, True, None, "a number >= 0 (px)"),
    "scan_noise": (False, 0.0, True, None, "a number >= 0"),
    "scan_noise_length": (False, 0.0, False, None, "a number > 0 (px)"),
    "probe_tail": (False, 0.0, True, None, "a number >= 0 (tail integral / core integral)"),
    "probe_tail_sigma_px": (True, 0.0, False, None, "a number > 0 (px) or null"),
    "thickness_variation": (False, 0.0, True, 1.0, "a number in [0, 1)"),
    "drift": (False, 0.0, True, None, "a number >= 0 (px)"),
    "row_jitter": (False, 0.0, True, None, "a number >= 0 (px)"),
    "contamination": (False, 0.0, True, 1.0, "a number in [0, 1) (area fraction)"),
    "contamination_contrast": (False, 0.0, True, None, "a number >= 0"),
    "background_gradient": (False, 0.0, True, None, "a number >= 0"),
    "background_blobs": (False, 0.0, True, None, "a number >= 0"),
}


_INTEGER_OPTIONS = frozenset({"se_cluster_size", "se2_superlattice", "se2_cluster_size", "s_vacancy_line_length"})


def check_simulation(kind, size, seed, options, *, path="simulate"):
    """Check a simulation's arguments and fill in the defaults of its options.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    size, seed : int
        Image side (px, >= 64) and seed (>= 0).
    options : mapping
        Kind options by name (see :func:`simulate_options`); ``None`` asks for the automatic value where an
        option has one.
    path : str
        YAML path of the simulation, prefixed to every problem (``inputs[0].simulate`` in a spec).

    Returns
    -------
    options : dict or None
        Every option of ``kind`` with the value to use (floats; None for automatic); None when there are
        problems.
    problems : list of (str, str)
        ``(yaml_path, message)`` pairs, e.g. ``("simulate.sise", "unknown option 'sise' ...")``; empty when
        all is well.
    """
    if kind not in _KIND_OPTIONS:
        close = difflib.get_close_matches(str(kind), KINDS, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        return None, [(f"{path}.kind", f"unknown kind {kind!r}; valid: {', '.join(KINDS)}{hint}")]
    problems = []
    if not _is_int(size) or size < 64:
        problems.append((f"{path}.size", f"expected an int >= 64, got {size!r}"))
    if not _is_int(seed) or seed < 0:
        problems.append((f"{path}.seed", f"expected an int >= 0, got {seed!r}"))
    opts = simulate_options(kind)
    for name, value in options.items():
        if name not in opts:
            close = difflib.get_close_matches(name, ["size", "seed", *opts], n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            problems.append(
                (f"{path}.{name}", f"unknown option {name!r} for kind {kind!r}; {hint}valid: size, seed, "
                                   f"{', '.join(opts)}")
            )
            continue
        nullable, low, low_inclusive, high, expected = _CHECKS[name]
        ok = (value is None and nullable) or (
            _is_number(value)
            and (low is None or value > low or (low_inclusive and value == low))
            and (high is None or value < high)
            and (name not in _INTEGER_OPTIONS or float(value).is_integer())
        )
        if not ok:
            problems.append((f"{path}.{name}", f"expected {expected}, got {value!r}"))
        else:
            opts[name] = None if value is None else float(value)
    return (None, problems) if problems else (opts, [])
