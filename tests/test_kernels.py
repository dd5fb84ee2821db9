"""The contract of every jitted kernel (STYLE.md), through its public entry point.

For each kernel: a new input size inside its bucket compiles nothing (counted with JAX's monitoring events,
which report every backend compilation, persistent-cache hits included), outputs are float32 (complex64 for
moments) whatever the input dtype, finite, one row per input row; vmap-able where the docstring says so.
Then the per-micrograph stages and the token stage on micrographs of three sizes in one process compile
nothing after the first, and a second process with the persistent compilation cache compiles nothing at all.
"""

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from motifgram.engine.detect import refine_positions
from motifgram.engine.mixture import EMState, em_step, fit_mixture, posterior
from motifgram.engine.patches import bilinear_gather, prepare_sampling, rotate_patches, sample_image
from motifgram.engine.zernike import image_moments, polar_offsets, zernike_moments

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compilations():
    """The names of the functions JAX compiles inside the block (a list filled as they happen)."""
    names = []

    def listener(event, duration, **metadata):
        if event == BACKEND_COMPILE:
            names.append(metadata.get("fun_name", "?"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def blobs(side: int, seed: int, spacing: float = 7.0) -> tuple[np.ndarray, np.ndarray]:
    """A (side, side) float64 image of Gaussian columns on a jittered square grid, and their xy (px)."""
    rng = np.random.default_rng(seed)
    g = np.arange(spacing / 2, side - spacing / 2, spacing)
    xy = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2) + rng.uniform(-1, 1, (g.size**2, 2))
    rr, cc = np.mgrid[:side, :side]
    image = rng.normal(0, 0.05, (side, side))
    for x, y in xy:
        image += np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * 1.5**2))
    return image, xy


SIDES = (70, 101, 150)  # one side bucket (256 px) with the sampling margin
ROWS = (10, 700, 5000)  # one or two chunks of 4096 rows
OFFSETS = polar_offsets(13, 10).astype(np.float32)


def rows_of(n, seed, side=64.0):
    return np.random.default_rng(seed).uniform(0, side - 1, (n, 2))


def mixture_data(n, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 1, (n // 2, 4)), rng.normal(4, 1, (n - n // 2, 4))])


MIXTURE = fit_mixture(mixture_data(400, 0), n_components=2, seed=0, n_init=1)


def em_inputs(n, seed, k=2):
    x = mixture_data(n, seed).astype(np.float32)
    state = EMState(
        weights=jnp.full(k, 1.0 / k), means=jnp.asarray(x[:: max(1, n // k)][:k]),
        covariances=jnp.broadcast_to(jnp.eye(4), (k, 4, 4)), log_likelihood=jnp.float32(-jnp.inf),
        previous=jnp.float32(-jnp.inf), n_iter=jnp.int32(0),
    )
    return state, x, np.ones(n, np.float32), np.full(4, 1e-6, np.float32)


# entry(size index) -> (arrays to check, their expected leading length); sizes differ inside one bucket
KERNELS = {
    "bilinear_gather (sample_image)": lambda i: (
        sample_image(blobs(SIDES[i], i)[0], rows_of(ROWS[i], i, SIDES[i]), offsets=OFFSETS), ROWS[i]),
    "rotate_patches": lambda i: (
        rotate_patches(np.random.default_rng(i).random((ROWS[i], 9, 9)), np.linspace(0, 3, ROWS[i])), ROWS[i]),
    "zernike_moments": lambda i: (
        zernike_moments(np.random.default_rng(i).random((ROWS[i], 13, 13)), n_max=10, sampling="square"), ROWS[i]),
    "image_moments": lambda i: (
        image_moments(blobs(SIDES[i], i)[0], rows_of(ROWS[i], i, SIDES[i]), patch_size=13), ROWS[i]),
    "refine_positions": lambda i: (
        refine_positions(*_refine_input(i), sigma_px=1.5, half_window=3), len(_refine_input(i)[1])),
    "fit_mixture": lambda i: (fit_mixture(mixture_data((150, 1000, 3900)[i], i), n_components=2 + i % 2, seed=i,
                                          n_init=2).means, None),  # rows reduced at once: one row bucket
    "posterior": lambda i: (posterior(MIXTURE, mixture_data(ROWS[i], i)), ROWS[i]),
}


def _refine_input(i):
    image, xy = blobs(SIDES[i], i)
    return image, np.rint(xy)


def _arrays(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_contract_no_recompile_inside_a_bucket_float32_finite(name):
    entry = KERNELS[name]
    entry(0)  # compiles (or loads) the kernel for this bucket
    for i in (1, 2):
        with compilations() as compiled:
            out, n = entry(i)
        assert compiled == [], f"{name} compiled {compiled} for size {i}"
        for array in _arrays(out):
            array = np.asarray(array)
            assert np.isfinite(array).all()
            if n is not None:
                assert len(array) == n
            if name not in ("fit_mixture", "posterior"):  # the mixture API returns float64 by design
                assert array.dtype in (np.float32, np.complex64), array.dtype


def test_em_step_float32_no_recompile_for_padded_rows_and_vmap_over_states():
    """em_step (the EM kernel behind fit_mixture): float32 in and out; rows padded to one bucket with zero
    weight give the same step as the unpadded rows; documented vmap-able over a batch of states."""
    state, x, w, reg = em_inputs(3000, 0)
    new = em_step(state, x, w, reg)
    assert all(np.asarray(leaf).dtype in (np.float32, np.int32) for leaf in new)
    rows = 4096
    padded = (np.r_[x, np.zeros((rows - len(x), 4), np.float32)], np.r_[w, np.zeros(rows - len(w), np.float32)])
    same = em_step(state, *padded, reg)
    np.testing.assert_allclose(same.means, new.means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(same.log_likelihood, new.log_likelihood, rtol=1e-6)
    other_state, x2, w2, _ = em_inputs(2000, 1)
    with compilations() as compiled:
        em_step(other_state, np.r_[x2, np.zeros((rows - 2000, 4), np.float32)], np.r_[w2, np.zeros(rows - 2000,
                                                                                                  np.float32)], reg)
    assert compiled == []
    states = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), state, other_state)
    batched = jax.vmap(lambda s: em_step(s, x, w, reg))(states)
    for k, s in enumerate((state, other_state)):
        np.testing.assert_allclose(batched.means[k], em_step(s, x, w, reg).means, rtol=1e-5, atol=1e-5)


def test_bilinear_gather_is_vmappable_over_position_sets():
    image, _ = blobs(60, 0)
    padded, _, pad = prepare_sampling(image, np.zeros((1, 2)), 7.0)
    batch = np.random.default_rng(0).uniform(0, 59, (3, 50, 2)).astype(np.float32)
    got = jax.vmap(bilinear_gather, in_axes=(None, 0, None, None))(padded, batch, OFFSETS[:20], pad)
    for k in range(3):
        np.testing.assert_allclose(got[k], sample_image(image, batch[k], offsets=OFFSETS[:20]), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------------------------
# Whole stages across micrograph sizes, in one process and across processes

STAGES = textwrap.dedent("""
    import json, sys
    import jax
    from motifgram.engine.simulate import simulate
    from motifgram.engine.spec import load_spec
    from motifgram.engine.stages import analyse_micrograph
    from motifgram.engine.io import Micrograph
    from motifgram.engine.tokens import assign_tokens, learn_tokens

    events = {"compiled": [], "traced": [], "hits": 0, "misses": 0}
    def on_duration(event, duration, **metadata):
        if event == "/jax/core/compile/backend_compile_duration":
            events["compiled"].append(metadata.get("fun_name", "?"))
        elif event == "/jax/core/compile/jaxpr_trace_duration":
            events["traced"].append(metadata.get("fun_name", "?"))
    def on_event(event, **metadata):
        if event == "/jax/compilation_cache/cache_hits":
            events["hits"] += 1
        elif event == "/jax/compilation_cache/cache_misses":
            events["misses"] += 1

    spec = load_spec({"inputs": [{"simulate": {"kind": "graphene", "size": 64}}], "tokens": {"k_range": [1, 3]}})
    images = [simulate("graphene", size=int(size), seed=k).image for k, size in enumerate(sys.argv[1:])]
    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    counts = []
    for k, image in enumerate(images):
        before = len(events["compiled"])
        analysis = analyse_micrograph(Micrograph(image, None, str(k), "g", "simulated"), spec)
        analysis.features.moments_of(slice(512))  # the sampled patches' moments (the chemistry descriptor's only)
        model, _, _ = learn_tokens(analysis.invariants, k_range=(1, 3), seed=0, n_init=2)
        assign_tokens(model, analysis.invariants)
        counts.append(events["compiled"][before:])
    print(json.dumps({"per_size": counts, "traced": events["traced"], "hits": events["hits"],
                      "misses": events["misses"]}))
""")


def run_stages(sizes, cache_dir) -> dict:
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache_dir), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    done = subprocess.run([sys.executable, "-c", STAGES, *map(str, sizes)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_micrographs_of_three_sizes_compile_once_and_a_second_process_loads_everything(tmp_path):
    """Graphene micrographs of 440, 480 and 512 px (about 2300 to 3100 atoms): detection, features, graph and
    tokens compile for the first only; a second process (other sizes again) compiles nothing: every kernel
    comes from the persistent cache, and the Gaussian fit of detection (two variants: the single-column fit's
    window and the joint fit's, whose two passes of 8 and 4 iterations share one kernel), the EM fit, the posterior and the patch kernels are loaded as exported,
    not traced (engine/kernelstore.py)."""
    first = run_stages([440, 480, 512], tmp_path / "jax")
    assert first["per_size"][0], "the first micrograph compiles the kernels"
    assert first["per_size"][1:] == [[], []], first["per_size"]
    second = run_stages([460, 500], tmp_path / "jax")
    assert second["misses"] == 0 and second["hits"] == len(first["per_size"][0]) == len(second["per_size"][0])
    assert second["per_size"][1:] == [[]]
    assert importlib.util.find_spec("flatbuffers"), "flatbuffers (kernelstore needs it) missing: pip install -e ."
    assert first["traced"].count("_fit_windows") == 2 and "_fit" in first["traced"]
    assert not {"_fit_windows", "_fit", "_evaluate", "_rotate", "_image_moments", "bilinear_gather"} & set(
        second["traced"]), second["traced"]
