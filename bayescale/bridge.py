"""Log marginal likelihood (evidence) by bridge sampling, and Bayes factors.

The evidence of a model M for data y is ``p(y | M) = ∫ p(y | θ) p(θ) dθ``, in
nats here (``log_ml``). It is estimated from the posterior draws a fit already
holds, following the setup Gronau et al. (2017, arXiv:1703.05984) recommend:

1. Work in the sampler's unconstrained coordinates ``u``, where the
   unnormalised posterior is ``q(u) = p(y | θ(u)) p(θ(u)) |det ∂θ/∂u|``:
   numpyro's ``potential_energy`` is ``-log q(u)``, log-Jacobian of the
   constraining transforms included. Without the Jacobian the estimate is off
   by ``E[log |J|]``-sized amounts; truncated priors add their normalising
   constants, which the prior densities carry.
2. Split each chain's draws in halves. Fit a multivariate normal proposal
   ``g = N(mean, cov)`` to the first half; draw ``N2`` proposal points.
3. Iterate Meng and Wong's (1996) optimal-bridge fixed point on the second half
   (``N1`` draws) and the proposal draws. With ``l1_i = log q(u_i) - log g(u_i)``
   at posterior draws, ``l2_j = log q(ũ_j) - log g(ũ_j)`` at proposal draws,
   ``l* = median(l1)``, ``s1 = n_eff / (n_eff + N2)``, ``s2 = N2 / (n_eff + N2)``,

       r ← (N1 / N2) · Σ_j [e^{l2_j - l*} / (s1 e^{l2_j - l*} + s2 r)]
                     / Σ_i [1 / (s1 e^{l1_i - l*} + s2 r)]

   until ``|r_new - r| / r_new < tol``; then ``log p(y) = log r + l*``.
   ``n_eff`` is the median effective sample size of the second-half draws
   (as the bridgesampling R package does), so autocorrelated draws are not
   counted as independent.
4. Monte Carlo error: Frühwirth-Schnatter's (2004) approximate relative
   mean-squared error, Gronau et al. (2017) Eq. 17,

       RE² = Var_g(f1) / (N2 E_g[f1]²) + ρ_f2(0) Var_post(f2) / (N1 E_post[f2]²),

   with ``f1 = p(ũ) / (s1 p(ũ) + s2 g(ũ))`` at proposal draws,
   ``f2 = g(u) / (s1 p(u) + s2 g(u))`` at posterior draws (``p = q / p(y)``,
   here ``s1 = N1/(N1+N2)``), and ``ρ_f2(0)`` the normalised spectral density
   of ``f2`` at frequency zero, i.e. ``N1 / ESS(f2)``. ``mc_error = √RE²`` is,
   to first order, the standard deviation of the estimated log evidence in nats.

Densities are evaluated in JAX's default precision, the one the sampler used
(float32 unless x64 is enabled): rounding of ``log q`` is ~1e-4 nats on a few
hundred runs, far below the Monte Carlo error. The proposal, the iteration and
the error are computed in float64 (numpy). A scoped x64 switch is not used: with
it, models that close over numpy arrays failed here (an executable compiled for
float64 met a float32 buffer of the same constant).

The posterior group of a Fit keeps only the sites users read; the sampler also
drew reparametrisation internals (non-centred ``<s>_w_decentered``, centred
``<s>_w``) and per-family scalar sites ``<s>__<j>``. :func:`latent_sites`
rebuilds them exactly from what is kept, and :func:`evidence` checks the rebuilt
joint density against the one the sampler stored before trusting it.

The module is ``bridge`` rather than ``evidence`` so that importing it never
replaces the function ``bayescale.evidence`` on the package (ARCHITECTURE.md).

References
----------
Meng, X.-L. and Wong, W. H. (1996). Simulating ratios of normalizing constants
via a simple identity. Statistica Sinica 6, 831-860.
Frühwirth-Schnatter, S. (2004). Estimating marginal likelihoods for mixture and
Markov switching models using bridge sampling techniques. Econometrics Journal 7, 143-167.
Gronau, Q. F. et al. (2017). A tutorial on bridge sampling. Journal of
Mathematical Psychology 81, 80-97. arXiv:1703.05984.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .models import Prior

#: draws per device batch when evaluating densities (bounds memory on long fits)
_BATCH = 256
#: draws on which evidence() checks the rebuilt joint density against the stored one
_CHECK_DRAWS = 64


@dataclass(frozen=True)
class Evidence:
    """Log marginal likelihood of a fit, estimated by bridge sampling.

    Attributes
    ----------
    log_ml : float
        ``log p(y | M)`` in nats, ``y`` the observed log losses (the model's
        likelihood is on log loss). NaN when the iteration broke down.
    mc_error : float
        Monte Carlo standard deviation of ``log_ml`` in nats: ``√RE²`` with
        Frühwirth-Schnatter's (2004) relative mean-squared error (module docstring).
    iterations : int
        Fixed-point iterations of the Meng-Wong scheme.
    converged : bool
        Whether the iteration met its tolerance within ``max_iter``.
    n_draws : int
        Posterior draws used (both halves).
    method : str
        ``"bridge"``.
    """

    log_ml: float
    mc_error: float
    iterations: int
    converged: bool
    n_draws: int
    method: str = "bridge"

    def __post_init__(self) -> None:
        if self.method != "bridge":
            raise ValueError(f"method must be 'bridge', got {self.method!r}")
        if self.n_draws < 0 or self.iterations < 0:
            raise ValueError("n_draws and iterations must be non-negative")


@dataclass(frozen=True)
class BayesFactor:
    """Log Bayes factor of fit a over fit b on the same runs.

    Attributes
    ----------
    log_bf : float
        ``log p(y | a) - log p(y | b)`` in nats; positive favours a.
    mc_error : float
        Monte Carlo standard deviation of ``log_bf``: the two estimates are
        independent, so ``√(err_a² + err_b²)``.
    evidence_a, evidence_b : Evidence
    """

    log_bf: float
    mc_error: float
    evidence_a: Evidence
    evidence_b: Evidence


# --------------------------------------------------------------------------- #
# The generic estimator                                                        #
# --------------------------------------------------------------------------- #


def bridge_sampling(
    model: Callable[..., Any],
    model_args: tuple = (),
    model_kwargs: Mapping[str, Any] | None = None,
    samples: Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    constrained: bool = True,
    group_by_chain: bool = True,
    n_proposal: int | None = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> Evidence:
    """Log marginal likelihood of a numpyro model from its posterior draws.

    Gronau et al. (2017)'s normal-proposal bridge sampler (module docstring):
    the first half of each chain fits ``N(mean, cov)`` in unconstrained space,
    the second half and as many proposal draws feed Meng and Wong's (1996)
    iteration, and the error is Frühwirth-Schnatter's (2004) approximation.

    Parameters
    ----------
    model : callable
        A numpyro model; observed sites carry their data through the arguments.
    model_args, model_kwargs
        Arguments the model was conditioned with. Array leaves are traced, so a
        second call with data of the same shapes reuses the compiled densities;
        other leaves (ints, strings) are treated as static.
    samples : mapping
        Posterior draws of **every** latent sample site, keyed by site name.
    seed : int
        Seed of the proposal draws.
    constrained : bool
        True: ``samples`` are site values (as MCMC returns them); False: they
        are already in the sampler's unconstrained coordinates.
    group_by_chain : bool
        True: arrays are ``(chains, draws, ...)``; False: ``(draws, ...)``, one chain.
    n_proposal : int, optional
        Proposal draws ``N2``; default the number of second-half draws ``N1``.
    tol, max_iter
        Stopping rule of the iteration: relative change of ``r`` below ``tol``.

    Returns
    -------
    Evidence

    Raises
    ------
    ValueError
        Too few draws, a missing or misshapen site, non-finite posterior
        densities, or draws too degenerate to fit a proposal.
    """
    if not samples:
        raise ValueError("bridge_sampling needs posterior samples of every latent site")
    kwargs = dict(model_kwargs or {})
    draws = {k: np.asarray(v, dtype=np.float64) for k, v in samples.items()}
    if not group_by_chain:
        draws = {k: v[None] for k, v in draws.items()}
    lead = {v.shape[:2] for v in draws.values()}
    if len(lead) != 1 or any(v.ndim < 2 for v in draws.values()):
        raise ValueError(f"samples must share (chains, draws) leading dimensions; got {sorted(lead)}")
    n_chains, n_per = lead.pop()
    if n_per < 4:
        raise ValueError(f"bridge sampling needs at least 4 draws per chain, got {n_per}")
    fns = _compiled_for(model, model_args, kwargs)
    sites = fns.sites()
    missing = sorted(set(sites) - set(draws))
    if missing:
        raise ValueError(f"samples lack latent site(s) {', '.join(missing)}; bridge sampling needs every one")
    flat = {k: draws[k].reshape((n_chains * n_per,) + draws[k].shape[2:]) for k in sites}
    for k, shape in sites.items():
        if flat[k].shape[1:] != shape:
            raise ValueError(f"site {k!r}: draws have shape {flat[k].shape[1:]}, the model has {shape}")
    u = fns.unconstrain(flat) if constrained else flat
    x = _ravel(u, sites).reshape(n_chains, n_per, -1)
    half = n_per // 2
    x_fit = x[:, :half].reshape(-1, x.shape[-1])
    x_iter = x[:, half:]
    n1 = x_iter.shape[0] * x_iter.shape[1]
    n2 = int(n_proposal) if n_proposal is not None else n1
    if n2 < 2:
        raise ValueError(f"n_proposal must be at least 2, got {n_proposal}")
    mean, chol = _fit_normal(x_fit)
    z = np.random.default_rng(seed).standard_normal((n2, x.shape[-1]))
    x_prop = mean + z @ chol.T
    q11 = fns.log_q(_unravel(x_iter.reshape(n1, -1), sites))
    q21 = fns.log_q(_unravel(x_prop, sites))
    if not np.all(np.isfinite(q11)):
        raise ValueError(
            f"{int(np.sum(~np.isfinite(q11)))} posterior draws have a non-finite log density: "
            "the draws do not belong to this model"
        )
    # a proposal point where the model's density under- or overflows carries no mass
    q21 = np.where(np.isfinite(q21), q21, -np.inf)
    q12 = _normal_logpdf(x_iter.reshape(n1, -1), mean, chol)
    q22 = _normal_logpdf(x_prop, mean, chol)
    l1, l2 = q11 - q12, q21 - q22
    n_eff = min(float(n1), _median_ess(x_iter))
    log_ml, iterations, converged = _iterate(l1, l2, n_eff, tol, max_iter)
    if not converged:
        warnings.warn(
            f"bridge sampling did not converge in {max_iter} iterations; draw more posterior samples",
            RuntimeWarning, stacklevel=2,
        )
    error = _relative_mse(l1.reshape(n_chains, -1), l2, log_ml) ** 0.5 if np.isfinite(log_ml) else float("nan")
    return Evidence(float(log_ml), float(error), int(iterations), bool(converged), n_chains * n_per)


def _iterate(l1: np.ndarray, l2: np.ndarray, n_eff: float, tol: float, max_iter: int) -> tuple[float, int, bool]:
    """Meng and Wong's (1996) fixed point for ``r = p(y) / e^{l*}``, in logs (module docstring).

    Starts from the importance-sampling estimate ``mean(e^{l2 - l*})``. Where the
    proposal overlaps the posterior poorly the iteration converges linearly at a
    rate near one; after ``max_iter`` steps the same equation is solved by
    bracketing (Brent), so the estimator is unchanged, only found faster.
    Returns ``(log p(y), iterations, converged)``.
    """
    from scipy.optimize import brentq
    from scipy.special import logsumexp

    n1, n2 = l1.size, l2.size
    lstar = float(np.median(l1))
    a1, a2 = l1 - lstar, l2 - lstar
    log_s1, log_s2 = np.log(n_eff / (n_eff + n2)), np.log(n2 / (n_eff + n2))

    def update(log_r: float) -> float:
        log_num = a2 - np.logaddexp(log_s1 + a2, log_s2 + log_r)
        log_den = -np.logaddexp(log_s1 + a1, log_s2 + log_r)
        return float(np.log(n1 / n2) + logsumexp(log_num) - logsumexp(log_den))

    log_r = float(logsumexp(a2) - np.log(n2))
    if not np.isfinite(log_r):
        log_r = 0.0
    for i in range(1, max_iter + 1):
        new = update(log_r)
        if not np.isfinite(new):
            return float("nan"), i, False
        done = abs(np.expm1(log_r - new)) < tol
        log_r = new
        if done:
            return log_r + lstar, i, True
    # update() is increasing in log r with slope below one, so log r - update(log r) changes sign once
    lo = hi = log_r
    step = 1.0
    while lo - update(lo) > 0 and step < 1e4:
        lo, step = lo - step, step * 2
    step = 1.0
    while hi - update(hi) < 0 and step < 1e4:
        hi, step = hi + step, step * 2
    try:
        root, info = brentq(lambda v: v - update(v), lo, hi, xtol=tol, full_output=True)
    except ValueError:
        return log_r + lstar, max_iter, False
    return float(root) + lstar, max_iter + info.function_calls, bool(info.converged)


def _relative_mse(l1_by_chain: np.ndarray, l2: np.ndarray, log_ml: float) -> float:
    """Frühwirth-Schnatter's (2004) RE², Gronau et al. (2017) Eq. 17 (module docstring)."""
    import arviz_stats as azs

    n1, n2 = l1_by_chain.size, l2.size
    log_s1, log_s2 = np.log(n1 / (n1 + n2)), np.log(n2 / (n1 + n2))
    # p/g at each point; f1 <= 1/s1 and f2 <= 1/s2, so exponentiating is safe
    b2 = l2 - log_ml
    f1 = np.exp(b2 - np.logaddexp(log_s1 + b2, log_s2))
    f2 = np.exp(-np.logaddexp(log_s1 + (l1_by_chain - log_ml), log_s2))
    term1 = np.var(f1, ddof=1) / np.mean(f1) ** 2 / n2
    var2 = np.var(f2, ddof=1)
    if var2 == 0:
        return float(term1)
    ess = float(azs.ess(f2, method="mean"))
    # the normalised spectral density at zero is N1/ESS: autocorrelation inflates the second term
    term2 = var2 / np.mean(f2) ** 2 / ess
    return float(term1 + term2)


def _median_ess(x_by_chain: np.ndarray) -> float:
    import arviz_stats as azs

    ess = [float(azs.ess(x_by_chain[..., k], method="bulk")) for k in range(x_by_chain.shape[-1])]
    ess = [e for e in ess if np.isfinite(e)]
    return float(np.median(ess)) if ess else float(x_by_chain.shape[0] * x_by_chain.shape[1])


def _fit_normal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, d = x.shape
    if n <= d + 1:
        raise ValueError(f"{n} draws cannot fit a {d}-dimensional normal proposal: draw more")
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError(
            "posterior draws are degenerate (a parameter does not vary): no normal proposal fits them"
        ) from None
    return x.mean(axis=0), chol


def _normal_logpdf(x: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    from scipy.linalg import solve_triangular

    z = solve_triangular(chol, (x - mean).T, lower=True)
    d = mean.size
    return -0.5 * np.sum(z**2, axis=0) - np.sum(np.log(np.diag(chol))) - 0.5 * d * np.log(2 * np.pi)


def _ravel(values: Mapping[str, Any], sites: Mapping[str, tuple[int, ...]]) -> np.ndarray:
    """``(draws, d)`` with sites in sorted-name order."""
    n = next(iter(values.values())).shape[0]
    return np.concatenate([np.asarray(values[k], dtype=np.float64).reshape(n, -1) for k in sites], axis=1)


def _unravel(x: np.ndarray, sites: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for k, shape in sites.items():
        size = int(np.prod(shape))
        out[k] = x[:, start:start + size].reshape((x.shape[0],) + shape)
        start += size
    return out


# --------------------------------------------------------------------------- #
# Compiled densities, cached per model so that repeated seeds reuse them      #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Compiled:
    sites: Callable[[], dict[str, tuple[int, ...]]]
    unconstrain: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    log_q: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    log_joint: Callable[[Mapping[str, np.ndarray]], np.ndarray]


def _compiled_for(model: Callable[..., Any], model_args: tuple, model_kwargs: Mapping[str, Any]) -> _Compiled:
    import jax

    leaves, treedef = jax.tree.flatten((tuple(model_args), dict(model_kwargs)))
    is_array = tuple(isinstance(v, np.ndarray | jax.Array) for v in leaves)
    static = tuple(None if a else v for v, a in zip(leaves, is_array, strict=True))
    dynamic = [v for v, a in zip(leaves, is_array, strict=True) if a]
    try:
        jitted = _jitted(model, treedef, is_array, static)
    except TypeError:  # an unhashable static argument: compile for this call only
        jitted = _jitted.__wrapped__(model, treedef, is_array, static)
    sites_fn, unc, lq, lj = jitted
    return _Compiled(
        sites=lambda: sites_fn(dynamic),
        unconstrain=lambda params: {k: np.asarray(v) for k, v in unc(dynamic, params).items()},
        log_q=lambda params: np.asarray(lq(dynamic, params)),
        log_joint=lambda params: np.asarray(lj(dynamic, params)),
    )


@functools.lru_cache(maxsize=16)
def _jitted(model, treedef, is_array, static):
    import jax
    import numpyro
    from numpyro.infer.util import log_density, potential_energy, unconstrain_fn

    def rebuild(dynamic):
        it = iter(dynamic)
        leaves = [next(it) if a else s for a, s in zip(is_array, static, strict=True)]
        args, kwargs = jax.tree.unflatten(treedef, leaves)
        return args, kwargs

    def latent_values(dynamic):
        args, kwargs = rebuild(dynamic)
        tr = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(*args, **kwargs)
        return {k: s["value"] for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}

    def sites(dynamic):
        # shapes only: an abstract trace runs no computation
        shapes = jax.eval_shape(latent_values, dynamic)
        return {k: tuple(shapes[k].shape) for k in sorted(shapes)}

    def batched(one):
        @jax.jit
        def f(dynamic, params):
            args, kwargs = rebuild(dynamic)
            return jax.lax.map(lambda p: one(args, kwargs, p), params, batch_size=_BATCH)

        return f

    unc = batched(lambda a, k, p: unconstrain_fn(model, a, k, p))
    log_q = batched(lambda a, k, p: -potential_energy(model, a, k, p))
    log_joint = batched(lambda a, k, p: log_density(model, a, k, p)[0])
    return sites, unc, log_q, log_joint


# --------------------------------------------------------------------------- #
# Fits                                                                         #
# --------------------------------------------------------------------------- #

_SCALAR_SITE = re.compile(r"^(\w+)__(\d+)$")


def latent_sites(fit: Any) -> dict[str, np.ndarray]:
    """Every latent sample site of a fit's model, rebuilt from its posterior group.

    The posterior keeps ``<s>``, ``tau_<s>``, ``<s>_f`` and ``sigma``; the
    sampler also drew, for ``s`` a sampled parameter name,

    - ``<s>_w_decentered`` (partial pooling, non-centred or centring weights ``c``):
      ``z_f = c w(<s>) + (w(<s>_f) - w(<s>)) tau_<s>^(c - 1)`` (``c = 0``:
      ``(w(<s>_f) - w(<s>)) / tau_<s>``), ``w`` the working transform
      (log for positive, logit for unit-interval, identity for real parameters;
      ``models/hierarchy.py``), since the model sets ``w(<s>_f) = w(<s>) + tau z_f``;
    - ``<s>_w`` (partial pooling, centred): ``w(<s>_f)``;
    - ``<s>__<j>`` (independent pooling with per-family priors or fixed values):
      column ``j`` of ``<s>_f``.

    Parameters
    ----------
    fit : Fit

    Returns
    -------
    dict
        Site name -> float64 array ``(chains, draws) + site shape``.

    Raises
    ------
    NotImplementedError
        A latent site none of these rules rebuilds (named in the message).
    """
    spec = fit.spec
    post = fit.datatree["posterior"]
    model, args, kwargs = _fit_model(fit)
    sites = _compiled_for(model, args, kwargs).sites()

    def get(name: str) -> np.ndarray:
        return np.asarray(post[name].values, dtype=np.float64)

    def working(name: str, values: np.ndarray) -> np.ndarray:
        # hierarchy.to_working in numpy float64 (log, logit or identity by support)
        support = spec.law_obj.spec(name).support
        if support == "positive":
            return np.log(values)
        if support == "unit":
            return np.log(values) - np.log1p(-values)
        return values

    partial = {p.sampled_name for p in spec.law_obj.params if spec.pooling.get(p.name) == "partial"}
    out: dict[str, np.ndarray] = {}
    for name, shape in sites.items():
        scalar = _SCALAR_SITE.match(name)
        if name in post.data_vars:
            value = get(name)
        elif name.endswith("_w_decentered") and name.removesuffix("_w_decentered") in partial:
            s = name.removesuffix("_w_decentered")
            c = np.asarray(spec.centred.get(s, 0.0) if isinstance(spec.centred, dict) else 0.0, np.float64)
            loc, tau = working(s, get(s))[..., None], get(f"tau_{s}")[..., None]
            value = c * loc + (working(s, get(f"{s}_f")) - loc) * tau ** (c - 1.0)
        elif name.endswith("_w") and name.removesuffix("_w") in partial:
            s = name.removesuffix("_w")
            value = working(s, get(f"{s}_f"))
        elif scalar and f"{scalar.group(1)}_f" in post.data_vars:
            value = get(f"{scalar.group(1)}_f")[..., int(scalar.group(2))]
        else:
            raise NotImplementedError(
                f"cannot rebuild latent site {name!r} of law {spec.law!r} from the posterior group; "
                "bridge sampling needs every site the sampler drew"
            )
        if value.shape[2:] != shape:
            raise NotImplementedError(f"rebuilt site {name!r} has shape {value.shape[2:]}, the model has {shape}")
        out[name] = value
    return out


@functools.lru_cache(maxsize=16)
def _model_for(spec_json: str):
    from .inference import ModelSpec, make_model

    return make_model(ModelSpec.from_json(spec_json))


def _fit_model(fit: Any) -> tuple[Callable[..., Any], tuple, dict[str, Any]]:
    """The fit's model and the exact arguments NUTS conditioned it on (``inference.run_nuts``)."""
    from .inference import model_args

    model = _model_for(fit.spec.to_json())
    return model, model_args(fit.data), {"log_y": np.log(fit.data.loss).astype(np.float32)}


def stored_log_joint(fit: Any) -> np.ndarray | None:
    """Joint log density (prior + likelihood) per draw as the sampler stored it,
    ``(chains, draws)``; None when the fit does not carry one."""
    dt = fit.datatree
    if "log_prior" not in dt.children:
        return None
    log_prior = np.asarray(dt["log_prior"]["log_prior"].values, dtype=np.float64)
    loglik = np.asarray(dt["log_likelihood"]["log_loss"].values, dtype=np.float64)
    return log_prior + loglik.reshape(loglik.shape[:2] + (-1,)).sum(axis=-1)


def evidence(
    fit: Any,
    seed: int = 0,
    *,
    n_proposal: int | None = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> Evidence:
    """Log marginal likelihood of a fit by bridge sampling.

    ``log p(y | M)``, ``y`` the observed log losses, with the fit's priors,
    pooling and likelihood; see the module docstring for the estimator and its
    Monte Carlo error. The fit's posterior draws are reused (no new MCMC): the
    sampler's internal sites are rebuilt by :func:`latent_sites`, and their joint
    density is checked against the one stored at sampling time.

    Parameters
    ----------
    fit : Fit
        A fit from ``bs.fit`` (or ``bs.load_fit``); ``Fit.from_draws`` has no
        posterior to integrate and is refused.
    seed : int
        Seed of the proposal draws.
    n_proposal, tol, max_iter
        As in :func:`bridge_sampling`.

    Returns
    -------
    Evidence

    Raises
    ------
    ValueError
        A fit whose draws did not come from its model's sampler.
    RuntimeError
        The rebuilt sites do not reproduce the sampler's joint density.
    NotImplementedError
        A model setting whose internal sites cannot be rebuilt (named).

    Notes
    -----
    Evidence depends on the priors' widths in a way predictive scores do not:
    doubling a weakly informative prior's scale costs about ``log 2`` nats per
    parameter the data pin down. Report Bayes factors with widened priors too
    (:func:`widen_priors`).
    """

    stored = stored_log_joint(fit)
    if stored is not None and not np.isfinite(stored).any():
        raise ValueError(
            "this fit has no sampler log density (Fit.from_draws?): bridge sampling needs a posterior "
            "sampled by bs.fit"
        )
    latent = latent_sites(fit)
    model, args, kwargs = _fit_model(fit)
    if stored is not None:
        take = min(_CHECK_DRAWS, stored.shape[1])
        head = {k: v[:, :take].reshape((-1,) + v.shape[2:]) for k, v in latent.items()}
        mine = _compiled_for(model, args, kwargs).log_joint(head)
        ref = stored[:, :take].ravel()
        # the sampler ran in float32: allow its rounding, not a wrong reconstruction
        bad = np.abs(mine - ref) > 1e-2 + 1e-4 * np.abs(ref)
        if bad.any():
            worst = float(np.max(np.abs(mine - ref)))
            raise RuntimeError(
                f"rebuilt latent sites do not reproduce the sampler's joint log density "
                f"(max difference {worst:.3g} nats over {take} draws per chain): cannot bridge-sample this fit"
            )
    return bridge_sampling(model, args, kwargs, latent, seed, n_proposal=n_proposal, tol=tol, max_iter=max_iter)


def _row_signature(fit: Any) -> dict[str, np.ndarray]:
    d = fit.data
    return {"N": d.N, "D": d.D, "U": d.U, "loss": d.loss,
            "family": np.array([d.families[i] for i in d.family_idx], dtype=str)}


def bayes_factor(fit_a: Any, fit_b: Any, seed: int = 0, **kwargs: Any) -> BayesFactor:
    """Log Bayes factor ``log p(y | a) - log p(y | b)`` of two fits of the same runs.

    Parameters
    ----------
    fit_a, fit_b : Fit
        Fits of exactly the same runs (N, D, U, loss and family, row by row).
    seed : int
        Seed of both bridge samplers.
    **kwargs
        Passed to :func:`evidence`.

    Returns
    -------
    BayesFactor

    Raises
    ------
    ValueError
        The fits were conditioned on different runs: their evidences are for
        different data and their ratio means nothing.
    """
    sa, sb = _row_signature(fit_a), _row_signature(fit_b)
    if len(sa["N"]) != len(sb["N"]):
        raise ValueError(
            f"Bayes factors need fits of the same runs: fit_a has {len(sa['N'])} rows, fit_b {len(sb['N'])}"
        )
    for col in sa:
        same = np.array_equal(sa[col], sb[col]) if col == "family" else np.allclose(sa[col], sb[col], rtol=1e-12, atol=0)
        if not same:
            rows = np.flatnonzero(sa[col] != sb[col])[:5].tolist()
            raise ValueError(f"Bayes factors need fits of the same runs: column {col!r} differs (rows {rows})")
    ea = evidence(fit_a, seed=seed, **kwargs)
    eb = evidence(fit_b, seed=seed, **kwargs)
    return BayesFactor(ea.log_ml - eb.log_ml, float(np.hypot(ea.mc_error, eb.mc_error)), ea, eb)


def widen_priors(spec: Any, factor: float = 2.0, dists: tuple[str, ...] = ("Normal", "LogNormal")) -> dict[str, Prior]:
    """Priors of a model with every ``Normal``/``LogNormal`` scale multiplied by ``factor``.

    For prior-sensitivity checks of evidence: ``bs.fit(df, law, priors=widen_priors(spec))``.
    Only priors whose distribution is in ``dists`` change (by default the law
    parameters'; the ``HalfNormal`` noise and population scales stay). For a
    LogNormal the scale is the sd of the log, so its range widens geometrically.

    Parameters
    ----------
    spec : ModelSpec or Fit
        ``inference.build_spec(law, data)`` or a fit (its ``spec``).
    factor : float
    dists : tuple of str

    Returns
    -------
    dict
        Sampled name -> Prior, only the changed ones (valid ``priors=`` overrides).
    """
    spec = getattr(spec, "spec", spec)
    if not factor > 0:
        raise ValueError(f"factor must be positive, got {factor!r}")
    out = {}
    for name, prior in spec.priors.items():
        if prior.dist in dists and "scale" in prior.kwargs:
            kw = prior.kwargs
            kw["scale"] = kw["scale"] * factor
            out[name] = Prior(prior.dist, **kw)
    return out
