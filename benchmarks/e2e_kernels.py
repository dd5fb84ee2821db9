"""What a new ``motifgram run`` process pays for its JAX kernels: traces, seconds tracing, lowering and compiling
(or reading the persistent cache), per kernel, from JAX's monitoring events.

    python benchmarks/e2e_kernels.py SPEC OUT    # runs `motifgram run SPEC --out OUT --force` in this process

Run it twice with the same ``XDG_CACHE_HOME`` (a first run fills the persistent cache and the exported kernels
of engine/kernelstore.py); the second is what a user's next micrograph pays. Remove ``.OUT.cache`` (the run's
per-micrograph results) between runs, or the detection and feature stages are read back rather than run.
"""

import collections
import sys
import time

import jax

EVENTS = ("jaxpr_trace_duration", "jaxpr_to_mlir_module_duration", "backend_compile_duration",
          "cache_retrieval_time_sec")


def main(spec: str, out: str) -> None:
    seconds = collections.defaultdict(lambda: collections.defaultdict(float))
    traces = collections.Counter()

    def on_duration(event, duration, **metadata):
        name, short = metadata.get("fun_name", "?"), event.rsplit("/", 1)[-1]
        seconds[name.removeprefix("jit(").removesuffix(")")][short] += duration
        traces[name] += short == "jaxpr_trace_duration"

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    from motifgram.engine.cli import main as cli

    start, cpu = time.perf_counter(), time.process_time()
    try:
        cli(["run", spec, "--out", out, "--force", "--quiet"])
    except SystemExit:
        pass
    print(f"run: wall {time.perf_counter() - start:.2f} s, CPU {time.process_time() - cpu:.2f} s")
    print("| kernel | traces | trace s | lower s | compile s | cache read s |\n|---|---|---|---|---|---|")
    total = collections.Counter()
    for name, row in sorted(seconds.items(), key=lambda item: -sum(item[1].values())):
        print(f"| `{name}` | {traces[name]} | " + " | ".join(f"{row[e]:.3f}" for e in EVENTS) + " |")
        total.update(row)
    print(f"| all | {sum(traces.values())} | " + " | ".join(f"{total[e]:.3f}" for e in EVENTS) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
