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
    """The run: ``(key, logN, logD, logU, fam, log_y, mask, centring) -> (draws, *FIELDS, log_joint)``.

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

    def chain(key, logN, logD, logU, fam, log_y, mask, centring):
        args = (logN, logD, logU, fam)
        kwargs = {"log_y": log_y, "obs_mask": mask, "centring": centring}
        state = kernel.init(key, cfg.warmup, None, model_args=args, model_kwargs=kwargs)
        constrain = kernel.postprocess_fn(args, kwargs)

        def record(s):
            values = constrain(s.z)
            # the joint of all rows, as inference.jax_log_joint (the prior for psense)
            lj = log_density(model, args, {"log_y": log_y, "centring": centring}, values)[0]
            return ({k: values[k] for k in sites}, *(getattr(s, f) for f in FIELDS), lj)

        if batched:  # init with a batch of keys already made the kernel's sample vmapped
            record = jax.vmap(record)

        def step(s, _):
            s = kernel.sample(s, args, kwargs)
            return s, record(s)

        # one loop over warmup and draws, the warmup's collected and dropped: the NUTS kernel
        # is compiled once (two loops compiled it twice: a larger program, slower to load)
        final, out = lax.scan(step, state, None, length=cfg.warmup + cfg.draws)
        return jax.tree.map(lambda x: x[cfg.warmup:], out), final_state(final)

    return chain


def final_state(state) -> dict:
    """Where a chain ended and what its warmup learned: the start of a later run
    (``run_cuts``). The inverse mass matrix is numpyro's single block over all sites."""
    (inverse_mass,) = state.adapt_state.inverse_mass_matrix.values()
    return {"z": state.z, "step_size": state.adapt_state.step_size, "inverse_mass": inverse_mass}


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

        def swapped(keys, *data):
            out, warm = run_all(keys, *data)
            return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), out), warm

        return jax.jit(swapped)
    chain = _chain_fn(spec, cfg)
    if method == "parallel":
        def one(key, *data):  # shard_map hands each device a block of one chain
            return jax.tree.map(lambda x: x[None], chain(key[0], *data))

        rep = PartitionSpec()
        return jax.jit(jax.shard_map(one, mesh=_mesh(cfg.chains), in_specs=(PartitionSpec("chain"),) + (rep,) * 7,
                                     out_specs=PartitionSpec("chain"), check_vma=False))
    return jax.jit(lambda keys, *data: jax.lax.map(lambda k: chain(k, *data), keys))


def _program(spec, cfg, n_rows: int, method: str, example: tuple, build: Callable | None = None,
             tag: str = "", keyed=None) -> Callable:
    """The compiled run, from this process, from the store, or traced and exported now.

    ``build`` (default ``_build``) makes the jitted function; ``tag`` names what it runs
    beyond the spec and settings (the internal cuts' program) in the key; ``keyed`` is the
    spec as the key sees it (``inference.centring_input``: centring weights are an input)."""
    import jax
    from jax import export

    key = program_key(keyed or spec, cfg, n_rows, method, jax.device_count()) + tag
    key = hashlib.sha256(key.encode()).hexdigest() if tag else key
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
        exported = export.export((build or _build)(spec, cfg, method))(*example)
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

    from .inference import centring_input, model_args

    log_y = np.log(data.loss).astype(np.float32)
    mask = np.ones(data.n_rows, bool) if obs_mask is None else np.asarray(obs_mask, bool)
    keyed, centring = centring_input(spec)
    inputs: list[Any] = [chain_keys(cfg.seed, cfg.chains), *model_args(data), log_y, mask, centring]
    if method == "parallel":
        mesh = _mesh(cfg.chains)
        shardings = [NamedSharding(mesh, PartitionSpec("chain"))] + [NamedSharding(mesh, PartitionSpec())] * 7
        inputs = [jax.device_put(x, s) for x, s in zip(inputs, shardings, strict=True)]
    fn = _program(spec, cfg, data.n_rows, method, tuple(inputs), keyed=keyed)
    (draws, *fields, log_joint), warm = fn(*inputs)
    samples = {k: np.asarray(v) for k, v in draws.items()}
    extra = {k: np.asarray(v) for k, v in zip(FIELDS, fields, strict=True)}
    extra["log_joint"] = np.asarray(log_joint)
    extra["warm"] = jax.tree.map(np.asarray, warm)
    return samples, extra


# --------------------------------------------------------------------------- #
# The internal leave-future-out cuts of bayescale.discrepancy, in one program   #
# --------------------------------------------------------------------------- #


def _cut_chain_fn(spec, cfg):
    """One chain on one cut: ``(key, z0, step_size, inverse_mass, *data, mask) -> (draws, diverging, steps)``.

    Starts at ``z0`` (where a chain of the full fit ended) with that chain's step size and
    inverse mass matrix, which the warmup (``cfg.warmup`` steps, numpyro's windowed
    adaptation) adapts to the cut: its posterior is wider than the full fit's where the
    held-out runs pinned it (xLSTM ladder, 40% cut: ~1000 leapfrog steps per draw with the
    full fit's mass matrix kept, ~60-120 adapted over 300 steps). ``mask`` holds the cut's
    training runs.
    """
    import jax
    from jax import lax
    from numpyro.infer import NUTS

    from .inference import init_strategy, make_model, posterior_sites

    model = make_model(spec)
    sites = posterior_sites(spec)

    def chain(key, z0, step_size, inverse_mass, logN, logD, logU, fam, log_y, centring, mask):
        args = (logN, logD, logU, fam)
        kwargs = {"log_y": log_y, "obs_mask": mask, "centring": centring}
        kernel = NUTS(model, dense_mass=cfg.dense_mass, target_accept_prob=cfg.target_accept,
                      max_tree_depth=cfg.max_tree_depth, init_strategy=init_strategy(), step_size=step_size,
                      inverse_mass_matrix={tuple(sorted(z0)): inverse_mass})
        state = kernel.init(key, cfg.warmup, init_params=z0, model_args=args, model_kwargs=kwargs)
        constrain = kernel.postprocess_fn(args, kwargs)

        def step(s, _):
            s = kernel.sample(s, args, kwargs)
            values = constrain(s.z)
            return s, ({k: values[k] for k in sites}, s.diverging, s.num_steps)

        out = lax.scan(step, state, None, length=cfg.warmup + cfg.draws)[1]
        return jax.tree.map(lambda x: x[cfg.warmup:], out)

    return chain


def _build_cuts(spec, cfg, method: str):
    """The jitted cut chains over slots (``cfg.chains`` of them): parallel, vectorized or sequential."""
    import jax
    from jax.sharding import PartitionSpec

    chain = _cut_chain_fn(spec, cfg)
    if method == "parallel":
        def one(key, z0, ss, im, *data_and_mask):
            *data, mask = data_and_mask
            squeeze = jax.tree.map(lambda x: x[0], (key, z0, ss, im, mask))
            out = chain(*squeeze[:4], *data, squeeze[4])
            return jax.tree.map(lambda x: x[None], out)

        per, rep = PartitionSpec("chain"), PartitionSpec()
        return jax.jit(jax.shard_map(one, mesh=_mesh(cfg.chains), in_specs=(per,) * 4 + (rep,) * 6 + (per,),
                                     out_specs=per, check_vma=False))
    if method == "vectorized":
        return jax.jit(jax.vmap(chain, in_axes=(0, 0, 0, 0) + (None,) * 6 + (0,)))
    return jax.jit(lambda k, z, ss, im, *rest: jax.lax.map(
        lambda a: chain(*a[:4], *rest[:6], a[4]), (k, z, ss, im, rest[6])))


def run_cuts(spec, data, cfg, method: str, masks: np.ndarray, warm: dict) -> list[tuple[dict, np.ndarray]]:
    """Sample the posterior on each row mask in ``masks`` (cuts x rows) in one program.

    ``cfg.chains`` slots run at once; slot ``i`` samples cut ``i % len(masks)`` from where
    chain ``i % chains`` of the full fit ended (``warm``: ``run``'s ``extra["warm"]``), so with
    4 slots and 4 cuts every cut gets one chain. ``cfg.warmup`` steps adapt step size and
    mass matrix from the full fit's. Returns, per cut, its draws ``{site: (chains_of_cut,
    draws, ...)}``, divergences and leapfrog steps ``(chains_of_cut, draws)``.
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    from .inference import centring_input, model_args

    masks = np.asarray(masks, bool)
    n_cuts, slots = masks.shape[0], cfg.chains
    if slots < n_cuts:
        raise ValueError(f"{n_cuts} cuts need at least as many chains, got {slots}")
    keyed, centring = centring_input(spec)
    cut_of = np.arange(slots) % n_cuts
    source = np.arange(slots) % np.asarray(warm["step_size"]).shape[0]
    z0 = {k: np.asarray(v)[source] for k, v in warm["z"].items()}
    inputs: list[Any] = [chain_keys(cfg.seed, slots), z0, np.asarray(warm["step_size"])[source],
                         np.asarray(warm["inverse_mass"])[source], *model_args(data),
                         np.log(data.loss).astype(np.float32), centring, masks[cut_of]]
    if method == "parallel":
        mesh = _mesh(slots)
        per, rep = NamedSharding(mesh, PartitionSpec("chain")), NamedSharding(mesh, PartitionSpec())
        inputs = [jax.device_put(x, s) for x, s in zip(inputs, [per] * 4 + [rep] * 6 + [per], strict=True)]
    fn = _program(spec, cfg, data.n_rows, method, tuple(inputs), build=_build_cuts, tag=f"cuts{n_cuts}",
                  keyed=keyed)
    draws, diverging, steps = fn(*inputs)
    draws = {k: np.asarray(v) for k, v in draws.items()}
    diverging, steps = np.asarray(diverging), np.asarray(steps)
    return [({k: v[cut_of == c] for k, v in draws.items()}, diverging[cut_of == c], steps[cut_of == c])
            for c in range(n_cuts)]

