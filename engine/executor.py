"""Where per-micrograph work runs: in this process, in a local process pool, or on a Dask cluster.

Every executor maps a picklable top-level function over tasks and yields the results in task order, so the
outputs of a run do not depend on which executor computed them.
"""

import collections
import itertools
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

from motifgram.engine.errors import MotifgramError

__all__ = ["open_executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "LOCAL_POOL_MIN_TASKS"]

log = logging.getLogger(__name__)

#: With ``workers: auto`` a local run uses a process pool only from this many micrographs on: a new process
#: imports JAX and compiles the kernels (seconds), which a few micrographs do not repay.
LOCAL_POOL_MIN_TASKS = 4


#: Tasks submitted ahead per worker: enough to keep every worker busy while results are read in task order,
#: few enough that a run's pending arguments and finished results never pile up in memory.
IN_FLIGHT_PER_WORKER = 4


def _windowed_map(submit, cancel, fn, iterables, *, window: int):
    """Results of ``fn`` over ``zip(*iterables)`` in task order, at most ``window`` tasks submitted at a time.

    A result is dropped by the executor as soon as it is yielded (no list of futures keeps every result
    of a pass alive); on an exception or when the caller stops early, the pending tasks are cancelled.
    """
    tasks = zip(*iterables)
    pending = collections.deque(submit(fn, *args) for args in itertools.islice(tasks, window))
    try:
        while pending:
            result = pending.popleft().result()
            pending.extend(submit(fn, *args) for args in itertools.islice(tasks, 1))
            yield result
            del result
    finally:
        for future in pending:
            cancel(future)


class SerialExecutor:
    """Runs every task in this process, one after another."""

    name = "serial"
    workers = 1

    def map(self, fn, *iterables):
        return map(fn, *iterables)


#: Set in each worker of the local pool and of a local Dask cluster before it imports JAX: one compute thread per
#: worker process, so that ``workers`` processes share the cores instead of each running a thread per core
#: (oversubscription).
WORKER_ENVIRONMENT = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def _single_threaded_worker():
    os.environ.update(WORKER_ENVIRONMENT)


class ProcessExecutor:
    """A local pool of ``workers`` processes (spawned: JAX must not be forked after it started)."""

    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_single_threaded_worker
        )

    def map(self, fn, *iterables):
        return _windowed_map(self._pool.submit, lambda future: future.cancel(), fn, iterables,
                             window=IN_FLIGHT_PER_WORKER * self.workers)

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks on a Dask cluster: a scheduler at ``address``, or a new ``LocalCluster`` of ``workers`` processes."""

    name = "dask"

    def __init__(self, workers: int, address: str | None):
        import dask
        from distributed import Client, LocalCluster

        self._cluster = None
        if address is None:
            # Dask's nannies start their workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap
            # threshold: every large array is then a new mapping whose pages fault in again. Unset, a worker's
            # memory is managed as in the local pool's (a 1024^2 micrograph: 3.0-3.2 CPU s, 5.4-6.2 with it).
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                self._cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    env=WORKER_ENVIRONMENT,
                )
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(address, timeout=30)
            except OSError as exc:
                raise MotifgramError(
                    f"engine.address: cannot reach the Dask scheduler at {address} ({exc}); start it "
                    "(dask scheduler) or remove engine.address to use a local cluster"
                ) from exc
        self.workers = len(self._client.scheduler_info().get("workers", {})) or workers

    def map(self, fn, *iterables):
        return _windowed_map(lambda *args: self._client.submit(*args, pure=False), lambda future: future.cancel(),
                             fn, iterables, window=IN_FLIGHT_PER_WORKER * self.workers)

    def close(self):
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


@contextmanager
def open_executor(engine, n_tasks: int):
    """The executor an ``engine`` spec section asks for, closed on exit.

    Parameters
    ----------
    engine : EngineSpec
        ``executor`` ("local" or "dask"), ``workers`` (None = auto) and ``address``.
    n_tasks : int
        Number of micrographs; ``local`` with ``workers: auto`` runs in this process below
        :data:`LOCAL_POOL_MIN_TASKS` micrographs, else in a pool sized to the cores.
    """
    cores = os.cpu_count() or 1
    if engine.executor == "dask":
        executor = DaskExecutor(engine.workers or min(cores, max(n_tasks, 1)), engine.address)
    else:
        workers = engine.workers or (min(cores, n_tasks) if n_tasks >= LOCAL_POOL_MIN_TASKS else 1)
        executor = ProcessExecutor(workers) if workers > 1 else SerialExecutor()
    log.info("executor: %s with %d worker(s)", executor.name, executor.workers)
    try:
        yield executor
    finally:
        close = getattr(executor, "close", None)
        if close is not None:
            close()
