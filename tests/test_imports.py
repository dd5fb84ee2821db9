"""What the command line imports: ``motifgram run`` pays only for what the run uses (issue 21).

Each check runs in a new Python process (the test process itself has imported everything) and lists the
modules loaded at the end. The plotting library, Dask, pandas, scikit-learn and scikit-image are dependencies of
the notebook API, the Dask executor and the benchmarks, never of a default run; SciPy's clustering and optimize
are for comparing groups, networkx for ``AtomGraph.to_networkx``, ``scipy.signal`` for simulating scan noise.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import built_once

#: Never imported by a default ``motifgram run`` on a micrograph file of one group.
NOT_IN_A_RUN = ("matplotlib", "dask", "distributed", "pandas", "sklearn", "skimage", "networkx", "scipy.optimize",
                "scipy.cluster", "scipy.signal", "motifgram.grammar.compare", "motifgram.api")
#: Not imported by importing the command line (``motifgram --help``, ``validate`` and ``schema`` need none).
NOT_IN_THE_CLI = (*NOT_IN_A_RUN, "jax", "scipy", "numpy", "PIL", "jinja2", "motifgram.engine.pipeline")


def modules_after(code: str) -> set[str]:
    """The names in ``sys.modules`` after running ``code`` in a new interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_library():
    loaded = modules_after("import motifgram.engine.cli")
    assert not loaded & set(NOT_IN_THE_CLI), sorted(loaded & set(NOT_IN_THE_CLI))


def _default_spec(folder):
    """A default spec (overlays and report on) naming one simulated 160² graphene micrograph saved as .npy."""
    from motifgram.engine.simulate import simulate

    sim = simulate("graphene", size=160, seed=1)  # fixed: what a run imports does not depend on the draw
    np.save(folder / "g.npy", sim.image)
    spec = folder / "spec.yaml"
    spec.write_text(f"name: g\ninputs:\n  - path: g.npy\n    pixel_size: {sim.pixel_size_nm}\n")
    return spec


@pytest.fixture(scope="module")
def called_run(tmp_path_factory):
    """The default spec (overlays and report on) on a .npy micrograph run by ``main(argv)`` in a new interpreter:
    the spec, the run's folder and the modules loaded at its end (built once per test session)."""

    def build(folder):
        spec = _default_spec(folder)
        loaded = modules_after(
            "from motifgram.engine.cli import main\n"
            f"assert main(['run', {str(spec)!r}, '--out', {str(folder / 'call')!r}, '--quiet']) == 0\n"
        )
        return spec, folder / "call", loaded

    return built_once(tmp_path_factory, "imports-default-run", build)


@pytest.mark.slow
def test_a_default_run_imports_only_what_it_uses(called_run):
    """The default spec (overlays and report on) on a .npy micrograph, as a user runs it."""
    _, run_dir, loaded = called_run
    assert (run_dir / "report.html").is_file() and (run_dir / "overlays" / "g.png").is_file()
    assert {"jax", "PIL", "jinja2"} <= loaded  # the probe saw the run's imports
    assert not loaded & set(NOT_IN_A_RUN), sorted(loaded & set(NOT_IN_A_RUN))


@pytest.mark.slow
def test_the_command_line_exit_keeps_every_output(tmp_path, called_run):
    """``motifgram run`` from the command line freezes the collector before exiting (``cli.main()`` without
    arguments): it still exits 0 and writes every file, byte for byte as a ``main(argv)`` call does."""
    spec, call, _ = called_run
    done = subprocess.run([sys.executable, "-m", "motifgram.engine.cli", "run", str(spec), "--out",
                           str(tmp_path / "cli"), "--quiet"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(tmp_path / "cli").as_posix() for p in (tmp_path / "cli").rglob("*"))
    assert written == sorted(p.relative_to(call).as_posix() for p in call.rglob("*"))
    assert {"atoms.csv", "bonds.csv", "rings.csv", "grammar.txt", "summary.json", "tokens.npz", "features.npz",
            "report.html", "overlays/g.png", "parses/g.json"} <= set(written)
    for name in ("atoms.csv", "bonds.csv", "rings.csv", "grammar.txt", "parses/g.json"):
        assert (tmp_path / "cli" / name).read_bytes() == (call / name).read_bytes(), name


@pytest.mark.parametrize("command_line", [True, False])
def test_the_command_line_freezes_the_imports_before_the_run(tmp_path, command_line):
    """``motifgram run`` from the command line freezes what the imports left out of the collector before the
    run starts (the run itself is replaced by a probe); a ``main(argv)`` call leaves the collector alone."""
    argv = ["run", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "out")]
    call = f"sys.argv = ['motifgram', *{argv!r}]; main()" if command_line else f"main({argv!r})"
    code = ("import gc, sys\nimport motifgram.engine.pipeline as pipeline\n"
            "pipeline.run = lambda *a, **k: print('frozen', gc.get_freeze_count()) or 'out'\n"
            f"from motifgram.engine.cli import main\n{call}\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    frozen = int(done.stdout.split("frozen")[1].split()[0])
    assert (frozen > 10_000) if command_line else (frozen == 0)
