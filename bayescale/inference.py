"""Law + hierarchy + likelihood -> a numpyro model; NUTS; -> arviz DataTree.

The model for a table of runs i with family f(i) is

    theta_f       ~ pooling(prior)                      (models/hierarchy.py)
    sigma         ~ HalfNormal(0.1)                     (models/likelihood.py)
    log L_i       ~ F(law.log_loss(theta_f(i); N_i, D_i, U_i), sigma)

with amplitudes sampled at the data's reference scale (models/base.py). The
same function, :func:`law_params`, maps sampled values to the law's
paper-convention parameters inside the model and over posterior draws when
predicting, so fitting and prediction cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .data import DataError, ScalingData
from .models import Law, LawContext, Prior, PriorError, get_law
from .models import hierarchy as hier
from .models.likelihood import SIGMA_PRIOR, Likelihood
from .runtime import enable_compilation_cache  # noqa: F401  (its public home before bayescale.runtime)


def _repair_numpyro_submodules() -> None:
    """Re-attach numpyro submodules to their parent packages.

    arviz_base imports numpyro through lazy_loader; when that happens before
    numpyro's own import (``import arviz_stats`` first), subpackages such as
    ``numpyro.distributions`` end up without their submodule attributes and
    numpyro's own ``numpyro.distributions.distribution.Unit`` lookup fails
    inside NUTS. Importing is idempotent, so this is safe either way.
    """
    import importlib

    for name in ("numpyro.distributions.distribution", "numpyro.infer.util", "numpyro.infer.reparam"):
        importlib.import_module(name)
    for name, module in list(sys.modules.items()):
        if name.startswith("numpyro.") and module is not None:
            parent, _, child = name.rpartition(".")
            if parent in sys.modules and not hasattr(sys.modules[parent], child):
                setattr(sys.modules[parent], child, module)


_repair_numpyro_submodules()


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines the statistical model, serialisable to JSON.

    Attributes
    ----------
    law : str
        Registry name of the law.
    priors : dict
        Sampled-site name -> Prior (law parameters, ``sigma``, ``tau_<s>``).
    fixed : dict
        Paper-convention name -> value held fixed (not sampled).
    pooling : dict
        Paper-convention name -> "complete" | "independent" | "partial".
    likelihood : str
    ctx : LawContext
        Reference scales of the data the model was built for.
    families : tuple of str
    centred : bool or dict
        How partially pooled values are sampled: centred (True), non-centred (False),
        or a centring weight per family for each sampled name
        (``models.hierarchy``; ``centring`` reads them off the runs).
    fixed_family : dict
        Paper-convention name -> {family: value} for parameters fixed in some
        families only (``fixed={"E[c4]": 1.869}``; independent pooling).
    """

    law: str
    priors: dict[str, Prior]
    fixed: dict[str, float]
    pooling: dict[str, str]
    likelihood: str
    ctx: LawContext
    families: tuple[str, ...]
    centred: bool | dict[str, tuple[float, ...]]
    law_options: dict[str, Any] = field(default_factory=dict)
    fixed_family: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def law_obj(self) -> Law:
        return get_law(self.law)

    @property
    def lik(self) -> Likelihood:
        return Likelihood(self.likelihood)

    def to_json(self) -> str:
        return json.dumps(
            {
                "law": self.law,
                "priors": {k: str(v) for k, v in self.priors.items()},
                "fixed": self.fixed,
                "pooling": self.pooling,
                "likelihood": self.likelihood,
                "ctx": vars(self.ctx),
                "families": list(self.families),
                "centred": self.centred,
                "law_options": self.law_options,
                "fixed_family": self.fixed_family,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        d = json.loads(text)
        return cls(
            law=d["law"],
            priors={k: Prior.parse(v) for k, v in d["priors"].items()},
            fixed={k: float(v) for k, v in d["fixed"].items()},
            pooling=dict(d["pooling"]),
            likelihood=d["likelihood"],
            ctx=LawContext(**d["ctx"]),
            families=tuple(d["families"]),
            centred=(bool(d["centred"]) if isinstance(d["centred"], bool)
                     else {k: tuple(float(c) for c in v) for k, v in d["centred"].items()}),
            law_options=dict(d.get("law_options", {})),
            fixed_family={k: {f: float(x) for f, x in v.items()} for k, v in d.get("fixed_family", {}).items()},
        )


def context(data: ScalingData) -> LawContext:
    """Reference scales: natural logs of the geometric means of N, D, U and C."""
    return LawContext(
        log_N0=float(np.mean(np.log(data.N))),
        log_D0=float(np.mean(np.log(data.D))),
        log_U0=float(np.mean(np.log(np.minimum(data.U, data.D)))),
        log_C0=float(np.mean(np.log(6.0 * data.N * data.D))),
    )


def flat_axes(data: ScalingData) -> frozenset[str]:
    """The axes (N, D, U) along which every family's runs share one value."""
    frame = pd.DataFrame({"N": data.N, "D": data.D, "U": np.minimum(data.U, data.D), "f": data.family_idx})
    counts = frame.groupby("f")[["N", "D", "U"]].nunique()
    return frozenset(a for a in ("N", "D", "U") if int(counts[a].max()) < 2)


def build_spec(
    law: str | Law,
    data: ScalingData,
    hierarchy: str | Mapping[str, str] = "auto",
    priors: Mapping[str, str | Prior] | None = None,
    fixed: Mapping[str, float] | None = None,
    likelihood: str = "student_t",
    centred: bool | Mapping[str, Any] | None = None,
) -> ModelSpec:
    """Check the user's settings against the law and assemble a ModelSpec.

    Loss-free: ``centred=None`` samples partially pooled values non-centred; ``bs.fit``
    replaces that by weights read off the runs' losses (``centring``).
    """
    law_obj = get_law(law)
    Likelihood(likelihood)
    global_fixed = {k: v for k, v in (fixed or {}).items() if not _FAMILY_KEY.match(k)}
    fixed_paper = _check_fixed(law_obj, global_fixed)
    pooling = hier.resolve(hierarchy, law_obj, data.n_families, fixed_paper, flat_axes=flat_axes(data))
    fixed_family = _check_family_fixed(law_obj, dict(fixed or {}), pooling, data.families)
    missing = [n for n in law_obj.required_fixed if n not in fixed_paper]
    if missing:
        helps = getattr(law_obj, "fixed_help", {})
        need = ", ".join(repr(m) + ": ..." for m in missing)
        why = "; ".join(f"{m} is {helps[m]}" for m in missing if m in helps)
        raise DataError(f"law {law_obj.name!r} needs fixed={{{need}}}" + (f": {why}" if why else ""))
    ctx = context(data)
    defaults = law_obj.default_priors(ctx)
    all_priors: dict[str, Prior] = {}
    for p in law_obj.params:
        if p.name in pooling:
            all_priors[p.sampled_name] = defaults[p.sampled_name]
            if pooling[p.name] == "partial":
                all_priors[f"tau_{p.sampled_name}"] = hier.TAU_PRIOR[p.support]
    all_priors["sigma"] = SIGMA_PRIOR
    # per-family priors (``"E[oscar]"``) are allowed for independently pooled parameters
    family_keys = {
        f"{p.sampled_name}[{fam}]"
        for p in law_obj.params
        if pooling.get(p.name) == "independent"
        for fam in data.families
        if fam not in fixed_family.get(p.name, {})
    }
    for key, value in (priors or {}).items():
        if key not in all_priors and key not in family_keys:
            hint = ""
            try:
                spec = law_obj.spec(key)
                if spec.name in fixed_paper:
                    hint = f" ({spec.name} is fixed)"
                elif spec.name == key and spec.ref is not None:
                    hint = f" ({key} is sampled at the data's reference scale as {spec.sampled_name})"
            except KeyError:
                pass
            raise PriorError(
                f"no parameter {key!r} to put a prior on{hint}; valid names: {', '.join(all_priors)}"
            )
        try:
            all_priors[key] = Prior.parse(value)
        except PriorError as exc:
            raise PriorError(f"prior for {key!r}: {exc}") from None
    # the defaults are checked by the tests (tests/test_model.py), once, not in every fit: the
    # check draws from each prior through JAX, ~0.1 s of a warm fit's 2 s
    _check_prior_supports(law_obj, {k: all_priors[k] for k in (priors or {})})
    if isinstance(centred, Mapping):
        centred = {k: tuple(float(c) for c in np.ravel(v)) for k, v in centred.items()}
    return ModelSpec(
        law=law_obj.name,
        priors=all_priors,
        fixed=fixed_paper,
        pooling=pooling,
        likelihood=likelihood,
        ctx=ctx,
        families=tuple(data.families),
        centred=centred if isinstance(centred, dict) else bool(centred),
        fixed_family=fixed_family,
    )


def centring(spec: ModelSpec, data: ScalingData, seed: int = 0) -> ModelSpec:
    """The spec with centring weights per family for its partially pooled parameters.

    Each family's runs alone (the same model with the pooled parameters unpooled,
    ``hierarchy="independent"``) give, at the Laplace mode, every family's working
    value and its standard error; ``hierarchy.centring_weights`` turns them into
    ``c_f = tau^2 / (tau^2 + s_f^2)``. A mode search that fails leaves the spec as
    it is (non-centred), with a weight of 0 everywhere.
    """
    partial = [p for p in spec.law_obj.params if spec.pooling.get(p.name) == "partial"]
    if not partial or not isinstance(spec.centred, bool) or spec.centred:
        return spec
    alone = replace(spec, pooling={k: ("independent" if v == "partial" else v) for k, v in spec.pooling.items()},
                    priors={k: v for k, v in spec.priors.items() if not k.startswith("tau_")})
    lap = laplace_mode(alone, data, seed)
    if not lap.converged:
        return spec
    mode, sd = lap.unravel(lap.mode), lap.unravel(np.sqrt(np.diag(lap.cov)))
    weights = {p.sampled_name: tuple(float(c) for c in hier.centring_weights(np.asarray(mode[f"{p.sampled_name}_f"]),
                                                                              np.asarray(sd[f"{p.sampled_name}_f"])))
               for p in partial}
    return replace(spec, centred=weights)


_FAMILY_KEY = re.compile(r"^(\w+)\[(.+)\]$")


def _check_family_fixed(
    law: Law, fixed: Mapping[str, float], pooling: Mapping[str, str], families: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Parse ``{"E[c4]": 1.869}``: a value fixed in one family only."""
    out: dict[str, dict[str, float]] = {}
    for key, value in fixed.items():
        m = _FAMILY_KEY.match(key)
        if not m:
            continue
        name, fam = m.groups()
        checked = _check_fixed(law, {name: value})[name]
        if fam not in families:
            raise PriorError(f"fixed {key!r}: no family {fam!r}; families are {', '.join(families)}")
        if pooling.get(name) != "independent":
            raise PriorError(
                f"fixed {key!r}: a per-family value needs {name!r} pooled independently, "
                f"e.g. hierarchy={{{name!r}: 'independent', ...}}"
            )
        out.setdefault(name, {})[fam] = checked
    for name, fams in out.items():
        if len(fams) == len(families):
            raise PriorError(f"{name} is fixed in every family: fix it once with fixed={{{name!r}: value}}")
    return out


def _check_fixed(law: Law, fixed: dict[str, float]) -> dict[str, float]:
    out = {}
    for key, value in fixed.items():
        try:
            spec = law.spec(key)
        except KeyError:
            raise PriorError(
                f"cannot fix unknown parameter {key!r}; law {law.name!r} has {', '.join(law.param_names)}"
            ) from None
        if spec.name != key:
            raise PriorError(f"fix {spec.name!r} in the paper's convention, not {key!r}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise PriorError(f"fixed value for {key!r} must be a number, got {value!r}") from None
        if not np.isfinite(v) or (spec.support == "positive" and v <= 0) or (spec.support == "unit" and not 0 < v < 1):
            raise PriorError(f"fixed value {key}={value!r} is outside its support ({spec.support})")
        out[key] = v
    return out


def _check_prior_supports(law: Law, priors: Mapping[str, Prior]) -> None:
    """A prior must put its mass where its parameter lives (checked on draws)."""
    import jax

    for name, prior in priors.items():
        base = _FAMILY_KEY.match(name).group(1) if _FAMILY_KEY.match(name) else name
        support = "positive" if name == "sigma" or name.startswith("tau_") else law.spec(base).support
        draws = np.asarray(prior.to_numpyro().sample(jax.random.PRNGKey(0), (256,)))
        bad = ~np.isfinite(draws)
        if support == "positive":
            bad |= draws <= 0
        elif support == "unit":
            bad |= (draws <= 0) | (draws >= 1)
        if bad.any():
            raise PriorError(f"prior {name} ~ {prior} puts mass outside the parameter's support ({support})")


# --------------------------------------------------------------------------- #
# The mapping from sampled sites to the law's parameters, shared by the model  #
# and by prediction over posterior draws.                                      #
# --------------------------------------------------------------------------- #


def law_params(spec: ModelSpec, sites: Mapping[str, Any], fam_idx: Any) -> dict[str, Any]:
    """Per-row paper-convention parameters from sampled values.

    ``sites`` holds, for each free parameter with sampled name ``s``, either
    ``s`` with shape ``batch`` (complete pooling) or ``s + "_f"`` with shape
    ``batch + (F,)``. Returns arrays of shape ``batch + (n_rows,)`` (or scalars
    for fixed values).
    """
    import jax.numpy as jnp

    law = spec.law_obj
    values: dict[str, Any] = {}
    for p in law.params:
        if p.name in spec.fixed:
            values[p.name] = jnp.asarray(spec.fixed[p.name])
        elif spec.pooling[p.name] == "complete":
            values[p.name] = jnp.asarray(sites[p.sampled_name])[..., None]
        else:
            values[p.name] = jnp.take(jnp.asarray(sites[f"{p.sampled_name}_f"]), fam_idx, axis=-1)
        if p.ref is None:
            values[p.name] = _with_family_fixed(spec, p.name, values[p.name], fam_idx)
    for p in law.params:
        if p.ref is not None and p.name not in spec.fixed:
            shift = 0.0
            for exponent, axis, coef in p.ref_terms:
                k = 1.0 if exponent is None else values[exponent]
                shift = shift + coef * k * spec.ctx.log_ref(axis)
            values[p.name] = _with_family_fixed(spec, p.name, jnp.exp(jnp.log(values[p.name]) + shift), fam_idx)
    return values


def _with_family_fixed(spec: ModelSpec, name: str, rows: Any, fam_idx: Any) -> Any:
    """Replace a parameter's per-row value by its fixed value in families where it is fixed."""
    import jax.numpy as jnp

    fams = spec.fixed_family.get(name)
    if not fams:
        return rows
    mask = np.array([f in fams for f in spec.families])
    vals = np.array([fams.get(f, 0.0) for f in spec.families])
    take = {"axis": 0, "mode": "fill"}
    return jnp.where(jnp.take(mask, fam_idx, fill_value=False, **take), jnp.take(vals, fam_idx, fill_value=0.0, **take), rows)


def make_model(spec: ModelSpec):
    """The numpyro model ``model(logN, logD, logU, fam_idx, log_y=None, obs_mask=None, centring=None)``.

    ``obs_mask`` (bool per row) leaves rows out of the likelihood without changing the
    shapes, so a fit on a subset of the runs (the internal leave-future-out fits of
    ``bayescale.discrepancy``) reuses the compiled sampler of the full table. ``centring``
    (sampled name -> weights per family) overrides the spec's centring weights with
    values given at run time, so one compiled sampler serves every table of one shape
    whatever its weights (``bayescale.nuts`` passes them as an input).
    """
    import numpyro

    law = spec.law_obj
    lik = spec.lik
    n_fam = len(spec.families)

    def model(logN, logD, logU, fam_idx, log_y=None, obs_mask=None, centring=None):
        sites = {}
        for p in law.params:
            if p.name in spec.fixed:
                continue
            s = p.sampled_name
            fixed_here = spec.fixed_family.get(p.name, {})
            value = hier.sample_param(
                p, spec.priors[s], spec.priors.get(f"tau_{s}"), spec.pooling[p.name], n_fam,
                spec.centred if isinstance(spec.centred, bool)
                else (centring[s] if centring and s in centring else spec.centred.get(s, False)),
                family_priors={j: spec.priors[f"{s}[{f}]"] for j, f in enumerate(spec.families)
                               if f"{s}[{f}]" in spec.priors},
                fixed_families=frozenset(j for j, f in enumerate(spec.families) if f in fixed_here),
            )
            sites[s if spec.pooling[p.name] == "complete" else f"{s}_f"] = value
        sigma = numpyro.sample("sigma", spec.priors["sigma"].to_numpyro())
        mu = law.log_loss(law_params(spec, sites, fam_idx), logN, logD, logU)
        with numpyro.plate("row", logN.shape[0]):
            d = lik.dist(mu, sigma)
            numpyro.sample("log_loss", d if obs_mask is None else d.mask(obs_mask), obs=log_y)

    return model


def centring_input(spec: ModelSpec) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """The spec as a compiled program is keyed (centring weights blanked) and the weights
    as the program's input (empty when the spec has none): see ``make_model``."""
    if isinstance(spec.centred, bool):
        return spec, {}
    return (replace(spec, centred={k: () for k in spec.centred}),
            {k: np.asarray(v, np.float32) for k, v in spec.centred.items()})


def model_args(data: ScalingData) -> tuple[np.ndarray, ...]:
    """Data as model arguments (float32 logs; U_eff = min(U, D))."""
    logN = np.log(data.N).astype(np.float32)
    logD = np.log(data.D).astype(np.float32)
    logU = np.log(np.minimum(data.U, data.D)).astype(np.float32)
    return logN, logD, logU, data.family_idx.astype(np.int32)


def posterior_sites(spec: ModelSpec) -> list[str]:
    """Sampled sites kept in the posterior (reparametrisation internals dropped)."""
    out = []
    for p in spec.law_obj.params:
        if p.name in spec.fixed:
            continue
        s, mode = p.sampled_name, spec.pooling[p.name]
        out += {"complete": [s], "independent": [f"{s}_f"], "partial": [s, f"tau_{s}", f"{s}_f"]}[mode]
    return out + ["sigma"]


@dataclass(frozen=True)
class SamplerConfig:
    """NUTS settings, recorded in the saved fit."""

    draws: int = 1000
    warmup: int = 1000
    chains: int = 4
    seed: int = 0
    dense_mass: bool = True
    target_accept: float = 0.8
    max_tree_depth: int = 10
    chain_method: str = "auto"
    #: "nuts", or "laplace": a normal approximation at the posterior mode (approximate)
    method: str = "nuts"


def choose_chain_method(chains: int, requested: str = "auto") -> str:
    """``parallel`` when the host exposes a device per chain, else ``vectorized``.

    JAX fixes the host device count when its CPU backend starts; ``runtime.prepare``
    asks for one device per chain before bayescale's first JAX computation.
    """
    if requested != "auto":
        return requested
    if chains == 1:
        return "sequential"
    import jax

    return "parallel" if jax.local_device_count() >= chains else "vectorized"


def program_chain_method(cfg: SamplerConfig) -> str:
    """The chain method of ``bayescale.nuts``' programs: ``choose_chain_method``, and
    ``sequential`` where ``parallel`` was asked for without a device per chain (as
    ``MCMC.run`` does, which warns)."""
    import jax

    method = choose_chain_method(cfg.chains, cfg.chain_method)
    return "sequential" if method == "parallel" and jax.local_device_count() < cfg.chains else method


def _init_median_gamma_mean(site: dict | None = None):
    """Start every chain at the median of 15 prior draws per site (numpyro's
    ``init_to_median``), except sites with a Gamma prior, which start at its mean.

    The initialisation is traced into the same program as the chains, and JAX's Gamma
    sampler (rejection sampling in a loop) is slow to compile: on Gadre's partially pooled
    model (five Gamma(2, 20) population scales) XLA compiled the sampler in 16.9 s with
    ``init_to_median`` everywhere and 9.7 s with this (``jax_log_compiles``, one fit each).
    The other sites still differ between chains.
    """
    from functools import partial

    import numpyro.distributions as nd
    from numpyro.infer import init_to_mean, init_to_median

    if site is None:
        return partial(_init_median_gamma_mean)
    fn = site.get("fn")
    while isinstance(fn, (nd.ExpandedDistribution, nd.MaskedDistribution, nd.Independent)):
        fn = fn.base_dist
    if site["type"] == "sample" and not site["is_observed"] and isinstance(fn, nd.Gamma):
        return init_to_mean(site)
    return init_to_median(site, num_samples=15)


def init_strategy():
    """The initialisation every NUTS fit and the Laplace mode search start from."""
    return _init_median_gamma_mean()


#: samplers built in this process, by (spec, settings without the seed, progress bar)
_SAMPLERS: dict[tuple, tuple] = {}
_SAMPLER_CACHE_SIZE = 8


def _sampler(spec: ModelSpec, cfg: SamplerConfig, progress: bool):
    """NUTS for the spec; data enter as arguments (``jit_model_args``), so the
    compiled program is the same for every table of one shape and JAX's
    persistent cache (``enable_compilation_cache``) can serve it.

    The MCMC object is kept for the process: a refit of the same spec (same law,
    priors, pooling, reference scales) with new data of the same shape or a new
    seed reuses its traced program instead of tracing NUTS again (seconds on 2 cores).
    """
    key = (spec.to_json(), replace(cfg, seed=0), bool(progress))
    if key in _SAMPLERS:
        return _SAMPLERS[key]
    if len(_SAMPLERS) >= _SAMPLER_CACHE_SIZE:
        _SAMPLERS.pop(next(iter(_SAMPLERS)))
    _SAMPLERS[key] = _build_sampler(spec, cfg, progress)
    return _SAMPLERS[key]


def nuts_kernel(model, cfg: SamplerConfig):
    """numpyro's NUTS with the fit's settings: the one kernel both samplers run
    (``MCMC.run`` here, the exported program of ``bayescale.nuts``), so their draws agree."""
    from numpyro.infer import NUTS

    return NUTS(model, dense_mass=cfg.dense_mass, target_accept_prob=cfg.target_accept,
                max_tree_depth=cfg.max_tree_depth, init_strategy=init_strategy())


def _build_sampler(spec: ModelSpec, cfg: SamplerConfig, progress: bool):
    from numpyro.infer import MCMC

    model = make_model(spec)
    kernel = nuts_kernel(model, cfg)
    mcmc = MCMC(
        kernel,
        num_warmup=cfg.warmup,
        num_samples=cfg.draws,
        num_chains=cfg.chains,
        chain_method=choose_chain_method(cfg.chains, cfg.chain_method),
        progress_bar=progress,
        jit_model_args=True,
    )
    return mcmc, jax_log_joint(model)


#: Memory mappings a process may hold before compiled programs are dropped (Linux's default
#: vm.max_map_count is 65530; every NUTS run adds about a thousand, and at the limit LLVM fails
#: with "Cannot allocate memory" or the process segfaults reading the compilation cache).
MAX_MAPPINGS = 40_000


def release_compiled_if_crowded(limit: int = MAX_MAPPINGS) -> bool:
    """Drop kept samplers and JAX's in-memory compiled programs when this process holds more
    than ``limit`` memory mappings (Linux; a no-op elsewhere). Returns whether it did.

    Every compiled program (a ``bayescale.nuts`` program per model and shape; with a progress
    bar, numpyro's ``MCMC.run`` also compiles its initialisation anew per run, closing over the
    data) stays mapped until JAX's caches are cleared; a long session of fits (a sweep, a test
    suite) would otherwise run out of mappings. The persistent disk cache, if
    enabled, still serves the next compilation.
    """
    try:
        with open(f"/proc/{os.getpid()}/maps", "rb") as fh:
            count = sum(1 for _ in fh)
    except OSError:
        return False
    if count <= limit:
        return False
    import jax

    from . import nuts

    _SAMPLERS.clear()
    nuts.clear()
    jax.clear_caches()
    return True


def run_nuts(spec: ModelSpec, data: ScalingData, cfg: SamplerConfig, progress: bool | str = "auto",
             obs_mask: np.ndarray | None = None):
    """Sample the posterior; returns ``(samples_by_chain, extra_fields_by_chain)`` as numpy.

    ``obs_mask`` (bool per row, default all) conditions on a subset of the rows with the
    same compiled program as the whole table (the mask is always passed, so both share it).
    Without a progress bar the run is one exported program (``bayescale.nuts``: a warm
    process skips tracing NUTS); with one, numpyro's ``MCMC.run``, whose bar needs host
    callbacks. Both draw the same chains.
    """
    import jax

    if progress == "auto":
        progress = sys.stderr.isatty()
    release_compiled_if_crowded()
    if not progress:
        from . import nuts

        method = program_chain_method(cfg)
        samples, extra = nuts.run(spec, data, cfg, method, obs_mask)
        return {k: samples[k] for k in posterior_sites(spec)}, extra
    mcmc, log_joint = _sampler(spec, cfg, bool(progress))
    args = model_args(data)
    log_y = np.log(data.loss).astype(np.float32)
    mask = np.ones(data.n_rows, bool) if obs_mask is None else np.asarray(obs_mask, bool)
    fields = ("diverging", "num_steps", "accept_prob", "energy")
    try:
        mcmc.run(jax.random.PRNGKey(cfg.seed), *args, log_y=log_y, obs_mask=mask, extra_fields=fields)
    except ValueError:
        # a kept sampler whose compiled functions were dropped by jax.clear_caches()
        # fails inside numpyro; a fresh one does not (a real error would recur and raise)
        _SAMPLERS.clear()
        mcmc, log_joint = _sampler(spec, cfg, bool(progress))
        mcmc.run(jax.random.PRNGKey(cfg.seed), *args, log_y=log_y, obs_mask=mask, extra_fields=fields)
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    extra["log_joint"] = np.asarray(log_joint(mcmc.get_samples(), args, log_y)).reshape(cfg.chains, cfg.draws)
    extra["warm"] = _warm_state(mcmc.last_state, cfg.chains)
    return {k: samples[k] for k in posterior_sites(spec)}, extra


def _warm_state(state: Any, chains: int) -> dict[str, Any]:
    """``MCMC.run``'s last state as ``nuts.run``'s ``extra["warm"]`` (a leading chain axis;
    sequential chains keep only the last chain's state, which every chain then shares)."""
    from .nuts import final_state

    warm = final_state(state)
    batched = np.ndim(warm["step_size"]) == 1

    def per_chain(x: Any) -> np.ndarray:
        x = np.asarray(x)
        return x if batched else np.broadcast_to(x[None], (chains,) + x.shape)

    return {"z": {k: per_chain(v) for k, v in warm["z"].items()}, "step_size": per_chain(warm["step_size"]),
            "inverse_mass": per_chain(warm["inverse_mass"])}


@dataclass(frozen=True)
class LaplaceResult:
    """The posterior mode in the sampler's unconstrained coordinates and the normal
    approximation there (``cov`` = inverse Hessian of the potential).

    ``converged``: the optimiser reported success and the Hessian is positive
    definite. ``unravel`` maps a flat vector back to numpyro's site dict and
    ``postprocess`` maps that to constrained values (deterministic sites included).
    """

    mode: np.ndarray
    cov: np.ndarray | None
    converged: bool
    n_iter: int
    unravel: Any
    postprocess: Any
    message: str


def laplace_mode(spec: ModelSpec, data: ScalingData, seed: int = 0, obs_mask: np.ndarray | None = None) -> LaplaceResult:
    """Find the posterior mode with L-BFGS-B (scipy) on numpyro's potential energy and
    its jitted gradient; Hessian by ``jax.hessian``. numpyro's ``initialize_model``
    supplies the potential and the unconstrained coordinates (the same ones NUTS
    uses); numpyro's own ``AutoLaplaceApproximation`` computes the same
    approximation, but compiling its JAX BFGS loop takes ~10 s on 2 cores, against ~1 s
    here."""
    import jax
    import jax.numpy as jnp
    import scipy.optimize
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import initialize_model

    model = make_model(spec)
    args = model_args(data)
    log_y = np.log(data.loss).astype(np.float32)
    kwargs = {"log_y": log_y} if obs_mask is None else {"log_y": log_y, "obs_mask": np.asarray(obs_mask, bool)}
    info = initialize_model(jax.random.PRNGKey(seed), model, model_args=args, model_kwargs=kwargs,
                            init_strategy=init_strategy())
    flat0, unravel = ravel_pytree(info.param_info.z)

    def potential(x):
        return info.potential_fn(unravel(x))

    value_and_grad = jax.jit(jax.value_and_grad(potential))

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = value_and_grad(jnp.asarray(x, jnp.float32))
        return float(v), np.asarray(g, np.float64)

    res = scipy.optimize.minimize(objective, np.asarray(flat0, np.float64), jac=True, method="L-BFGS-B",
                                  options={"maxiter": 2000})
    hess = np.asarray(jax.jit(jax.hessian(potential))(jnp.asarray(res.x, jnp.float32)), np.float64)
    hess = (hess + hess.T) / 2
    cov = None
    ok = bool(np.isfinite(res.fun)) and np.isfinite(hess).all()
    message = str(res.message)
    if ok:
        eig = np.linalg.eigvalsh(hess)
        ok = bool(eig.min() > 0)
        if ok:
            cov = np.linalg.inv(hess)
            cov = (cov + cov.T) / 2
        else:
            message = f"the Hessian at the mode is not positive definite (smallest eigenvalue {eig.min():.3g})"
    # L-BFGS-B stops on a relative change of the objective in float32: a small gradient is success enough
    converged = ok and (bool(res.success) or float(np.abs(res.jac).max()) < 1e-2)
    postprocess = jax.jit(jax.vmap(lambda x: info.postprocess_fn(unravel(x))))
    return LaplaceResult(mode=np.asarray(res.x), cov=cov, converged=converged, n_iter=int(res.nit),
                         unravel=unravel, postprocess=postprocess, message=message)


def run_laplace(spec: ModelSpec, data: ScalingData, cfg: SamplerConfig, obs_mask: np.ndarray | None = None):
    """Laplace approximation (``laplace_mode``): ``draws`` independent draws from the
    normal at the mode, pushed through the constraints. Same return shape as
    ``run_nuts`` with one chain; ``extra["converged"]`` as in ``LaplaceResult``."""
    import jax.numpy as jnp

    lap = laplace_mode(spec, data, cfg.seed, obs_mask)
    rng = np.random.default_rng(cfg.seed)
    if lap.cov is not None:
        zs = lap.mode + rng.standard_normal((cfg.draws, lap.mode.size)) @ np.linalg.cholesky(lap.cov).T
    else:
        zs = np.tile(lap.mode, (cfg.draws, 1))
    values = lap.postprocess(jnp.asarray(zs, jnp.float32))
    sites = posterior_sites(spec)
    samples = {k: np.asarray(values[k])[None] for k in sites}
    finite = all(np.isfinite(v).all() for v in samples.values())
    model = make_model(spec)
    args = model_args(data)
    log_y = np.log(data.loss).astype(np.float32)
    shape = (1, cfg.draws)
    lj = np.asarray(jax_log_joint(model)(_sample_sites(model, args, log_y, values), args, log_y)).reshape(shape)
    extra = {"diverging": np.zeros(shape, bool), "num_steps": np.zeros(shape, np.int64),
             "accept_prob": np.ones(shape), "energy": np.zeros(shape), "log_joint": lj,
             "converged": bool(lap.converged and finite), "message": lap.message}
    return samples, extra


def _sample_sites(model, args, log_y, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The latent sample sites of ``model`` (what ``log_density`` conditions on) from a dict
    that also holds deterministic sites."""
    from numpyro import handlers

    tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, log_y=log_y)
    names = [k for k, site in tr.items() if site["type"] == "sample" and not site["is_observed"]]
    return {k: values[k] for k in names}


def jax_log_joint(model):
    """A jitted ``f(flat_samples, args, log_y)``: joint log density (prior +
    likelihood) per draw, in the sampler's coordinates."""
    import jax
    from numpyro.infer.util import log_density

    @jax.jit
    def f(flat_samples, args, log_y):
        def one(params):
            return log_density(model, args, {"log_y": log_y}, params)[0]

        return jax.vmap(one)(flat_samples)

    return f


def log_mean_draws(spec: ModelSpec, post: Mapping[str, np.ndarray], logN, logD, logU, fam_idx) -> np.ndarray:
    """The law's log loss for every draw and row: shape ``(S, n_rows)``.

    ``post`` holds flattened draws: ``(S,)`` or ``(S, F)`` per site.
    """
    vals = law_params(spec, post, np.asarray(fam_idx))
    return np.asarray(spec.law_obj.log_loss(vals, np.asarray(logN), np.asarray(logD), np.asarray(logU)))


def paper_draws(spec: ModelSpec, post: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Paper-convention values per draw: ``name`` (shared/population) and ``name_f``.

    Amplitudes are mapped back from the reference scale (``A = A_ref * N0**alpha``);
    the reference-scale values are kept too, under their sampled names
    (``A_ref``, ``A_ref_f``). Shapes ``batch`` or ``batch + (F,)``.
    """
    law = spec.law_obj
    out: dict[str, np.ndarray] = {}
    for p in law.params:
        if p.name in spec.fixed:
            continue
        for suffix in ("", "_f"):
            if p.sampled_name + suffix in post:
                out[p.sampled_name + suffix] = np.asarray(post[p.sampled_name + suffix])
    for p in law.params:
        if p.ref is None or p.name in spec.fixed:
            continue
        shared, fam = out.get(p.sampled_name), out.get(p.sampled_name + "_f")
        exps = p.ref_exponents
        fam_exps = any(e not in spec.fixed and e + "_f" in out for e in exps)
        if shared is not None and all(e in spec.fixed or e in out for e in exps):
            out[p.name] = shared * np.exp(_shift(spec, p, out, per_family=False))
        if fam is not None or fam_exps:
            base = fam if fam is not None else shared[..., None]
            out[p.name + "_f"] = base * np.exp(_shift(spec, p, out, per_family=True))
    for name, fams in spec.fixed_family.items():
        p = law.spec(name)
        for j, fam in enumerate(spec.families):
            if fam not in fams:
                continue
            # the paper value is fixed; the reference-scale value has no meaning there
            subs = [(p.name + "_f", fams[fam])] + ([(p.sampled_name + "_f", np.nan)] if p.ref is not None else [])
            for key, value in subs:
                if key in out:
                    arr = np.array(out[key], dtype=float)
                    arr[..., j] = value
                    out[key] = arr
    return out


def _shift(spec: ModelSpec, p, out: Mapping[str, np.ndarray], per_family: bool) -> Any:
    """``sum(coef * exponent * log X0)`` over a parameter's reference terms."""
    total: Any = 0.0
    for exponent, axis, coef in p.ref_terms:
        if exponent is None:
            k: Any = 1.0
        elif exponent in spec.fixed:
            k = spec.fixed[exponent]
        elif per_family:
            k = out[exponent + "_f"] if exponent + "_f" in out else np.asarray(out[exponent])[..., None]
        else:
            k = out[exponent]
        total = total + coef * k * spec.ctx.log_ref(axis)
    return total
