"""Reading micrographs: every supported format, pixel sizes, and bad files."""

from pathlib import Path

import numpy as np
import pytest

from motifgram.engine.errors import ImageError
from motifgram.engine.io import load_micrograph
from conftest import DATA, needs_data, seed
from conftest import seed as offset_seed



@needs_data
@pytest.mark.parametrize(
    "relative, shape, pixel_size_nm",
    [
        ("temul-mos2-se/example_Se_implanted_MoS2.dm3", (1024, 1024), 0.0126953),
        ("temimage-graphene/graphene_flower_raw.dm3", (256, 256), None),
        ("atomap-sto/STO_ADF.hdf5", (999, 1012), 0.009326),
        ("temul-pto/Cropped_PTO-SRO_Aligned.hspy", (224, 1312), 0.0149968),
        ("motiflearn-tmd/GB_mono_MoSe2.tif", (500, 500), None),
        ("atomsegnet-au-si/Si110_5nmX25us_03_none_none.png", (512, 512), None),
    ],
)
def test_reads_each_real_format(relative, shape, pixel_size_nm):
    micrograph = load_micrograph(DATA / relative)
    assert micrograph.image.shape == shape
    assert micrograph.image.dtype == np.float32
    assert np.isfinite(micrograph.image).all()
    assert micrograph.id == Path(relative).stem
    if pixel_size_nm is None:
        assert micrograph.pixel_size_nm is None
    else:
        assert micrograph.pixel_size_nm == pytest.approx(pixel_size_nm, rel=1e-4)


@needs_data
def test_spec_pixel_size_overrides_the_file():
    micrograph = load_micrograph(DATA / "temul-mos2-se/example_Se_implanted_MoS2.dm3", pixel_size_nm=0.02)
    assert micrograph.pixel_size_nm == 0.02


def test_npy_tif_png_round_trip(tmp_path):
    import imageio.v3 as iio
    import tifffile

    rng = np.random.default_rng(seed(0))
    image = rng.uniform(0, 255, size=(64, 80)).astype(np.uint8)
    np.save(tmp_path / "a.npy", image)
    tifffile.imwrite(tmp_path / "a.tif", image)
    iio.imwrite(tmp_path / "a.png", image)
    iio.imwrite(tmp_path / "rgb.png", np.stack([image] * 3, axis=-1))
    for name in ("a.npy", "a.tif", "a.png", "rgb.png"):
        loaded = load_micrograph(tmp_path / name)
        np.testing.assert_allclose(loaded.image, image, atol=1.0, err_msg=name)


def test_tiff_with_imagej_calibration(tmp_path):
    import tifffile

    image = np.random.default_rng(seed(1)).random((64, 64)).astype(np.float32)
    tifffile.imwrite(tmp_path / "cal.tif", image, imagej=True, resolution=(1 / 0.25, 1 / 0.25), metadata={"unit": "A"})
    assert load_micrograph(tmp_path / "cal.tif").pixel_size_nm == pytest.approx(0.025)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((64, 64)), "constant"),
        (np.ones(100), "2-D"),
        (np.ones((5, 64, 64)), "stack"),
        (np.ones((16, 16)), "too small"),
    ],
)
def test_unusable_arrays_are_rejected(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ImageError, match=message) as info:
        load_micrograph(path)
    assert "bad.npy" in str(info.value)


def test_nan_pixels_are_rejected(tmp_path):
    image = np.random.default_rng(seed(2)).random((64, 64))
    image[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", image)
    with pytest.raises(ImageError, match="NaN"):
        load_micrograph(tmp_path / "nan.npy")


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_micrograph(tmp_path / "absent.tif")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageError, match="unsupported"):
        load_micrograph(tmp_path / "notes.txt")


@needs_data
@pytest.mark.parametrize(
    "relative",
    [
        "temul-mos2-se/example_Se_implanted_MoS2.dm3",
        "atomap-sto/STO_ADF.hdf5",
        "motiflearn-tmd/GB_mono_MoSe2.tif",
        "atomsegnet-au-si/Grain_boundry_gold_512px.png",
    ],
)
def test_truncated_files_give_an_image_error_naming_the_file(tmp_path, relative):
    source = DATA / relative
    payload = source.read_bytes()
    broken = tmp_path / source.name
    broken.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ImageError) as info:
        load_micrograph(broken)
    assert source.name in str(info.value)


# ---- plain HDF5, dataset selection and stacks (issue 18) --------------------------------------------------------


def _lattice(seed=0, size=96):
    from motifgram.engine.simulate import simulate

    return simulate("graphene", size=size, seed=offset_seed(seed)).image


def test_plain_hdf5_with_one_dataset_is_read(tmp_path):
    import h5py

    image = _lattice()
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("scan/haadf", data=image)
        f.create_dataset("scan/times", data=np.arange(10.0))  # 1-D: not an image
    m = load_micrograph(path)
    np.testing.assert_array_equal(m.image, image)
    assert m.pixel_size_nm is None


def test_hdf5_with_several_images_lists_them_and_dataset_chooses(tmp_path):
    import h5py

    a, b = _lattice(0), _lattice(1)
    path = tmp_path / "two.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("haadf", data=a)
        f.create_dataset("bf", data=b)
    with pytest.raises(ImageError) as err:
        load_micrograph(path)
    message = str(err.value)
    assert str(path) in message and "/haadf" in message and "/bf" in message and "dataset: /path" in message
    np.testing.assert_array_equal(load_micrograph(path, dataset="/bf").image, b)
    with pytest.raises(ImageError, match=r"no dataset '/adf'.*/haadf"):
        load_micrograph(path, dataset="/adf")


def test_stack_needs_a_frame_and_frame_chooses(tmp_path):
    import h5py

    frames = np.stack([_lattice(s) for s in range(3)])
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames)
    with pytest.raises(ImageError, match=r"stack of 3 frames.*frame: N"):
        load_micrograph(path)
    np.testing.assert_array_equal(load_micrograph(path, frame=2).image, frames[2])
    with pytest.raises(ImageError, match="out of range"):
        load_micrograph(path, frame=3)
    npy = tmp_path / "one.npy"
    np.save(npy, frames[0])
    with pytest.raises(ImageError, match="not a stack"):
        load_micrograph(npy, frame=0)


def test_spec_dataset_and_frame_keys(tmp_path):
    import h5py

    from motifgram.engine.errors import SpecError
    from motifgram.engine.spec import json_schema, load_spec

    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=np.stack([_lattice(0), _lattice(1)]))
    spec = load_spec({"inputs": [{"path": "stack.h5", "dataset": "/frames", "frame": 1}]}, base_dir=tmp_path)
    item = spec.inputs[0]
    assert (item.dataset, item.frame) == ("/frames", 1)
    assert spec.to_dict()["inputs"][0]["dataset"] == "/frames" and spec.to_dict()["inputs"][0]["frame"] == 1
    assert {"dataset", "frame"} <= set(json_schema()["$defs"]["InputSpec"]["properties"])
    with pytest.raises(SpecError) as err:
        load_spec({"inputs": [{"path": "stack.h5", "dataset": "frames", "frame": -1}]}, base_dir=tmp_path)
    paths = {p for p, _ in err.value.problems}
    assert "inputs[0].dataset" in paths and "inputs[0].frame" in paths
