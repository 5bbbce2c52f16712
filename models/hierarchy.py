"""Pooling of law parameters across model families.

``hierarchy=`` takes

- ``"complete"``: one value shared by every family;
- ``"independent"``: one value per family, each with the law's prior, no pooling;
- ``"partial"``: per-family values drawn from a population with a learned
  location (which carries the law's prior) and a learned scale ``tau``;
- a dict setting it per parameter, e.g. ``{"alpha": "partial", "E": "independent"}``;
  parameters not named take ``"complete"`` unless the dict has a ``"default"`` key;
- ``"auto"`` (default): ``"complete"`` with one family, ``"partial"`` for every
  per-family parameter otherwise.

Partial pooling works on the parameter's unconstrained scale: log for positive
parameters, logit for (0, 1) ones, identity for real ones, so
``log alpha_f ~ Normal(log alpha_pop, tau_alpha)``. The population location is
reported under the plain name (``alpha``), family values as ``alpha[c4]``.
The population scale gets ``tau ~ Gamma(2, 20)`` on that scale (mean 0.1, 90% of
its mass between 0.018 and 0.24): family values within a few to ~25% of each other.
Besiroglu et al. 2024 and Muennighoff et al. 2023 exponents differ by ~5%; the
three Gadre et al. 2024 training sets, fitted one by one, differ by 4-10% (sd of
the per-family log values). A Gamma(2, .) prior is zero-avoiding (Chung et al.
2013, Psychometrika 78:685; Gelman et al., BDA3 sec. 5.7): with 2-3 families the
data cannot tell tau = 0.001 from 0.03, and a prior that allows the first gives the
sampler the funnel neck where it diverges. Measured on Gadre (3 families, 34-35
runs each, all five Chinchilla parameters pooled): HalfNormal(0.3) 1-268
divergences and ~170 leapfrog steps per draw, Gamma(2, 20) none and ~80 steps.
Override with ``priors={"tau_alpha": ...}``. With 2-3 families this scale is
mostly prior, which the summary says. Even so its posterior keeps a narrow neck
near small values that NUTS at target acceptance 0.8 explores slowly (Gadre: tail
ESS 201); ``bs.fit`` therefore samples any partially pooled model at 0.95
(``fitting.PARTIAL_TARGET_ACCEPT``; tail ESS 1210-1718 over three seeds).

numpyro's ``LocScaleReparam`` samples the family values centred when every
family has at least ``CENTRED_MIN_RUNS`` runs (the likelihood then pins each
value, the non-centred funnel is the worse geometry) and non-centred otherwise.
Measured on Gadre (34-35 runs per family): centred 113 divergences, non-centred
none, so the threshold sits above that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Law, ParamSpec
from .priors import Prior

POOLINGS = ("complete", "independent", "partial")
CENTRED_MIN_RUNS = 100
#: Gamma(2, rate): mean 2/rate on the working scale (log, logit or identity)
TAU_PRIOR = {"positive": Prior("Gamma", concentration=2.0, rate=20.0),
             "unit": Prior("Gamma", concentration=2.0, rate=12.0),
             "real": Prior("Gamma", concentration=2.0, rate=6.0)}


class HierarchyError(ValueError):
    """A hierarchy setting that names an unknown parameter or pooling."""


def resolve(
    hierarchy: str | Mapping[str, str], law: Law, n_families: int, fixed: Mapping[str, float]
) -> dict[str, str]:
    """Pooling for every sampled law parameter, keyed by paper-convention name."""
    free = [p for p in law.params if p.name not in fixed and p.sampled_name not in fixed]
    if isinstance(hierarchy, str):
        if hierarchy == "auto":
            mode = "complete" if n_families == 1 else "partial"
            return {p.name: (mode if p.per_family else "complete") for p in free}
        if hierarchy not in POOLINGS:
            raise HierarchyError(f"unknown hierarchy {hierarchy!r}; use 'auto', {', '.join(map(repr, POOLINGS))} or a dict")
        # with one family there is nothing to pool over: every setting is complete pooling
        mode = "complete" if n_families == 1 else hierarchy
        return {p.name: (mode if p.per_family else "complete") for p in free}
    table = dict(hierarchy)
    default = table.pop("default", "complete")
    names = {p.name for p in law.params} | {p.sampled_name for p in law.params}
    unknown = sorted(set(table) - names)
    if unknown:
        raise HierarchyError(
            f"hierarchy names unknown parameter(s) {unknown}; law {law.name!r} has {', '.join(law.param_names)}"
        )
    out = {}
    for p in free:
        mode = table.get(p.name, table.get(p.sampled_name, default))
        if mode not in POOLINGS:
            raise HierarchyError(f"hierarchy for {p.name!r} is {mode!r}; use one of {', '.join(POOLINGS)}")
        if mode != "complete" and not p.per_family:
            raise HierarchyError(f"parameter {p.name!r} of law {law.name!r} cannot vary by family")
        out[p.name] = mode
    if n_families == 1:
        out = dict.fromkeys(out, "complete")
    return out


def min_runs_per_family(pooling: Mapping[str, str]) -> int:
    """Runs each family needs: a family-specific law needs more than one point."""
    return 2 if "independent" in pooling.values() else 1


# --- transforms between a parameter and its unconstrained "working" scale ---


def to_working(spec: ParamSpec, x: Any) -> Any:
    import jax.numpy as jnp

    if spec.support == "positive":
        return jnp.log(x)
    if spec.support == "unit":
        return jnp.log(x) - jnp.log1p(-x)
    return x


def from_working(spec: ParamSpec, w: Any) -> Any:
    import jax

    if spec.support == "positive":
        return jax.numpy.exp(w)
    if spec.support == "unit":
        return jax.nn.sigmoid(w)
    return w


#: stand-in value of a per-family fixed parameter at its sampled site; the fixed
#: paper-convention value replaces it in ``inference.law_params``
PLACEHOLDER = {"positive": 1.0, "unit": 0.5, "real": 0.0}


def sample_param(
    spec: ParamSpec,
    prior: Prior,
    tau_prior: Prior | None,
    pooling: str,
    n_families: int,
    centred: bool,
    family_priors: Mapping[int, Prior] | None = None,
    fixed_families: frozenset[int] = frozenset(),
) -> Any:
    """Sample one law parameter inside a numpyro model.

    Returns a scalar (complete pooling) or a vector over families. Sites:
    ``<s>`` (shared or population location), ``<s>_f`` (per-family values),
    ``tau_<s>`` (population scale), with ``s`` the sampled name. Under
    independent pooling, families may carry their own prior (``family_priors``)
    or a fixed value (``fixed_families``); each free family is then its own
    scalar site ``<s>__<j>`` and ``<s>_f`` is recorded as a deterministic.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd
    from numpyro.infer.reparam import LocScaleReparam

    s = spec.sampled_name
    if pooling == "complete":
        return numpyro.sample(s, prior.to_numpyro())
    if pooling == "independent":
        if not family_priors and not fixed_families:
            with numpyro.plate("family", n_families):
                return numpyro.sample(f"{s}_f", prior.to_numpyro())
        values = [
            jnp.asarray(PLACEHOLDER[spec.support])
            if j in fixed_families
            else numpyro.sample(f"{s}__{j}", (family_priors or {}).get(j, prior).to_numpyro())
            for j in range(n_families)
        ]
        return numpyro.deterministic(f"{s}_f", jnp.stack(values))
    loc = numpyro.sample(s, prior.to_numpyro())
    tau = numpyro.sample(f"tau_{s}", tau_prior.to_numpyro())
    with numpyro.plate("family", n_families), numpyro.handlers.reparam(
        config={f"{s}_w": LocScaleReparam(centered=1.0 if centred else 0.0)}
    ):
        w = numpyro.sample(f"{s}_w", nd.Normal(to_working(spec, loc), tau))
    return numpyro.deterministic(f"{s}_f", from_working(spec, w))
