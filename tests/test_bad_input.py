"""Bad input of every kind gives exit code 2 and a message naming the problem — never a traceback."""

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motifgram.engine.cli import main
from conftest import DATA, needs_data, seed

REAL_FILES = sorted(
    p.relative_to(DATA).as_posix()
    for p in DATA.rglob("*")
    if p.suffix.lower() in (".dm3", ".tif", ".png", ".hspy", ".hdf5")
) if DATA.is_dir() else []


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_on_file(tmp_path, capsys, image_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"inputs": [{"path": str(image_path)}]}))
    return run_cli(capsys, "run", spec, "--out", tmp_path / "run", "--quiet")


@needs_data
@pytest.mark.parametrize("relative", REAL_FILES)
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_real_files_exit_2_naming_the_file(tmp_path, capsys, relative, fraction):
    source = DATA / relative
    payload = source.read_bytes()
    broken = tmp_path / source.name
    broken.write_bytes(payload[: int(len(payload) * fraction)])
    code, _, err = run_on_file(tmp_path, capsys, broken)
    assert code == 2
    assert source.name in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def _guards_its_pixels(relative):
    """Whether a flipped byte in the file's pixel data can be noticed: not in a TIFF, nor in a plain HDF5 file whose
    datasets are neither compressed nor checksummed (AtomNet's graphene scans: raw float arrays)."""
    if relative.endswith(".tif"):
        return False
    if not relative.endswith((".hdf5", ".hspy")):
        return True
    guarded = []
    with h5py.File(DATA / relative, "r") as fh:
        fh.visititems(lambda _, item: guarded.append(isinstance(item, h5py.Dataset)
                                                     and bool(item.compression or item.fletcher32)))
    return any(guarded)


STRUCTURED = [r for r in REAL_FILES if _guards_its_pixels(r)]


@needs_data
@pytest.mark.parametrize("relative", STRUCTURED)
@pytest.mark.parametrize("seed", [0, 1])
def test_byte_flipped_real_files_exit_2_naming_the_file(tmp_path, capsys, relative, seed):
    """Formats with checksums, compression or rich metadata (PNG, compressed HDF5/HSpy, DM3) reject flipped bytes.

    Uncalibrated float TIFFs and plain uncompressed HDF5 arrays have neither; there a flipped byte is caught only when it makes an impossible
    pixel value (see test_io); a flip that yields a plausible value cannot be told from real data.
    """
    source = DATA / relative
    payload = bytearray(source.read_bytes())
    rng = np.random.default_rng(seed)
    for position in rng.integers(0, len(payload), size=16):
        payload[position] ^= 0xFF
    broken = tmp_path / source.name
    broken.write_bytes(bytes(payload))
    code, _, err = run_on_file(tmp_path, capsys, broken)
    if code == 0:
        pytest.fail(f"a byte-flipped {relative} ran without complaint")
    assert code == 2
    assert source.name in err and "Traceback" not in err


def test_extreme_pixel_values_are_rejected(tmp_path, capsys):
    image = np.random.default_rng(seed(0)).uniform(0, 255, size=(128, 128)).astype(np.float32)
    image[5, 7] = 4.28e9
    np.save(tmp_path / "spiky.npy", image)
    code, _, err = run_on_file(tmp_path, capsys, tmp_path / "spiky.npy")
    assert code == 2
    assert "extreme" in err and "spiky.npy" in err


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.ones(256), "2-D"),
        (np.ones((3, 128, 128)), "stack"),
        (np.ones((8, 8)), "too small"),
        (np.array([["a", "b"], ["c", "d"]]), "grey-level"),
    ],
)
def test_wrong_dimensionality_and_types(tmp_path, capsys, array, expected):
    np.save(tmp_path / "odd.npy", array)
    code, _, err = run_on_file(tmp_path, capsys, tmp_path / "odd.npy")
    assert code == 2 and expected in err and "odd.npy" in err


def test_lattice_too_fine_for_the_pixel_size(tmp_path, capsys):
    rows, cols = np.mgrid[0:256, 0:256]
    image = np.cos(2 * np.pi * cols / 2.1) * np.cos(2 * np.pi * rows / 2.1)
    np.save(tmp_path / "fine.npy", image.astype(np.float32))
    code, _, err = run_on_file(tmp_path, capsys, tmp_path / "fine.npy")
    assert code == 2 and "fine.npy" in err and "Traceback" not in err


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=6),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
_SECTIONS = ["name", "seed", "inputs", "detect", "features", "tokens", "graph", "grammar", "compare", "engine",
             "output", "detct", "token", "input"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(_SECTIONS), _VALUES, min_size=1, max_size=4))
def test_malformed_specs_always_exit_2_with_a_message(tmp_path, capsys, data):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    code, _, err = run_cli(capsys, "validate", spec)
    assert code == 2  # no generated spec has valid inputs
    assert err.startswith("motifgram: error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) >= 2  # the header line and at least one problem with its YAML path
