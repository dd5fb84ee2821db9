"""The ``motifgram`` command line.

Thin commands: parse the arguments, call one library function, print its result. Errors caused by the
input (:class:`~motifgram.engine.errors.MotifgramError`) exit with 2 and a one-paragraph message; anything
else is a bug and exits with 1.
"""

import argparse
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from motifgram import __version__
from motifgram.engine.errors import MotifgramError

__all__ = ["main", "build_parser", "Terminated"]

log = logging.getLogger("motifgram")


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "simulate":
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    _set_up_logging(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
    _keep_compiled_kernels()
    args.command_line = argv is None
    try:
        with _terminate_on_sigterm():
            code = args.handler(args, extra) or 0
            sys.stdout.flush()  # a closed pipe is found here, not at exit
            return code
    except MotifgramError as exc:
        print(f"motifgram: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("motifgram: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Terminated:
        print("motifgram: terminated (SIGTERM); nothing was written", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # the reader went away (`motifgram schema | head`): stop as quietly as `cat` does
        _discard_stdout()
        return 128 + signal.SIGPIPE
    except Exception:  # an unexpected failure is a bug: show where it happened
        traceback.print_exc()
        print("motifgram: internal error (a bug); please report it with the traceback above", file=sys.stderr)
        return 1
    finally:
        if argv is None:  # the command line: the interpreter exits next
            _skip_final_collection()


def _skip_final_collection() -> None:
    """Freeze every live object out of the garbage collector before the interpreter exits.

    At exit Python collects all generations once more, traversing the objects of JAX, XLA's lowering caches
    and the run (~174,000 tracked after a 1024² run; one full collection of them took 0.92 s at load ~11)
    only to free what the process's end frees anyway. Frozen, they are not traversed: a ``motifgram run`` of
    a 1024² micrograph exited in 0.58–1.86 s after ``main`` returned instead of 4.1–4.9 s (at load 11–23 on
    2 cores; ``python benchmarks/e2e.py --exit-cost``). Only for the command line (``main()`` without
    arguments): a caller of ``main(argv)`` keeps its collector as it was.
    """
    gc.freeze()


def _freeze_imports(args) -> None:
    """On the command line, freeze the objects the imports left (JAX's, SciPy's: ~120,000) out of the garbage
    collector before the run: they live until the process ends, and every full collection of the run would
    traverse them again (a 2048² run at load 11-14: five full collections took 1.09 s, four took 0.41 s with
    them frozen). A caller of ``main(argv)`` keeps its collector as it was."""
    if args.command_line:
        gc.freeze()


class Terminated(BaseException):
    """SIGTERM arrived (a batch scheduler, ``timeout``, ``kill``): unwinds like Ctrl-C, so that a run's
    staging folder is removed and nothing half-written is left."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _terminate_on_sigterm():
    """Turn SIGTERM into :class:`Terminated` while a command runs (the previous handler is restored after,
    since tests call :func:`main` in-process). Signal handlers can only be set in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so that Python's final flush does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced by an object without a file (tests)
        pass


def _keep_compiled_kernels() -> None:
    """Keep JAX's compiled kernels on disk between runs (JAX's persistent compilation cache).

    Compiling the kernels is a large part of a small run (two 512^2 micrographs: 5.2 s with a cold cache,
    3.2 s with a warm one) and every pool worker compiles them again. Set in JAX's configuration and in the
    environment, which spawned pool workers inherit. The folder is
    ``$XDG_CACHE_HOME/motifgram/jax`` (``~/.cache/motifgram/jax``) unless ``JAX_COMPILATION_CACHE_DIR`` is
    set already; ``JAX_COMPILATION_CACHE_DIR=`` (empty) turns it off, as does a folder that cannot be made.
    JAX reads both variables when it is first imported; a JAX imported before (``main`` called in-process)
    is told through its configuration.
    """
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "motifgram" / "jax"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
        except OSError as err:  # a read-only home: run without the cache rather than warn about every kernel
            log.debug("no kernel cache: %s", err)
            os.environ["JAX_COMPILATION_CACHE_DIR"] = ""
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"] or None)
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (also read by the documentation's CLI reference)."""
    parser = argparse.ArgumentParser(
        prog="motifgram",
        description="Learn the vocabulary and grammar of atomic-resolution micrographs.",
    )
    parser.add_argument("--version", action="version", version=f"motifgram {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the whole pipeline for a spec (no spec: the bundled demo)")
    run.add_argument("spec", nargs="?", type=Path, help="YAML spec (default: the bundled demo spec)")
    run.add_argument("--out", type=Path, help="run directory (overrides output.dir)")
    run.add_argument("--force", action="store_true", help="replace an existing run directory")
    _add_verbosity(run)
    run.set_defaults(handler=_cmd_run)

    show = commands.add_parser("show", help="print a learned grammar and a short summary")
    show.add_argument("path", type=Path, help="run directory or grammar.txt")
    show.add_argument("--tree", metavar="IMAGE", help="also print the parse tree of IMAGE (run directory only)")
    show.add_argument("--top", metavar="N", type=_positive_int, help="list only the N rules with the largest share "
                      "of the description-length gain")
    show.add_argument("--depth", type=_depth, metavar="N",
                      help="levels of the tree below the micrograph to print (default 1: its motifs and domains, "
                           "counted per symbol); 0 prints the whole tree")
    show.set_defaults(handler=_cmd_show)

    parse = commands.add_parser("parse", help="apply an existing grammar and token model to a new micrograph")
    parse.add_argument("grammar", type=Path, help="grammar.txt of a run (tokens.npz must sit beside it)")
    parse.add_argument("image", type=Path, help="micrograph file")
    parse.add_argument("--out", type=Path, help="output directory (default: runs/parse-<image stem>)")
    parse.add_argument("--pixel-size", type=float, help="pixel size in nm (overrides the file's)")
    parse.add_argument("--force", action="store_true", help="replace an existing output directory")
    _add_verbosity(parse)
    parse.set_defaults(handler=_cmd_parse)

    compare = commands.add_parser("compare", help="distances between grammars, disorder ranking, classification")
    compare.add_argument("items", nargs="+", type=Path, help="run directories or grammar files")
    compare.add_argument("--json", type=Path, help="also write the comparison as JSON")
    compare.add_argument(
        "--reference", action="append", default=[], metavar="LABEL=PATH",
        help="classify every item against this reference (repeatable); an item beyond the references' own "
             "spread is 'unknown'",
    )
    compare.add_argument(
        "--tokens", default="auto", metavar="auto|joint|own|RUN",
        help="the common token vocabulary: joint (one token model fitted over the runs' features.npz), own (each "
             "run's tokens, matched pairwise), a run directory whose token model to use, or auto (joint when every "
             "run has features.npz; default)",
    )
    compare.add_argument(
        "--levels", action="append", default=[], metavar="LEVEL[,LEVEL]",
        help="also compute these levels although their weight is 0 (repeatable; grammar: the grammar level and "
             "cross description lengths, which parse every run's micrographs with every other run's grammar)",
    )
    compare.set_defaults(handler=_cmd_compare)

    validate = commands.add_parser("validate", help="check a spec and list every problem")
    validate.add_argument("spec", type=Path)
    validate.set_defaults(handler=_cmd_validate)

    schema = commands.add_parser("schema", help="print the spec's JSON Schema")
    schema.set_defaults(handler=_cmd_schema)

    report = commands.add_parser("report", help="rebuild report.html from a run's files")
    report.add_argument("run_dir", type=Path)
    report.set_defaults(handler=_cmd_report)

    simulate = commands.add_parser(
        "simulate",
        help="write a synthetic micrograph and its ground truth",
        description="Simulator options of the kind are given as --name value (e.g. --stone-wales-density 0.01).",
    )
    simulate.add_argument("kind", help="graphene, graphene_gb, mos2, perovskite, cairo, crn, ...")
    simulate.add_argument("--out", type=Path, required=True, help="image file (.npy or .tif)")
    simulate.add_argument("--truth", type=Path, help="truth CSV (atoms; bonds/rings/defects in a .json beside it)")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--size", type=int, default=512, help="image side in pixels")
    _add_verbosity(simulate)
    simulate.set_defaults(handler=_cmd_simulate)
    return parser


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (anything else is a usage error, exit 2)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _depth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 (0: the whole tree), got {text!r}")
    return value


def _add_verbosity(parser):
    parser.add_argument("--quiet", action="store_true", help="no progress display, warnings only")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def _set_up_logging(*, quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("jax", "absl", "matplotlib", "PIL", "distributed", "numba", "rsciio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cmd_run(args, _extra):
    from motifgram.engine.pipeline import run

    _freeze_imports(args)
    out = run(args.spec, out_dir=args.out, force=args.force, quiet=args.quiet)
    print(out)


def _cmd_validate(args, _extra):
    from motifgram.engine.spec import load_spec

    spec = load_spec(args.spec)
    print(f"{args.spec}: ok ({len(spec.inputs)} input{'s' if len(spec.inputs) != 1 else ''})")


def _cmd_schema(_args, _extra):
    from motifgram.engine.spec import json_schema

    print(json.dumps(json_schema(), indent=2))


def _cmd_show(args, _extra):
    from motifgram.engine.show import show_grammar

    depth = {} if args.depth is None else {"depth": args.depth}
    print(show_grammar(args.path, tree_of=args.tree, top=args.top, **depth))


def _cmd_parse(args, _extra):
    from motifgram.engine.pipeline import parse_with_grammar

    _freeze_imports(args)
    out = parse_with_grammar(
        args.grammar, args.image, out_dir=args.out, pixel_size_nm=args.pixel_size, force=args.force
    )
    print(out)


def _cmd_compare(args, _extra):
    from motifgram.grammar.compare import compare
    from motifgram.grammar.table import format_table

    from motifgram.engine.outputs import write_json

    references = {}
    for text in args.reference:
        label, sep, path = text.partition("=")
        if not sep or not label or not path:
            raise MotifgramError(f"--reference {text!r}: write it as LABEL=PATH (a run directory or grammar file)")
        references[label] = Path(path)
    for path in [*args.items, *references.values()]:
        if not path.exists():
            raise MotifgramError(f"{path}: no such run directory or grammar file; give a run directory written by "
                                 "'motifgram run' or a grammar.txt")
    tokens = args.tokens
    if tokens not in ("auto", "joint", "own"):
        tokens = Path(tokens)
        if not tokens.exists():
            raise MotifgramError(f"--tokens {tokens}: no such run directory or tokens.npz; give auto, joint, own or "
                                 "the run directory whose token model the comparison should use")
    result = compare(args.items, references=references or None, tokens=tokens,
                     levels=[level for text in args.levels for level in text.split(",") if level])
    print(format_table(result))
    if args.json:
        write_json(args.json, result.to_json())


def _cmd_report(args, _extra):
    from motifgram.engine.report import write_report

    print(write_report(args.run_dir))


def _cmd_simulate(args, extra):
    import numpy as np

    from motifgram.engine.simulate import simulate

    options = _options_from_flags(extra)
    sim = simulate(args.kind, size=args.size, seed=args.seed, **options)
    suffix = args.out.suffix.lower()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(args.out, sim.image)
    elif suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(args.out, sim.image)
    else:
        raise MotifgramError(f"--out {args.out}: write .npy or .tif")
    if args.truth:
        sim.truth.to_files(args.truth)
    print(f"{args.out}: {len(sim.truth.xy)} atoms, pixel size {sim.pixel_size_nm:.4g} nm")


def _options_from_flags(extra: list[str]) -> dict:
    """Turn ``--stone-wales-density 0.01 --twist 4`` into ``{"stone_wales_density": 0.01, "twist": 4.0}``."""
    options, i = {}, 0
    while i < len(extra):
        flag = extra[i]
        if not flag.startswith("--") or i + 1 >= len(extra):
            raise MotifgramError(f"simulate: expected '--option value' pairs, got '{' '.join(extra[i:])}'")
        options[flag[2:].replace("-", "_")] = _scalar(extra[i + 1])
        i += 2
    return options


def _scalar(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


if __name__ == "__main__":
    sys.exit(main())
