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
  that runs XLA threads can deadlock. The workers do not run the caller's main
  module (plain spawn runs it again in every worker), so a sweep works from any
  script, with or without an ``if __name__ == "__main__":`` guard, from ``python -c``
  and from code piped into ``python -``. Only when ``fn``, ``shared`` or a task
  refers to something defined in ``__main__`` do the workers import the main module,
  as plain spawn does; where they cannot (code from stdin, ``-c`` or a notebook, or
  a call outside the guard of a script, which every worker would run again),
  :class:`ExecutorError` says so before any worker starts.
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

import ast
import contextlib
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import multiprocessing.reduction
import os
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["EXECUTORS", "ExecutorError", "check_executor", "pin_worker_environment", "pinned", "run_tasks"]

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


class ExecutorError(ValueError):
    """The tasks cannot run on the chosen executor; raised before any task starts.

    For ``executor="processes"``: the function or the data cannot be sent to a
    worker process (unpicklable), or they refer to something defined in
    ``__main__`` that the workers cannot import. The message, one line, says what
    to change.
    """


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
        from .runtime import enable_compilation_cache

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

    The settings are checked when this is called, before any task runs; the tasks
    run as the returned iterator is consumed.

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

    Returns
    -------
    iterator of (int, object, str or None)
        Task index, ``fn``'s return value (None on error), and the error as one
        line (``"ValueError: ..."``) or None, in the order the tasks finish.

    Raises
    ------
    ValueError, ImportError
        Bad executor settings (:func:`check_executor`).
    ExecutorError
        ``executor="processes"`` with a ``fn`` or ``shared`` that cannot be pickled,
        or with ``fn``, ``shared`` or a task that refers to ``__main__`` where worker
        processes cannot import it.
    """
    n_workers = check_executor(executor, workers, address)
    if not tasks:
        return iter(())
    if executor == "local":
        return _run_local(fn, tasks, shared)
    if executor == "processes":
        context = _process_context(fn, tasks, shared)
        return _run_processes(fn, tasks, shared, n_workers, context)
    return _run_ray(fn, tasks, shared, n_workers, address)


def _run_local(fn: Callable, tasks: Sequence[Any], shared: Any) -> Iterator[tuple[int, Any, str | None]]:
    for i, task in enumerate(tasks):
        try:
            value = fn(shared, task)
        except Exception as exc:  # one task's failure is its row, never the sweep's end
            yield i, None, _one_line(exc)
        else:
            yield i, value, None


def _run_processes(fn: Callable, tasks: Sequence[Any], shared: Any, workers: int,
                   context: multiprocessing.context.BaseContext) -> Iterator[tuple[int, Any, str | None]]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context,
                               initializer=pin_worker_environment)
    try:
        futures = {pool.submit(fn, shared, task): i for i, task in enumerate(tasks)}
        for fut in as_completed(futures):
            exc = fut.exception()
            yield futures[fut], (None if exc else fut.result()), (_one_line(exc) if exc else None)
    finally:
        # an interrupted sweep (the generator closed early) drops the queued tasks
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# Worker processes that do not run the caller's main module
# --------------------------------------------------------------------------------------------

#: Serialises the moments when ``__main__`` is hidden (process starts, from any thread).
_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Hide ``__main__.__file__`` and ``__spec__`` while a spawned process is started.

    Spawn tells a child to run the parent's main module, as ``__mp_main__``, when
    the module has a spec or a file (:func:`multiprocessing.spawn.get_preparation_data`).
    That runs an unguarded script's sweep again in every worker, whose bootstrap then
    fails, and cannot work at all for code from stdin. The tasks of this module need
    only importable functions, so the children are started without it. The start
    reads these attributes synchronously, in the starting thread; the lock keeps two
    concurrent starts from restoring each other's hidden values.
    """
    main = sys.modules["__main__"]
    names = ("__file__", "__spec__")
    with _MAIN_LOCK:
        saved = {k: vars(main)[k] for k in names if k in vars(main)}
        vars(main).pop("__file__", None)
        main.__spec__ = None
        try:
            yield
        finally:
            for k in names:
                vars(main).pop(k, None)
            vars(main).update(saved)


class _NoMainProcess(multiprocessing.context.SpawnProcess):
    """A spawned process whose preparation does not import the parent's main module."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        with _main_hidden():
            return multiprocessing.context.SpawnProcess._Popen(process_obj)


class _NoMainContext(multiprocessing.context.SpawnContext):
    """The ``"spawn"`` context with :class:`_NoMainProcess` workers."""

    Process = _NoMainProcess


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


class _MainFinder(multiprocessing.reduction.ForkingPickler):
    """Pickles as the pool does, noting every function or class from ``__main__`` that the
    pickle refers to by name (an instance's class included), which a worker must import."""

    def __init__(self) -> None:
        super().__init__(_Discard())
        self.found: list[str] = []

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type | types.FunctionType) and obj.__module__ == "__main__":
            self.found.append(obj.__qualname__)
        return NotImplemented


def _main_references(fn: Callable, tasks: Sequence[Any], shared: Any) -> list[str]:
    """Names from ``__main__`` that ``fn``, ``shared`` or the tasks refer to.

    Raises :class:`ExecutorError` when ``fn`` or ``shared`` cannot be pickled (every
    task would fail); a task that cannot be pickled fails alone, as its row.
    """
    found: list[str] = []
    for what, obj in (("fn", fn), ("shared", shared)):
        finder = _MainFinder()
        try:
            finder.dump(obj)
        except Exception as exc:
            label = f"fn {_describe(fn)}" if what == "fn" else "the shared data"
            raise ExecutorError(f'executor="processes" cannot send {label} to worker processes '
                                f'({_one_line(exc)}); use a module-level function and picklable data, '
                                f'or executor="local"') from None
        found += finder.found
    for task in tasks:
        finder = _MainFinder()
        with contextlib.suppress(Exception):
            finder.dump(task)
        found += finder.found
    return list(dict.fromkeys(found))


def _describe(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if isinstance(name, str) and isinstance(module, str) else repr(fn)


def _main_path() -> str | None:
    """The file spawned children would run as the main module, if there is one."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    path = getattr(spec, "origin", None) if getattr(spec, "name", None) else getattr(main, "__file__", None)
    if not isinstance(path, str):
        return None
    if not os.path.isabs(path) and multiprocessing.process.ORIGINAL_DIR is not None:
        path = os.path.join(multiprocessing.process.ORIGINAL_DIR, path)
    return path if os.path.isfile(path) else None


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))


def _unguarded_call(path: str) -> bool:
    """Whether this call comes from the main module's top-level code outside an
    ``if __name__ == "__main__":`` block: a worker that runs the module runs the call too.

    False where it cannot tell (no such frame in the stack, an unreadable source).
    """
    main_globals = vars(sys.modules["__main__"])
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_globals is main_globals and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return False
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return False
    return not any(isinstance(node, ast.If) and _is_main_guard(node.test)
                   and node.body[0].lineno <= line <= (node.body[-1].end_lineno or line)
                   for node in ast.walk(tree))


def _process_context(fn: Callable, tasks: Sequence[Any], shared: Any) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for these tasks, or :class:`ExecutorError` if none can run them."""
    names = _main_references(fn, tasks, shared)
    if not names:
        return _NoMainContext()
    what = f"{names[0]} is defined in __main__"
    path = _main_path()
    if path is None:
        raise ExecutorError(f'executor="processes": {what}, which worker processes cannot import (code from stdin, '
                            f'-c or a notebook); define it in a module file, or use executor="local"')
    if _unguarded_call(path):
        raise ExecutorError(f'executor="processes": {what}, so every worker process runs {os.path.basename(path)} '
                            f'again, and with it this call; put the script\'s top-level code under '
                            f'if __name__ == "__main__":, or define {names[0]} in a module')
    return multiprocessing.get_context("spawn")


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
