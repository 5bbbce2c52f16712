"""Pooling of law parameters across model families.

``hierarchy=`` takes

- ``"complete"``: one value shared by every family;
- ``"independent"``: one value per family, each with the law's prior, no pooling;
- ``"partial"``: per-family values drawn from a population with a learned
  location (which carries the law's prior) and a learned scale ``tau``;
- a dict setting it per parameter, e.g. ``{"alpha": "partial", "E": "independent"}``;
  parameters not named take ``"complete"`` unless the dict has a ``"default"`` key;
- ``"auto"`` (default): ``"complete"`` with one family, ``"partial"`` for every
  per-family parameter otherwise, except the parameters of a term along an axis no
  family varies (``resolve``'s ``flat_axes``: every family at one N) and the constant
  ``E``, which are then shared.

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

Centring. numpyro's ``LocScaleReparam`` samples each family's working value with a
centring weight ``c`` in [0, 1] (Gorinova, Moore and Hoffman 2020, "Automatic
reparameterisation of probabilistic programs", ICML): ``c = 1`` samples ``w_f``
itself (centred), ``c = 0`` the standardised ``(w_f - w_pop) / tau`` (non-centred),
values between interpolate. Neither end suits every family and parameter: a family
whose runs pin a value tightly compared with the spread between families wants it
centred (non-centred, the sampler must move ``tau`` and ``z_f`` together along a
narrow ridge); a family whose runs barely inform it wants it non-centred (centred,
the funnel between ``tau`` and ``w_f``). For the normal hierarchy ``w_f ~ N(mu, tau)``
with data giving ``w_f`` a standard error ``s_f``, the weight that makes the
decentred value independent of ``mu`` a posteriori is ``c = tau^2 / (tau^2 + s_f^2)``
(Papaspiliopoulos, Roberts and Sköld 2007, "A general framework for the
parametrization of hierarchical models", Statistical Science 22(1), sec. 4).
``inference.centring`` reads ``s_f`` and ``tau`` off a Laplace fit of the families
one by one (Paule-Mandel for ``tau``) and sets ``c`` per parameter and family
(:func:`centring_weights`).
Measured (``benchmarks/run.py``): the xLSTM ladder (5 families, 34-138 runs) needs
772 leapfrog steps per draw non-centred and ~66 centred; Gadre (3 families, 34-35
runs, families that agree) has 113 divergences centred and none non-centred; the
weights pick ``c`` near 1 on the first and 0 on the second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Law, ParamSpec
from .priors import Prior

POOLINGS = ("complete", "independent", "partial")
#: Gamma(2, rate): mean 2/rate on the working scale (log, logit or identity)
TAU_PRIOR = {"positive": Prior("Gamma", concentration=2.0, rate=20.0),
             "unit": Prior("Gamma", concentration=2.0, rate=12.0),
             "real": Prior("Gamma", concentration=2.0, rate=6.0)}


class HierarchyError(ValueError):
    """A hierarchy setting that names an unknown parameter or pooling."""


def axis_of(law: Law, name: str) -> str | None:
    """The data axis (``"N"``, ``"D"``, ``"U"``) a parameter's term varies along: an
    amplitude's reference axis (``A``: N) and the exponent in it (``alpha``: N); None for
    the others (``E``, the noise, parameters without a reference scale)."""
    for p in law.params:
        for exponent, axis, _ in p.ref_terms:
            if isinstance(axis, str) and name in (p.name, exponent):
                return axis
    return None


def _confounded(law: Law, name: str, flat_axes: frozenset[str]) -> bool:
    """Whether a family's own value of ``name`` is unidentified by its runs: its term lies
    along a flat axis, or it is a constant (``E``, no axis) while some axis is flat, so that
    within each family it adds to the flat axis' constant term and only the prior on the
    population scale would tell them apart (Gemstones with a family E: R-hat 2.7)."""
    axis = axis_of(law, name)
    return axis in flat_axes if axis is not None else bool(flat_axes)


def resolve(
    hierarchy: str | Mapping[str, str], law: Law, n_families: int, fixed: Mapping[str, float],
    flat_axes: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Pooling for every sampled law parameter, keyed by paper-convention name.

    ``flat_axes``: the data axes along which no family has two distinct values (Gemstones'
    width x depth shapes: one N each). Under ``"auto"`` a parameter of a term along such an
    axis (:func:`axis_of`), and a constant such as ``E`` beside it, is pooled completely
    (:func:`_confounded`): a family-specific model-size exponent from one model size is not
    identified by its runs, and a partially pooled one only adds a ridge for the sampler.
    """
    free = [p for p in law.params if p.name not in fixed and p.sampled_name not in fixed]
    if isinstance(hierarchy, str):
        if hierarchy == "auto":
            mode = "complete" if n_families == 1 else "partial"
            return {p.name: (mode if p.per_family and not _confounded(law, p.name, flat_axes) else "complete")
                    for p in free}
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


def centring_weights(mode: Any, sd: Any) -> Any:
    """Centring weight per family, ``c_f = tau^2 / (tau^2 + s_f^2)`` (module docstring).

    ``mode`` and ``sd``: each family's working-scale estimate and standard error from
    its own runs (numpy arrays over families). ``tau`` is the between-family spread
    those estimates do not explain, by Paule and Mandel's estimator (1982, "Consensus
    values and weighting factors", J. Res. Natl. Bur. Stand. 87:377; recommended by
    Veroniki et al. 2016, Res. Synth. Methods 7:55): the ``tau^2`` at which
    ``sum w (mode - weighted mean)^2 = F - 1`` with ``w = 1 / (sd^2 + tau^2)``, 0 when
    the families agree within their errors (then ``c = 0``, non-centred). Unlike the
    DerSimonian-Laird moment estimator it is not pulled to 0 by a few tightly pinned
    families (xLSTM's E: 0.26 against 0.06; the posterior median of ``tau_E`` is 0.17).
    Rounded to 2 decimals so that refits of similar data share one compiled sampler.
    """
    import numpy as np
    from scipy.optimize import brentq

    mode, sd = np.asarray(mode, np.float64), np.asarray(sd, np.float64)
    if mode.size < 2:
        return np.zeros_like(mode)

    def excess(tau2: float) -> float:
        w = 1.0 / (sd**2 + tau2)
        return float(np.sum(w * (mode - np.sum(w * mode) / np.sum(w)) ** 2)) - (mode.size - 1)

    tau2 = 0.0
    if excess(0.0) > 0:
        hi = float(np.var(mode)) * mode.size + float(np.max(sd**2))  # excess(hi) < 0 there
        tau2 = brentq(excess, 0.0, hi)
    return np.round(tau2 / (tau2 + sd**2), 2)


def _weights(centred: Any, n_families: int) -> Any:
    """A spec's centring (bool, or weights per family, possibly a program input) as
    LocScaleReparam's ``centered``."""
    import jax.numpy as jnp

    if isinstance(centred, bool):
        return 1.0 if centred else 0.0
    c = jnp.reshape(jnp.asarray(centred, jnp.float32), (-1,))
    if c.shape[0] != n_families:
        raise ValueError(f"centring weights for {c.shape[0]} families, the model has {n_families}")
    return c


def sample_param(
    spec: ParamSpec,
    prior: Prior,
    tau_prior: Prior | None,
    pooling: str,
    n_families: int,
    centred: Any,
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
        config={f"{s}_w": LocScaleReparam(centered=_weights(centred, n_families))}
    ):
        # batch shape (F,) up front: per-family centring weights need an unexpanded base distribution
        w = numpyro.sample(f"{s}_w", nd.Normal(jnp.broadcast_to(to_working(spec, loc), (n_families,)), tau))
    return numpyro.deterministic(f"{s}_f", from_working(spec, w))
