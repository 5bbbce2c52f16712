"""Where the tasks of a sweep run: in-process, a local process pool, or Ray.

Three executors behind one interface, :func:`run_tasks`, which calls
``fn(shared, task)`` for every task and yields ``(index, value, error)`` as tasks
*finish* (not in submission order), so a caller can stream results to disk:

* ``"local"`` (default): one after another in this process; no extra dependency.
  Compiled samplers are kept between tasks of the same shape
  (``bayescale.nuts``), so this is also the fastest choice for a few fits.
* ``"processes"``: :class:`concurrent.futures.ProcessPoolExecutor` with the
  ``"spawn"`` start method and ``os.cpu_count()`` workers by default. Spawn, not
  fork: a forked child would inherit the parent's JAX runtime (its thread pools
  and device count, which cannot change after JAX starts), and forking a process
  that runs XLA threads can deadlock.
* ``"ray"``: one ``ray.remote`` task per item (``num_cpus=1``, no retries: a
  failed fit fails again). ``address=None`` starts a local Ray instance with
  ``num_cpus=workers`` and shuts it down afterwards; ``address="auto"`` (on a node
  of a running cluster) or ``"ray://head:10001"`` connects to a cluster, whose
  workers need bayescale installed. An already initialised Ray is used as is and
  left running. Ray is imported only here, inside the call.

``shared`` (the runs table and the settings common to every task) is shipped once
per worker process with Ray (``ray.put``) and with every task otherwise (it is a
few kilobytes for a few hundred runs).

An exception inside ``fn`` or a lost worker becomes ``error`` (one line) for that
task only; the other tasks go on.

Each worker process pins what decides the numbers before JAX loads
(:func:`pin_worker_environment`): one host CPU device and float32. Together with
the fixed chain method and seeds that :mod:`bayescale.sweeping` sets per task, every
executor computes bit-identical draws.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["EXECUTORS", "check_executor", "pin_worker_environment", "pinned", "run_tasks"]

#: NUTS chain method of every task. Fixed so that every worker runs the same program
#: whatever its device count. "vectorized" (chains in lockstep in one compiled program)
#: rather than "sequential": both sample a 4-chain Chinchilla fit in ~19 s here, but
#: sequential compiles per-chain pieces (cold fit 34 s against 27 s) and a sweep pays
#: compilation once per task shape and worker. Not "parallel": a sweep's parallelism
#: is across tasks, one core each.
CHAIN_METHOD = "vectorized"
#: Executor names accepted by ``bs.sweep``, ``bs.backtest`` and ``run_sbc``.
EXECUTORS: tuple[str, ...] = ("local", "processes", "ray")
RAY_MISSING = 'executor="ray" needs Ray, an optional extra: pip install "bayescale[ray]"'


def check_executor(executor: str, workers: int | None = None, address: str | None = None) -> int:
    """Validate the executor settings before any task runs; return the worker count.

    Raises
    ------
    ValueError
        Unknown executor, a worker count below 1, or ``address`` without Ray.
    ImportError
        ``executor="ray"`` without Ray installed (names ``pip install "bayescale[ray]"``).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if address is not None and executor != "ray":
        raise ValueError(f"address= is for executor='ray', not {executor!r}")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ImportError(RAY_MISSING) from None
    if executor == "local":
        return 1
    return int(workers) if workers is not None else (os.cpu_count() or 1)


def pin_worker_environment() -> None:
    """Fix what decides a worker's numbers, before JAX is imported in it.

    One XLA host device (a sweep's parallelism is across tasks, not chains) and
    float32 (``JAX_ENABLE_X64=0``, the package default). JAX reads both when it
    starts; in a process where JAX is already running this does nothing, and the
    task itself pins float32 in a scoped context (``bayescale.sweeping``).
    """
    if "jax" in sys.modules:
        return
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    os.environ["XLA_FLAGS"] = " ".join([*flags, "--xla_force_host_platform_device_count=1"])
    os.environ["JAX_ENABLE_X64"] = "0"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


@contextlib.contextmanager
def pinned(cache_dir: str | None = None) -> Iterator[None]:
    """The context every task runs in, whatever the executor.

    Pins the worker environment (:func:`pin_worker_environment`), float32 for the
    task (``jax.enable_x64(False)``, scoped: the caller's setting is restored),
    silences warnings (a sweep reports diagnostics in its table, not as hundreds of
    warnings), and turns on JAX's persistent compilation cache at ``cache_dir``
    unless the process already has one: a worker then loads a sampler another
    worker compiled instead of compiling it again (same program, same numbers).
    """
    pin_worker_environment()
    import jax

    if not jax.config.jax_compilation_cache_dir:
        from .inference import enable_compilation_cache

        enable_compilation_cache(cache_dir)
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def current_cache_dir() -> str | None:
    """This process's JAX compilation cache folder, if JAX is loaded and has one."""
    if "jax" not in sys.modules:
        return None
    import jax

    folder = jax.config.jax_compilation_cache_dir
    return str(Path(folder)) if folder else None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_tasks(
    fn: Callable[[Any, Any], Any],
    tasks: Sequence[Any],
    shared: Any = None,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
) -> Iterator[tuple[int, Any, str | None]]:
    """Run ``fn(shared, task)`` for every task; yield ``(index, value, error)`` as each finishes.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled by reference for worker processes).
    tasks : sequence
        Picklable task descriptions; ``index`` in the output is the position here.
    shared : object
        Picklable data common to every task (the runs table, settings).
    executor : {"local", "processes", "ray"}
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); for Ray without ``address``,
        the CPUs of the local instance. Ignored by ``"local"``.
    address : str, optional
        Ray cluster address (``"auto"``, ``"ray://head:10001"``); only with ``"ray"``.

    Yields
    ------
    (int, object, str or None)
        Task index, ``fn``'s return value (None on error), and the error as one
        line (``"ValueError: ..."``) or None.
    """
    n_workers = check_executor(executor, workers, address)
    if not tasks:
        return
    if executor == "local":
        yield from _run_local(fn, tasks, shared)
    elif executor == "processes":
        yield from _run_processes(fn, tasks, shared, n_workers)
    else:
        yield from _run_ray(fn, tasks, shared, n_workers, address)


def _run_local(fn: Callable, tasks: Sequence[Any], shared: Any) -> Iterator[tuple[int, Any, str | None]]:
    for i, task in enumerate(tasks):
        try:
            value = fn(shared, task)
        except Exception as exc:  # one task's failure is its row, never the sweep's end
            yield i, None, _one_line(exc)
        else:
            yield i, value, None


def _run_processes(fn: Callable, tasks: Sequence[Any], shared: Any, workers: int) -> Iterator[tuple[int, Any, str | None]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=pin_worker_environment)
    try:
        futures = {pool.submit(fn, shared, task): i for i, task in enumerate(tasks)}
        for fut in as_completed(futures):
            exc = fut.exception()
            yield futures[fut], (None if exc else fut.result()), (_one_line(exc) if exc else None)
    finally:
        # an interrupted sweep (the generator closed early) drops the queued tasks
        pool.shutdown(wait=True, cancel_futures=True)


def _ray_entry(fn: Callable, shared: Any, task: Any) -> Any:
    pin_worker_environment()
    return fn(shared, task)


def _run_ray(fn: Callable, tasks: Sequence[Any], shared: Any, workers: int,
             address: str | None) -> Iterator[tuple[int, Any, str | None]]:
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is not None:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers, **kwargs)
        started = True
    pending: list[Any] = []
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_entry)
        shared_ref = ray.put(shared)
        refs = {remote.remote(fn, shared_ref, task): i for i, task in enumerate(tasks)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    value = ray.get(ref)
                except Exception as exc:
                    # RayTaskError wraps the worker's exception: report that one, in one line
                    cause = getattr(exc, "cause", None)
                    yield refs[ref], None, _one_line(cause if isinstance(cause, BaseException) else exc)
                else:
                    yield refs[ref], value, None
    finally:
        for ref in pending:  # interrupted: drop what has not run (a cluster outlives this call)
            ray.cancel(ref)
        if started:
            ray.shutdown()
