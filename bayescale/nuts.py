"""NUTS as one compiled program, exported next to JAX's compilation cache.

numpyro's ``MCMC.run`` traces its sampler in Python in every new process before JAX's
persistent compilation cache can serve the compiled program: for the Chinchilla model,
~0.5 s of tracing and ~0.3 s of lowering on 2 cores, a third of a warm fit. Here the
whole run (initialisation, warmup, draws, and each draw's log joint density) is one pure
function of the chain keys and the data, built from numpyro's own NUTS kernel with the
calls ``MCMC.run`` makes per chain (``init`` with the chain's key, ``sample`` warmup + draws
times, ``postprocess_fn``), so its draws equal ``MCMC.run``'s up to float32 rounding. The
function is serialised with ``jax.export`` into ``<compilation cache>/bayescale-programs``
(only when the persistent cache is on: the CLI, the benchmarks, the tests), and a warm
process deserialises it instead of tracing.

An exported program cannot carry host callbacks, so numpyro's progress bar cannot run
inside it: ``inference.run_nuts(progress=True)`` keeps ``MCMC.run``.

The key of a stored program covers everything it was built from: the model spec, the
sampler settings (not the seed: keys are an argument), the table's row count, the chain
method and devices, the versions of Python, JAX, jaxlib and numpyro, and a digest of
bayescale's own source, so an edited model is never served a stale program.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: compiled programs of this process, by key (``program_key``); oldest dropped first
_PROGRAMS: dict[str, Callable] = {}
_PROGRAM_CACHE_SIZE = 8
#: the extra fields collected per draw, as ``run_nuts`` returns them
FIELDS = ("diverging", "num_steps", "accept_prob", "energy")


@lru_cache(maxsize=1)
def _source_digest() -> str:
    """sha256 of bayescale's and its laws' source files (the model is built from them)."""
    from . import models

    h = hashlib.sha256()
    for folder in (Path(__file__).parent, Path(models.__file__).parent):
        for path in sorted(folder.rglob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import jax
    import jaxlib
    import numpyro

    return {"python": sys.version, "jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpyro": numpyro.__version__,
            # the float width in force here (``jax.enable_x64`` scopes it; the global flag would not say)
            "float": str(jax.dtypes.canonicalize_dtype(np.float64))}


def program_key(spec, cfg, n_rows: int, method: str, n_devices: int) -> str:
    """Hex digest naming the program for these settings (see the module docstring)."""
    payload = {"spec": spec.to_json(), "sampler": asdict(replace(cfg, seed=0)), "rows": n_rows,
               "method": method, "devices": n_devices, "versions": _versions(), "source": _source_digest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _store() -> Path | None:
    """Folder for exported programs, beside the persistent compilation cache (None when off)."""
    import jax

    cache = jax.config.jax_compilation_cache_dir
    return Path(cache) / "bayescale-programs" if cache else None


def _chain_fn(spec, cfg, batched: bool = False):
    """The run: ``(key, logN, logD, logU, fam, log_y, mask) -> (draws, *FIELDS, log_joint)``.

    One chain, or with ``batched`` all chains in lockstep (``key`` a batch of keys), the way
    ``MCMC.run`` vectorizes them: the kernel's ``init`` takes the batch of keys (and vmaps its
    own ``sample``); vmapping the whole run instead gives other (equally valid) chains.
    Outputs are ``(draws, ...)``, or ``(draws, chains, ...)`` when batched.
    """
    import jax
    from jax import lax
    from numpyro.infer.util import log_density

    from .inference import make_model, nuts_kernel, posterior_sites

    model = make_model(spec)
    kernel = nuts_kernel(model, cfg)
    sites = posterior_sites(spec)

    def chain(key, logN, logD, logU, fam, log_y, mask):
        args = (logN, logD, logU, fam)
        kwargs = {"log_y": log_y, "obs_mask": mask}
        state = kernel.init(key, cfg.warmup, None, model_args=args, model_kwargs=kwargs)
        constrain = kernel.postprocess_fn(args, kwargs)

        def record(s):
            values = constrain(s.z)
            # the joint of all rows, as inference.jax_log_joint (the prior for psense)
            lj = log_density(model, args, {"log_y": log_y}, values)[0]
            return ({k: values[k] for k in sites}, *(getattr(s, f) for f in FIELDS), lj)

        if batched:  # init with a batch of keys already made the kernel's sample vmapped
            record = jax.vmap(record)

        def step(s, _):
            s = kernel.sample(s, args, kwargs)
            return s, record(s)

        # one loop over warmup and draws, the warmup's collected and dropped: the NUTS kernel
        # is compiled once (two loops compiled it twice: a larger program, slower to load)
        out = lax.scan(step, state, None, length=cfg.warmup + cfg.draws)[1]
        return jax.tree.map(lambda x: x[cfg.warmup:], out)

    return chain


def _mesh(chains: int):
    import jax
    from jax.sharding import Mesh

    return Mesh(np.array(jax.devices()[:chains]), ("chain",))


def _build(spec, cfg, method: str):
    """The jitted run over all chains for ``method`` (parallel, vectorized or sequential)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec

    if method == "vectorized":
        run_all = _chain_fn(spec, cfg, batched=True)
        return jax.jit(lambda keys, *data: jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), run_all(keys, *data)))
    chain = _chain_fn(spec, cfg)
    if method == "parallel":
        def one(key, *data):  # shard_map hands each device a block of one chain
            return jax.tree.map(lambda x: x[None], chain(key[0], *data))

        rep = PartitionSpec()
        return jax.jit(jax.shard_map(one, mesh=_mesh(cfg.chains), in_specs=(PartitionSpec("chain"),) + (rep,) * 6,
                                     out_specs=PartitionSpec("chain"), check_vma=False))
    return jax.jit(lambda keys, *data: jax.lax.map(lambda k: chain(k, *data), keys))


def _program(spec, cfg, n_rows: int, method: str, example: tuple) -> Callable:
    """The compiled run, from this process, from the store, or traced and exported now."""
    import jax
    from jax import export

    key = program_key(spec, cfg, n_rows, method, jax.device_count())
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    store = _store()
    path = store / f"{key}.jaxexport" if store else None
    exported = None
    if path is not None and path.is_file():
        try:
            exported = export.deserialize(bytearray(path.read_bytes()))
        except Exception:  # a truncated or foreign file: build it again
            exported = None
    if exported is None:
        exported = export.export(_build(spec, cfg, method))(*example)
        if path is not None:
            from .io import atomic_path

            try:
                with atomic_path(path) as tmp:
                    tmp.write_bytes(exported.serialize())
            except OSError:  # a read-only cache folder: the program still runs, unsaved
                pass
    if len(_PROGRAMS) >= _PROGRAM_CACHE_SIZE:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    _PROGRAMS[key] = jax.jit(exported.call)
    return _PROGRAMS[key]


def clear() -> None:
    """Forget this process's compiled programs (``inference.release_compiled_if_crowded``)."""
    _PROGRAMS.clear()


def chain_keys(seed: int, chains: int):
    """The per-chain keys ``MCMC.run`` derives from ``PRNGKey(seed)`` (one chain: the key itself)."""
    import jax

    key = jax.random.PRNGKey(seed)
    return key[None] if chains == 1 else jax.random.split(key, chains)


def run(spec, data, cfg, method: str, obs_mask: np.ndarray | None = None) -> tuple[dict, dict]:
    """Sample with the compiled program; the return value of ``inference.run_nuts``."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    from .inference import model_args

    log_y = np.log(data.loss).astype(np.float32)
    mask = np.ones(data.n_rows, bool) if obs_mask is None else np.asarray(obs_mask, bool)
    inputs: list[Any] = [chain_keys(cfg.seed, cfg.chains), *model_args(data), log_y, mask]
    if method == "parallel":
        mesh = _mesh(cfg.chains)
        shardings = [NamedSharding(mesh, PartitionSpec("chain"))] + [NamedSharding(mesh, PartitionSpec())] * 6
        inputs = [jax.device_put(x, s) for x, s in zip(inputs, shardings, strict=True)]
    fn = _program(spec, cfg, data.n_rows, method, tuple(inputs))
    draws, *fields, log_joint = fn(*inputs)
    samples = {k: np.asarray(v) for k, v in draws.items()}
    extra = {k: np.asarray(v) for k, v in zip(FIELDS, fields, strict=True)}
    extra["log_joint"] = np.asarray(log_joint)
    return samples, extra
