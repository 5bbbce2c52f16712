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
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data import DataError, ScalingData
from .models import Law, LawContext, Prior, PriorError, get_law
from .models import hierarchy as hier
from .models.likelihood import SIGMA_PRIOR, Likelihood


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
    centred : bool
        Whether partially pooled values are sampled centred.
    """

    law: str
    priors: dict[str, Prior]
    fixed: dict[str, float]
    pooling: dict[str, str]
    likelihood: str
    ctx: LawContext
    families: tuple[str, ...]
    centred: bool
    law_options: dict[str, Any] = field(default_factory=dict)

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
            centred=bool(d["centred"]),
            law_options=dict(d.get("law_options", {})),
        )


def context(data: ScalingData) -> LawContext:
    """Reference scales: natural logs of the geometric means of N, D, U and C."""
    return LawContext(
        log_N0=float(np.mean(np.log(data.N))),
        log_D0=float(np.mean(np.log(data.D))),
        log_U0=float(np.mean(np.log(np.minimum(data.U, data.D)))),
        log_C0=float(np.mean(np.log(6.0 * data.N * data.D))),
    )


def build_spec(
    law: str | Law,
    data: ScalingData,
    hierarchy: str | Mapping[str, str] = "auto",
    priors: Mapping[str, str | Prior] | None = None,
    fixed: Mapping[str, float] | None = None,
    likelihood: str = "student_t",
) -> ModelSpec:
    """Check the user's settings against the law and assemble a ModelSpec."""
    law_obj = get_law(law)
    Likelihood(likelihood)
    fixed_paper = _check_fixed(law_obj, dict(fixed or {}))
    pooling = hier.resolve(hierarchy, law_obj, data.n_families, fixed_paper)
    missing = [n for n in law_obj.required_fixed if n not in fixed_paper]
    if missing:
        raise DataError(f"law {law_obj.name!r} needs fixed={{{', '.join(repr(m) + ': ...' for m in missing)}}}")
    ctx = context(data)
    defaults = law_obj.default_priors(ctx)
    all_priors: dict[str, Prior] = {}
    for p in law_obj.params:
        if p.name in pooling:
            all_priors[p.sampled_name] = defaults[p.sampled_name]
            if pooling[p.name] == "partial":
                all_priors[f"tau_{p.sampled_name}"] = hier.TAU_PRIOR[p.support]
    all_priors["sigma"] = SIGMA_PRIOR
    for key, value in (priors or {}).items():
        if key not in all_priors:
            hint = ""
            try:
                spec = law_obj.spec(key)
                if spec.name == key and spec.ref is not None:
                    hint = f" ({key} is sampled at the data's reference scale as {spec.sampled_name})"
                elif spec.name in fixed_paper:
                    hint = f" ({key} is fixed)"
            except KeyError:
                pass
            raise PriorError(
                f"no parameter {key!r} to put a prior on{hint}; valid names: {', '.join(all_priors)}"
            )
        try:
            all_priors[key] = Prior.parse(value)
        except PriorError as exc:
            raise PriorError(f"prior for {key!r}: {exc}") from None
    _check_prior_supports(law_obj, all_priors)
    centred = bool(np.min(np.bincount(data.family_idx)) >= hier.CENTRED_MIN_RUNS)
    return ModelSpec(
        law=law_obj.name,
        priors=all_priors,
        fixed=fixed_paper,
        pooling=pooling,
        likelihood=likelihood,
        ctx=ctx,
        families=tuple(data.families),
        centred=centred,
    )


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
        support = "positive" if name == "sigma" or name.startswith("tau_") else law.spec(name).support
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
    for p in law.params:
        if p.ref is not None and p.name not in spec.fixed:
            exponent, axis = p.ref
            k = 1.0 if exponent is None else values[exponent]
            values[p.name] = jnp.exp(jnp.log(values[p.name]) + k * spec.ctx.log_ref(axis))
    return values


def make_model(spec: ModelSpec):
    """The numpyro model ``model(logN, logD, logU, fam_idx, log_y=None)``."""
    import numpyro

    law = spec.law_obj
    lik = spec.lik
    n_fam = len(spec.families)

    def model(logN, logD, logU, fam_idx, log_y=None):
        sites = {}
        for p in law.params:
            if p.name in spec.fixed:
                continue
            s = p.sampled_name
            value = hier.sample_param(
                p, spec.priors[s], spec.priors.get(f"tau_{s}"), spec.pooling[p.name], n_fam, spec.centred
            )
            sites[s if spec.pooling[p.name] == "complete" else f"{s}_f"] = value
        sigma = numpyro.sample("sigma", spec.priors["sigma"].to_numpyro())
        mu = law.log_loss(law_params(spec, sites, fam_idx), logN, logD, logU)
        with numpyro.plate("row", logN.shape[0]):
            numpyro.sample("log_loss", lik.dist(mu, sigma), obs=log_y)

    return model


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


def choose_chain_method(chains: int, requested: str = "auto") -> str:
    """``parallel`` when the host exposes a device per chain, else ``vectorized``.

    JAX fixes the host device count at start-up, so a library cannot change it;
    the CLI sets ``XLA_FLAGS`` before JAX starts.
    """
    if requested != "auto":
        return requested
    if chains == 1:
        return "sequential"
    import jax

    return "parallel" if jax.local_device_count() >= chains else "vectorized"


def run_nuts(spec: ModelSpec, data: ScalingData, cfg: SamplerConfig, progress: bool | str = "auto"):
    """Sample the posterior; returns ``(samples_by_chain, extra_fields_by_chain)`` as numpy."""
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_median

    if progress == "auto":
        progress = sys.stderr.isatty()
    model = make_model(spec)
    args = model_args(data)
    log_y = np.log(data.loss).astype(np.float32)
    kernel = NUTS(
        model,
        dense_mass=cfg.dense_mass,
        target_accept_prob=cfg.target_accept,
        max_tree_depth=cfg.max_tree_depth,
        init_strategy=init_to_median(num_samples=15),
    )
    mcmc = MCMC(
        kernel,
        num_warmup=cfg.warmup,
        num_samples=cfg.draws,
        num_chains=cfg.chains,
        chain_method=choose_chain_method(cfg.chains, cfg.chain_method),
        progress_bar=bool(progress),
    )
    mcmc.run(jax.random.PRNGKey(cfg.seed), *args, log_y=log_y, extra_fields=("diverging", "num_steps", "accept_prob", "energy"))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    return {k: samples[k] for k in posterior_sites(spec)}, extra


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
        exponent, axis = p.ref
        log_ref = spec.ctx.log_ref(axis)
        if exponent is None:
            k_shared, k_fam = 1.0, None
        elif exponent in spec.fixed:
            k_shared, k_fam = spec.fixed[exponent], None
        else:
            k_shared, k_fam = out.get(exponent), out.get(exponent + "_f")
        shared, fam = out.get(p.sampled_name), out.get(p.sampled_name + "_f")
        if shared is not None and k_shared is not None:
            out[p.name] = shared * np.exp(k_shared * log_ref)
        if fam is not None or k_fam is not None:
            a = fam if fam is not None else shared[..., None]
            k = k_fam if k_fam is not None else np.asarray(k_shared)[..., None]
            out[p.name + "_f"] = a * np.exp(k * log_ref)
    return out
