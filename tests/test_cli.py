"""The command line: exit codes, messages and the files each command writes."""

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from motifgram.engine.cli import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_spec(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_schema_is_json_with_every_section(capsys):
    code, out, _ = run_cli(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    for section in ("inputs", "detect", "features", "tokens", "graph", "grammar", "compare", "engine", "output"):
        assert section in schema["properties"]


def test_validate_accepts_the_demo_and_reports_bad_keys(tmp_path, capsys):
    from motifgram.engine.spec import bundled_spec_path

    code, out, _ = run_cli(capsys, "validate", bundled_spec_path("demo"))
    assert code == 0 and "ok" in out
    bad = write_spec(tmp_path, "inputs:\n  - simulate: {kind: graphene}\ntokens:\n  k: eight\ndetct: {}\n")
    code, _, err = run_cli(capsys, "validate", bad)
    assert code == 2
    assert "tokens.k" in err and "detct" in err and 'did you mean "detect"' in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "spec_text, expected",
    [
        ("inputs:\n  - path: missing.tif\n", "missing.tif"),
        ("inputs: []\n", "inputs"),
        ("inputs:\n  - path: '*.dm3'\n", "*.dm3"),
        ("inputs:\n  - simulate: {kind: graphene, colour: red}\n", "colour"),
    ],
)
def test_run_rejects_bad_specs_with_exit_2(tmp_path, capsys, spec_text, expected):
    code, _, err = run_cli(capsys, "run", write_spec(tmp_path, spec_text), "--out", tmp_path / "run", "--quiet")
    assert code == 2
    assert expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "make_image, expected",
    [
        (lambda rng: np.full((128, 128), 3.0), "constant"),
        (lambda rng: rng.normal(size=(256, 256)), "lattice"),
    ],
)
def test_images_without_a_lattice_give_exit_2(tmp_path, capsys, make_image, expected):
    np.save(tmp_path / "image.npy", make_image(np.random.default_rng(0)))
    spec = write_spec(tmp_path, "inputs:\n  - path: image.npy\n")
    code, _, err = run_cli(capsys, "run", spec, "--out", tmp_path / "run", "--quiet")
    assert code == 2
    assert expected in err and "image.npy" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_corrupt_image_gives_exit_2_naming_the_file(tmp_path, capsys):
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + b"\x17" * 64)
    spec = write_spec(tmp_path, "inputs:\n  - path: broken.tif\n")
    code, _, err = run_cli(capsys, "run", spec, "--out", tmp_path / "run", "--quiet")
    assert code == 2
    assert "broken.tif" in err and "Traceback" not in err


def test_simulate_writes_image_and_truth(tmp_path, capsys):
    code, out, _ = run_cli(
        capsys, "simulate", "graphene", "--out", tmp_path / "g.npy", "--truth", tmp_path / "g.csv",
        "--size", 128, "--seed", 3, "--stone-wales-density", 0.0, "--quiet",
    )
    assert code == 0, out
    image = np.load(tmp_path / "g.npy")
    assert image.shape == (128, 128)
    header = (tmp_path / "g.csv").read_text().splitlines()[0]
    assert header == "id,x,y,label"
    assert (tmp_path / "g.json").is_file()


def test_simulate_unknown_option_is_exit_2(tmp_path, capsys):
    code, _, err = run_cli(capsys, "simulate", "graphene", "--out", tmp_path / "g.npy", "--colour", "red")
    assert code == 2 and "colour" in err


def test_show_rejects_a_malformed_grammar_with_line_and_column(tmp_path, capsys):
    (tmp_path / "grammar.txt").write_text('grammar "x" version 1\nrings {\n  R6 ring(A A A A A A) 3\n}\n')
    code, _, err = run_cli(capsys, "show", tmp_path / "grammar.txt")
    assert code == 2
    assert "3:" in err and "Traceback" not in err


def test_unknown_command_is_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_existing_output_needs_force(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("old results")
    spec = write_spec(tmp_path, "inputs:\n  - simulate: {kind: graphene, size: 128}\n")
    code, _, err = run_cli(capsys, "run", spec, "--out", out, "--quiet")
    assert code == 2 and "--force" in err
    assert (out / "keep.txt").read_text() == "old results"


def test_internal_errors_exit_1(monkeypatch, capsys):
    import motifgram.engine.spec as spec_module

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(spec_module, "json_schema", broken)
    code, _, err = run_cli(capsys, "schema")
    assert code == 1 and "internal error" in err


def test_paths_in_messages_are_the_users(tmp_path, capsys):
    spec = write_spec(tmp_path, "inputs:\n  - path: data/none.png\n")
    code, _, err = run_cli(capsys, "validate", spec)
    assert code == 2
    assert str(Path("data/none.png")) in err


def test_light_commands_do_not_load_the_pipeline(tmp_path):
    """`validate` answers without importing JAX, SciPy, matplotlib or the pipeline (1.2 s of imports), and
    `show` without JAX or the pipeline."""
    demo = Path(__file__).resolve().parents[1] / "specs" / "demo.yaml"
    grammar = tmp_path / "grammar.txt"
    grammar.write_text('grammar "g" version 1\ntokens {\n  A 1.0\n}\nrings {\n  R6 = ring(A A A A A A) 10\n}\n')
    probe = (
        "import sys\n"
        "from motifgram.engine.cli import main\n"
        "def loaded(*names):\n"
        "    return sorted(m for m in names if m in sys.modules)\n"
        f"validate = main(['validate', {str(demo)!r}])\n"
        "after_validate = loaded('jax', 'scipy', 'matplotlib', 'motifgram.engine.pipeline')\n"
        f"show = main(['show', {str(grammar)!r}])\n"
        "print(validate, after_validate, show, loaded('jax', 'matplotlib', 'motifgram.engine.pipeline'))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert "R6 = ring(A A A A A A) 10" in out
    assert out.splitlines()[-1] == "0 [] 0 []"


def test_run_keeps_compiled_kernels_in_the_user_cache(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: tiny\ninputs:\n  - simulate: {kind: graphene, size: 160, seed: 1}\n"
        "output: {overlays: false, report: false}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    command = [sys.executable, "-m", "motifgram.engine.cli", "run", str(spec), "--quiet", "--force", "--out"]
    subprocess.run([*command, str(tmp_path / "a")], env={**env, "XDG_CACHE_HOME": str(tmp_path / "cache")},
                   check=True, capture_output=True)
    assert len(list((tmp_path / "cache" / "motifgram" / "jax").iterdir())) >= 3
    off = {**env, "XDG_CACHE_HOME": str(tmp_path / "unused"), "JAX_COMPILATION_CACHE_DIR": ""}
    subprocess.run([*command, str(tmp_path / "b")], env=off, check=True, capture_output=True)
    assert not (tmp_path / "unused" / "motifgram").exists()


@pytest.mark.parametrize(
    "spec_text, where",
    [
        ("inputs:\n  - simulate: {kind: graphene, sise: 3}\n", "inputs[0].simulate.sise"),
        ("inputs:\n  - simulate: {kind: graphene, size: 128}\ntokens: {k: auto, names: [A, B]}\n", "tokens.names"),
    ],
)
def test_validate_rejects_what_run_rejects(tmp_path, capsys, spec_text, where):
    """Both commands stop with exit 2 and the same message, naming the key by its full YAML path."""
    spec = write_spec(tmp_path, spec_text)
    code, out, err_validate = run_cli(capsys, "validate", spec)
    assert (code, out) == (2, "")
    assert f"  {where}: " in err_validate
    code, _, err_run = run_cli(capsys, "run", spec, "--out", tmp_path / "run", "--quiet")
    assert code == 2 and err_run == err_validate
    assert not (tmp_path / "run").exists()


def test_a_closed_pipe_ends_quietly():
    """`motifgram schema | head -c 10`: no traceback, and the exit status of a command killed by SIGPIPE."""
    # A pipe of one page (Linux's smallest): the 20 KB schema cannot fit in it, so the writer is still writing
    # when the reader goes away, however the two processes are scheduled.
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    process = subprocess.Popen([sys.executable, "-m", "motifgram.engine.cli", "schema"], stdout=write_end,
                               stderr=subprocess.PIPE)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.read(10) == b'{\n  "$sche'
    assert process.wait(timeout=60) == 128 + signal.SIGPIPE
    assert process.stderr.read() == b""


def test_version(capsys):
    import motifgram

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"motifgram {motifgram.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", motifgram.__version__)
    from importlib.metadata import version

    assert version("motifgram") == motifgram.__version__  # one source: pyproject reads it from the package


@pytest.mark.parametrize("signum, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_a_run_stopped_by_a_signal_leaves_nothing_behind(tmp_path, signum, code, word):
    """SIGTERM (batch schedulers, `timeout`) cleans up as Ctrl-C does: no run directory, no staging folder.

    `motifgram run` in a subprocess, its pipeline replaced by one that fills the staging folder and then
    waits to be signalled (the real pipeline's use of the staging folder: test_pipeline.py).
    """
    held = tmp_path / "holding"
    probe = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import motifgram.engine.pipeline as pipeline\n"
        "from motifgram.engine.cli import main\n"
        "from motifgram.engine.outputs import atomic_run_dir\n"
        "def run(spec, *, out_dir, force, quiet):\n"
        "    with atomic_run_dir(out_dir, force=force) as staging:\n"
        "        (staging / 'atoms.csv').write_text('image,id')\n"
        f"        Path({str(held)!r}).write_text(str(staging))\n"
        "        time.sleep(120)\n"
        "pipeline.run = run\n"
        f"sys.exit(main(['run', '--out', {str(tmp_path / 'run')!r}, '--quiet']))\n"
    )
    # SIGINT back to its default in the child: a shell starts background jobs with SIGINT ignored, and Python
    # keeps an ignored SIGINT ignored (as it should: Ctrl-C is not for background jobs), so a test run started
    # in the background would otherwise wait out the sleep
    process = subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not held.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    staging = Path(held.read_text())
    assert (staging / "atoms.csv").is_file()
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code
    assert f"motifgram: {word}" in err and "nothing was written" in err and "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == [held.name]


def test_show_depth_must_be_a_whole_number(capsys):
    with pytest.raises(SystemExit) as info:
        main(["show", "run", "--tree", "x", "--depth", "-1"])
    assert info.value.code == 2
    assert "--depth: expected a whole number >= 0" in capsys.readouterr().err


# ---- exit 2 for bad input, every subcommand: the message names the file, key or argument ---------------------------

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A small run directory written by ``motifgram run`` (graphene, 192 px, no overlays or report), at a fixed seed:
    the exit codes and messages for bad input are no claim about a draw (CI's second seed set does not repeat them)."""
    folder = tmp_path_factory.mktemp("small")
    spec = folder / "spec.yaml"
    spec.write_text("name: small\ninputs:\n  - simulate: {kind: graphene, size: 192, seed: 1}\n"
                    "output: {overlays: false, report: false}\n")
    code = main(["run", str(spec), "--out", str(folder / "run"), "--quiet"])
    assert code == 0
    return folder / "run"


@pytest.fixture(scope="module")
def oversize_npy(tmp_path_factory):
    """A .npy of 8193 x 8192 pixels, one row more than the largest image motifgram reads (sparse on disk)."""
    from motifgram.engine.io import MAX_PIXELS

    path = tmp_path_factory.mktemp("big") / "huge.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(MAX_PIXELS // 8192 + 1, 8192))
    big[0, :2] = 1
    del big
    return path


def copy_run(run_dir, to, *, without=()):
    import shutil

    shutil.copytree(run_dir, to, ignore=shutil.ignore_patterns(*without))
    return to


def test_parse_without_the_token_model_exits_2_naming_it(small_run, tmp_path, capsys):
    bare = copy_run(small_run, tmp_path / "bare", without=("tokens.npz",))
    np.save(tmp_path / "new.npy", np.random.default_rng(0).random((64, 64)))
    code, _, err = run_cli(capsys, "parse", bare / "grammar.txt", tmp_path / "new.npy", "--out", tmp_path / "p")
    assert code == 2 and str(bare / "tokens.npz") in err and "Traceback" not in err
    assert not (tmp_path / "p").exists()


def test_parse_with_a_grammar_of_other_tokens_exits_2_naming_both_files(small_run, tmp_path, capsys):
    """A grammar and a token model of different runs: the grammar's tokens are not the model's."""
    from motifgram.grammar import Grammar
    from motifgram.grammar.align import rename_tokens

    other = copy_run(small_run, tmp_path / "other")
    grammar = Grammar.parse_text((other / "grammar.txt").read_text())
    renamed = rename_tokens(grammar, {t.name: f"Q{t.name}" for t in grammar.tokens})
    (other / "grammar.txt").write_text(renamed.to_text())
    image = tmp_path / "new.npy"
    np.save(image, np.random.default_rng(0).random((64, 64)))
    code, _, err = run_cli(capsys, "parse", other / "grammar.txt", image, "--out", tmp_path / "p")
    assert code == 2 and "Traceback" not in err
    assert str(other / "grammar.txt") in err and str(other / "tokens.npz") in err and "do not match" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("problem", ["missing", "corrupt", "oversize", "grammar"])
def test_parse_bad_input_exits_2_naming_the_file(small_run, oversize_npy, tmp_path, capsys, problem):
    grammar, image = small_run / "grammar.txt", tmp_path / "image.npy"
    if problem == "missing":
        named = image
    elif problem == "corrupt":
        image.write_bytes(b"\x93NUMPY garbage")
        named = image
    elif problem == "oversize":
        image = named = oversize_npy
    else:
        bad = copy_run(small_run, tmp_path / "bad")
        (bad / "grammar.txt").write_text('grammar "x" version 1\nrings {\n  R6 ring(A A A A A A) 3\n}\n')
        grammar = named = bad / "grammar.txt"
        np.save(image, np.random.default_rng(0).random((64, 64)))
    code, _, err = run_cli(capsys, "parse", grammar, image, "--out", tmp_path / "p")
    assert code == 2 and named.name in err and "Traceback" not in err
    if problem == "oversize":
        assert "8193" in err and "crop or bin" in err
    if problem == "grammar":
        assert "3:" in err  # line 3, with its column
    assert not (tmp_path / "p").exists()


def test_run_refuses_an_oversize_image(oversize_npy, tmp_path, capsys):
    spec = write_spec(tmp_path, f"inputs:\n  - path: {oversize_npy}\n")
    code, _, err = run_cli(capsys, "run", spec, "--out", tmp_path / "run", "--quiet")
    assert code == 2 and "huge.npy" in err and "pixels" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("problem", ["missing", "no grammar", "bad reference", "missing reference", "missing tokens",
                                     "corrupt features", "joint without features"])
def test_compare_bad_input_exits_2_naming_it(small_run, tmp_path, capsys, problem):
    items, extra = [small_run], []
    if problem == "missing tokens":
        extra, named = ["--tokens", str(tmp_path / "no-run")], tmp_path / "no-run"
    elif problem == "corrupt features":
        items = [copy_run(small_run, tmp_path / "corrupt")]
        (items[0] / "features.npz").write_bytes(b"PK garbage")
        named = items[0] / "features.npz"
    elif problem == "joint without features":
        items = [named := copy_run(small_run, tmp_path / "old", without=("features.npz",))]
        extra = ["--tokens", "joint"]
    elif problem == "missing":
        items.append(named := tmp_path / "absent")
    elif problem == "no grammar":
        (named := tmp_path / "empty").mkdir()
        items.append(named)
    elif problem == "bad reference":
        extra, named = ["--reference", "graphene"], "--reference"
    else:
        extra, named = ["--reference", f"graphene={tmp_path / 'nowhere'}"], tmp_path / "nowhere"
    code, _, err = run_cli(capsys, "compare", *items, small_run, *extra)
    assert code == 2 and str(named) in err and "Traceback" not in err


@pytest.mark.parametrize("problem", ["no summary", "bad summary", "missing folder"])
def test_report_bad_input_exits_2_naming_the_file(small_run, tmp_path, capsys, problem):
    if problem == "missing folder":
        folder, named = tmp_path / "absent", "absent"
    else:
        folder = copy_run(small_run, tmp_path / "run", without=("summary.json",))
        named = "summary.json"
        if problem == "bad summary":
            (folder / "summary.json").write_text('{"images": [1, 2')
    code, _, err = run_cli(capsys, "report", folder)
    assert code == 2 and named in err and "Traceback" not in err
    assert not (folder / "report.html").exists()


@pytest.mark.parametrize("problem", ["missing", "no grammar", "unknown image"])
def test_show_bad_input_exits_2_naming_it(small_run, tmp_path, capsys, problem):
    args = []
    if problem == "missing":
        path, named = tmp_path / "absent.txt", "absent.txt"
    elif problem == "no grammar":
        (path := tmp_path / "empty").mkdir()
        named = "empty"
    else:
        path, args, named = small_run, ["--tree", "no-such-image"], "no-such-image"
    code, _, err = run_cli(capsys, "show", path, *args)
    assert code == 2 and named in err and "Traceback" not in err


def test_validate_a_missing_spec_file_exits_2_naming_it(tmp_path, capsys):
    code, _, err = run_cli(capsys, "validate", tmp_path / "nothing.yaml")
    assert code == 2 and "nothing.yaml" in err and "Traceback" not in err


def test_schema_takes_no_arguments(capsys):
    with pytest.raises(SystemExit) as info:
        main(["schema", "--pretty"])
    assert info.value.code == 2 and "--pretty" in capsys.readouterr().err


@pytest.mark.parametrize("argv, named", [
    (["simulate", "quasicrystal"], "simulate.kind"),
    (["simulate", "graphene", "--size", "16"], "simulate.size"),
    (["simulate", "graphene", "--stone-wales-density"], "--stone-wales-density"),
    (["simulate", "graphene", "--format", "png"], "format"),
])
def test_simulate_bad_input_exits_2_naming_the_option(tmp_path, capsys, argv, named):
    code, _, err = run_cli(capsys, *argv, "--out", tmp_path / "g.npy", "--quiet")
    assert code == 2 and named in err and "Traceback" not in err
    assert not (tmp_path / "g.npy").exists()


def test_simulate_unwritable_suffix_exits_2_naming_the_file(tmp_path, capsys):
    code, _, err = run_cli(capsys, "simulate", "graphene", "--size", 64, "--out", tmp_path / "g.png", "--quiet")
    assert code == 2 and "g.png" in err and "Traceback" not in err
