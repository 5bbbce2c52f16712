"""JAX's process-wide settings that make fits fast, applied when bayescale first loads JAX.

Two settings decide how fast a fit runs and neither can be chosen per call:

* **One XLA CPU device per chain**, so NUTS runs the chains in parallel threads
  (``chain_method="parallel"``) rather than in lockstep (``"vectorized"``, where every
  step waits for the longest trajectory of any chain). JAX fixes the device count when
  its CPU backend starts, which is the first computation, not the import. numpyro's
  ``set_host_device_count`` does the same thing by hand.
* **The persistent compilation cache** (``enable_compilation_cache``), so a new
  process loads compiled samplers (and ``bayescale.nuts``' exported programs) from disk
  instead of compiling them again.

``prepare`` applies both the first time a fit (or a saved fit) needs JAX, whether the
caller is the CLI, a script or a notebook; ``import bayescale`` itself never loads JAX.
Measured side by side (``benchmarks/run.py``): the default Chinchilla fit from a plain
script took 47.7-58.9 s without these settings and 12.3 s with them.

Opt out with ``BAYESCALE_HOST_DEVICES=0`` (keep JAX's device count) and
``BAYESCALE_CACHE_DIR=off`` (no disk cache; a path moves it, default
``~/.cache/bayescale/jax``). A device count or cache folder the caller set already
(``XLA_FLAGS``, ``jax.config``) is left alone. When JAX's CPU backend started before
bayescale could set the device count, chains run vectorized (correct, about 2x slower on
2 cores) and ``prepare`` says so once, with the way out.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

__all__ = ["PerformanceNote", "cache_folder", "compilation_cache", "enable_compilation_cache", "prepare"]

#: host devices asked for at least (the default 4 chains)
MIN_DEVICES = 4
#: the persistent cache's folder unless ``BAYESCALE_CACHE_DIR`` names another
DEFAULT_CACHE = Path.home() / ".cache" / "bayescale" / "jax"
_DONE: set[str] = set()


class PerformanceNote(UserWarning):
    """A setting that makes fits slower than they could be, and how to change it."""


def cache_folder() -> Path | None:
    """The persistent cache folder bayescale uses (None when ``BAYESCALE_CACHE_DIR=off``)."""
    value = os.environ.get("BAYESCALE_CACHE_DIR", "")
    if value.lower() in ("off", "0", "none", "false"):
        return None
    return Path(value) if value else DEFAULT_CACHE


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Turn on JAX's persistent compilation cache and return its folder.

    Fits of the same model on tables of the same shape compile to the same
    program; with the cache, a repeat fit loads it from disk instead of
    compiling again (measured here: ~11 s -> ~2.3 s for a small Chinchilla fit).
    The exported NUTS programs of ``bayescale.nuts`` are kept in a subfolder, so a
    repeat fit in a new process skips tracing the sampler too.
    This changes global JAX configuration, so ``import bayescale`` never does it:
    the first fit does, through ``prepare`` (opt out with
    ``BAYESCALE_CACHE_DIR=off``). Folder: ``path``, else ``$BAYESCALE_CACHE_DIR``, else
    ``~/.cache/bayescale/jax``.
    """
    import jax

    folder = Path(path) if path else (cache_folder() or DEFAULT_CACHE)
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge  # no public query that does not itself start the backend

    return bool(xla_bridge.backends_are_initialized())


def _host_devices(chains: int) -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("BAYESCALE_HOST_DEVICES", "") == "0" or "xla_force_host_platform_device_count" in flags:
        return
    if _backend_started():
        import jax

        if jax.local_device_count() < chains and "note" not in _DONE:
            _DONE.add("note")
            warnings.warn(
                f"JAX started with {jax.local_device_count()} CPU device(s) before bayescale could ask for "
                f"{chains}: chains run vectorized (about 2x slower on 2 cores); call "
                f"numpyro.set_host_device_count({chains}) before your first JAX computation",
                PerformanceNote, stacklevel=3)
        return
    count = max(chains, MIN_DEVICES)
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def compilation_cache() -> None:
    """Turn on the persistent compilation cache (module docstring) unless opted out."""
    folder = cache_folder()
    if folder is None or "cache" in _DONE:
        return
    _DONE.add("cache")
    if "jax" in sys.modules:
        import jax

        if jax.config.jax_compilation_cache_dir:  # the caller chose a folder
            return
        enable_compilation_cache(folder)
        return
    # JAX reads these when it is imported; setting them here keeps JAX unloaded until needed
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: fits still run, compiling every time
        return
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def prepare(chains: int = MIN_DEVICES) -> None:
    """Apply the fast settings (module docstring) before bayescale's first JAX computation.

    Parameters
    ----------
    chains : int
        Chains the coming fit runs: the host devices asked for (at least 4).
    """
    _host_devices(int(chains))
    compilation_cache()
