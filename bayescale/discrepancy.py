"""Model discrepancy: the law's own error, growing with the compute extrapolated.

A posterior of a scaling law carries two sources of uncertainty, its parameters and the
run-to-run noise. Far from the runs it was fitted on, a third dominates: the law is only
approximately the right curve, and its error grows with the distance extrapolated
(Kennedy and O'Hagan 2001 call this term model discrepancy). bayescale models it as

    log L(x) = log L_law(x; theta) + delta(x) + noise,    delta(x) ~ StudentT(nu = 4, 0, kappa d(x)),

where ``d(x)`` is a distance in decades of training compute C = 6ND from the fitted runs
(the *design*, below) and ``kappa`` (log loss per decade, so roughly relative error per
decade) has a HalfNormal prior of scale ``KAPPA_PRIOR_SCALE``. The law error is heavy-tailed
(Student-t with ``NU = 4``, as the default likelihood): on repeated-data ladders most larger runs
land within the noise while a few (many epochs) miss by 20-50%, and a normal error would have
to widen every interval to cover those few. ``kappa`` cannot be learned
from the fitted runs' residuals (inside the data the law fits by construction), so it is
learned the way it is used: by leave-future-out *inside the training runs*. The runs are
cut by compute at the shares ``INTERNAL_HOLDOUTS``; for each cut the same model is refitted
on the smaller runs (the same compiled sampler, with the larger runs masked out of the
likelihood) and predicts the larger ones. Each internal held-out run i gives a residual
``r_i = log y_i - E[log L_law]`` under the internal posterior, the variance ``p_i`` of the
law's log loss across its draws (parameter uncertainty, taken as normal) and the noise scale
``s^2 = E[sigma^2]``. The noise keeps the fit's own likelihood, written as a scale mixture
of normals (lambda_1 ~ InvGamma(nu/2, nu/2) for the Student-t, 2 Exp(1) for the Laplace, 1
for the Gaussian) on 16 equal-probability nodes. How the held-out runs' law errors depend
on each other is the *structure*:

* ``"independent"`` (default): one law error per held-out run,
  ``delta_i ~ StudentT(4, 0, kappa d_i)`` (scale mixture lambda_2 ~ InvGamma(2, 2), 16 x 16
  nodes with lambda_1):

      p(r | kappa) = prod_i E[ Normal(r_i; 0, p_i + lambda_1 s^2 + lambda_2 kappa^2 d_i^2) ].

  It reads every held-out run as its own draw of the law error; where the runs of a cut
  miss together it takes their common miss as many confirmations of one kappa, so kappa's
  posterior is narrower than the data warrant (its centre is the usual moment estimate).
* ``"shared"``: the held-out runs of one internal cut share one law error per decade,
  ``delta_i = b_c d_i`` with ``b_c ~ StudentT(4, 0, kappa)``: a law that is off beyond a
  cut is off for every larger run in the same direction. The likelihood integrates the
  slope out, one dimension per cut (trapezoid rule on a fixed slope grid, ``_slope_grid``):

      p(r | kappa) = prod_c int t_4(b; 0, kappa) prod_{i in c} E[Normal(r_i - b d_i; 0, p_i + lambda_1 s^2)] db.

  The honest dependence, but kappa is learned from one slope per internal cut (four by
  default; with two its posterior stayed near the HalfNormal(0.05) prior). In
  ``benchmarks/calibration.py`` it is the best structure on Chinchilla and datablations
  and over-covers where the law's misses inside the data were larger than beyond it
  (Gadre: 86% of the 50% intervals; the simulated misspecification: 98% of the 90%
  ones); its four-dataset interval score is worse than the independent structure's, so
  it is not the default (README, Calibrated extrapolation).

Either likelihood, evaluated on a grid of kappa (one dimension: a grid is exact enough and
needs no sampler), times the prior, gives the posterior of kappa. A prediction at x adds a
fresh ``delta(x) = b d(x)``, ``b ~ StudentT(4, 0, kappa)``, kappa drawn from that posterior
(the same marginal under both structures). ``discrepancy="auto"`` takes the design whose
internal evidence (the likelihood integrated over kappa's prior) is largest;
``"auto/shared"``, ``"edge/independent"``, ... pick the structure (``parse_design``).
``benchmarks/calibration.py`` scores both structures on the same internal fits.

Designs of ``d(x)`` (compared by ``benchmarks/calibration.py``):

* ``"centre"`` (default): decades of compute above the training runs' median compute,
  ``max(0, log10 C - median log10 C_train)``. The law is pinned where the runs are dense;
  its error is already non-zero at the largest runs (which the fit weighs no more than
  any other) and keeps growing beyond them.
* ``"edge"``: decades beyond the largest training compute, zero inside the data, the
  form the extrapolation distance of ``Fit.predict`` reports.
* ``"constant"``: ``d = 1`` everywhere, an inflation of the noise learned by the same
  leave-future-out, not growing with distance (the comparison point: a fudge factor).

The distance is in compute alone, so at a fixed budget every allocation of N and D has the
same discrepancy: it widens a plan's loss and its risk, but the choice of N against D
comes from the exponents' posterior, not from this term.

Caveats, said plainly: the parameter uncertainty of an internal fit is taken as normal and
independent across its held-out runs (it is one posterior, so in truth correlated); the
default structure treats the held-out runs of a cut as independent draws of the law error
although they share one; the cuts are nested, so the largest runs are predicted by every
internal fit (from a different training set each time) and enter the likelihood once per
cut; the internal fits use the full table's reference scales and
priors, which depend on the larger runs' N, D and U, never on their loss. The grid
posterior is written here by hand: a few dozen lines of numpy, and no library fits a
one-parameter variance component with a shared random slope on a grid.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DESIGNS", "STRUCTURES", "Discrepancy", "distance", "learn_discrepancy", "parse_design"]

DESIGNS: tuple[str, ...] = ("centre", "edge", "constant")
#: How the internal held-out runs' law errors depend on each other (module docstring).
STRUCTURES: tuple[str, ...] = ("shared", "independent")
DEFAULT_STRUCTURE = "independent"
#: "auto": the design whose internal leave-future-out evidence is largest (``log_evidence``).
DEFAULT_DESIGN = "auto"
#: Shares of the training runs (by compute) held out by the internal leave-future-out fits:
#: four cuts, so kappa sees errors at several distances (two cuts left the shared structure's
#: kappa at its prior; README, Calibrated extrapolation).
INTERNAL_HOLDOUTS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)
#: HalfNormal scale of kappa, log loss per decade of compute: 5% per decade is a large law error.
KAPPA_PRIOR_SCALE = 0.05
#: Degrees of freedom of the law error's Student-t.
NU = 4.0
#: Equal-probability nodes of lambda ~ InvGamma(nu/2, nu/2): t = sqrt(lambda) * normal.
_N_LAMBDA = 16
#: Fewest runs an internal fit conditions on, and fewest it predicts.
MIN_INTERNAL_TRAIN = 8
MIN_INTERNAL_TEST = 2
_GRID = np.concatenate([[0.0], np.geomspace(1e-5, 1.0, 400)])
_LFO_COLUMNS = ("cut", "row", "family", "log10_C", "origin_centre", "origin_edge", "residual", "variance",
                "var_param", "sigma2", "pit")


def distance(design: str, log10_C: Any, origin: float) -> np.ndarray:
    """Distance ``d(x)`` in decades of compute for a design.

    Parameters
    ----------
    design : {"centre", "edge", "constant"}
    log10_C : array_like
        log10 of training compute C = 6ND (FLOPs) of the points predicted.
    origin : float
        log10 FLOPs the distance counts from: the training runs' median (``"centre"``) or
        largest (``"edge"``) compute; ignored by ``"constant"``.
    """
    x = np.asarray(log10_C, dtype=np.float64)
    if design == "constant":
        return np.ones_like(x)
    if design not in DESIGNS:
        raise ValueError(f"discrepancy design must be one of {', '.join(DESIGNS)}, got {design!r}")
    return np.maximum(x - float(origin), 0.0)


def origin_of(design: str, log10_C_train: Any) -> float:
    """Where the design's distance starts, from the training runs' log10 compute."""
    x = np.asarray(log10_C_train, dtype=np.float64)
    return float(np.median(x)) if design == "centre" else float(np.max(x))


def _halfnormal_logpdf(k: np.ndarray, scale: float) -> np.ndarray:
    return -0.5 * (k / scale) ** 2 + math.log(math.sqrt(2.0 / math.pi) / scale)


def kappa_posterior(design: str, lfo: pd.DataFrame, prior_scale: float = KAPPA_PRIOR_SCALE,
                    noise: str = "student_t", structure: str = DEFAULT_STRUCTURE) -> np.ndarray:
    """Posterior weights of kappa on the grid ``Discrepancy.grid()`` from internal LFO records
    (``noise``: the fit's likelihood; ``structure``: ``STRUCTURES``)."""
    return _grid_posterior(design, lfo, prior_scale, noise, structure)[0]


def log_evidence(design: str, lfo: pd.DataFrame, prior_scale: float = KAPPA_PRIOR_SCALE,
                 noise: str = "student_t", structure: str = DEFAULT_STRUCTURE) -> float:
    """log p(internal LFO residuals | design): the likelihood integrated over kappa's prior.
    ``discrepancy="auto"`` picks the design with the largest (the internal runs alone decide)."""
    return _grid_posterior(design, lfo, prior_scale, noise, structure)[1]


def parse_design(text: str) -> tuple[str, str]:
    """``"edge"`` -> ("edge", default structure); ``"auto/independent"`` -> ("auto", "independent")."""
    design, _, structure = str(text).partition("/")
    structure = structure or DEFAULT_STRUCTURE
    if design not in DESIGNS and design != "auto":
        raise ValueError(f"discrepancy design must be 'auto' or one of {', '.join(DESIGNS)}, got {design!r}")
    if structure not in STRUCTURES:
        raise ValueError(f"discrepancy structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
    return design, structure


def _lambda_nodes(noise: str = "student_t", nu: float = NU) -> np.ndarray:
    """Equal-probability nodes of the variance mixing of a unit-scale error: Student-t
    (InvGamma(nu/2, nu/2)), Laplace (2 Exp(1)) or Gaussian (1)."""
    from scipy.stats import expon, invgamma

    u = (np.arange(_N_LAMBDA) + 0.5) / _N_LAMBDA
    if noise == "gaussian":
        return np.ones(1)
    if noise == "laplace":
        return 2.0 * expon.ppf(u)
    return invgamma.ppf(u, a=nu / 2, scale=nu / 2)


def _design_distance(design: str, lfo: pd.DataFrame) -> np.ndarray:
    """Each internal held-out run's distance from its own internal training runs."""
    x = lfo["log10_C"].to_numpy(np.float64)
    if design == "constant":
        return np.ones_like(x)
    origins = lfo["origin_centre" if design == "centre" else "origin_edge"].to_numpy(np.float64)
    return np.maximum(x - origins, 0.0)


def _log_lik_grid(k: np.ndarray, r: np.ndarray, var_param: np.ndarray, sigma2: np.ndarray, d: np.ndarray,
                  noise: str) -> np.ndarray:
    """sum_i log E[Normal(r_i; 0, p_i + l1 s_i^2 + l2 k^2 d_i^2)] for every k on the grid."""
    from scipy.special import logsumexp

    l1 = _lambda_nodes(noise)
    l2 = _lambda_nodes("student_t", NU)
    base = (var_param[:, None] + sigma2[:, None] * l1[None, :])[:, :, None]  # (n, L1, 1)
    extra = (d[:, None] ** 2 * l2[None, :])[:, None, :]                        # (n, 1, L2)
    out = np.empty(k.size)
    chunk = max(1, int(4e6 // max(1, r.size * l1.size * l2.size)))
    for start in range(0, k.size, chunk):
        kk = k[start:start + chunk, None, None, None]
        var = base[None] + kk ** 2 * extra[None]
        logp = -0.5 * (np.log(2 * math.pi * var) + r[None, :, None, None] ** 2 / var)
        per_run = logsumexp(logp.reshape(logp.shape[0], r.size, -1), axis=2) - math.log(l1.size * l2.size)
        out[start:start + chunk] = per_run.sum(axis=1)
    return out


def _slope_grid() -> np.ndarray:
    """Nodes of the shared law-error slope b (log loss per decade): uniform 5e-4 steps over
    |b| <= 2 joined with log-spaced nodes down to 1e-7, so the trapezoid rule resolves both a
    Student-t prior of any scale on the kappa grid and a likelihood peaked at ~1e-3 width."""
    pos = np.geomspace(1e-7, 2.0, 1500)
    b = np.unique(np.concatenate([-pos, [0.0], pos, np.linspace(-2.0, 2.0, 8001)]))
    return b


@functools.lru_cache(maxsize=2)
def _slope_prior(k: tuple[float, ...]) -> np.ndarray:
    """t_nu(b; 0, k) times the trapezoid weight of b, shape (len(k), len(_slope_grid()))."""
    from scipy.stats import t as student_t

    b = _slope_grid()
    kk = np.asarray(k)[:, None]
    # trapezoid weights up to the end points, where the integrand is nil
    return student_t.pdf(b[None, :] / kk, NU) / kk * np.gradient(b)[None, :]


def _log_lik_grid_shared(k: np.ndarray, lfo: pd.DataFrame, d: np.ndarray, noise: str) -> np.ndarray:
    """sum_c log int t_nu(b; 0, k) prod_{i in c} E[Normal(r_i - b d_i; 0, p_i + l1 s_i^2)] db, every k.

    One law-error slope ``b`` per internal cut c, shared by its held-out runs; the integral
    over b is a trapezoid rule on ``_slope_grid()``. The runs' product does not depend on k:
    it is computed once per cut, and the integral for every k is one matrix product.
    """
    from scipy.special import logsumexp

    b = _slope_grid()
    l1 = _lambda_nodes(noise)
    cut_ids, cut_of = np.unique(lfo["cut"].to_numpy(np.float64), return_inverse=True)
    r = lfo["residual"].to_numpy(np.float64)
    var = lfo["var_param"].to_numpy(np.float64)[:, None] + lfo["sigma2"].to_numpy(np.float64)[:, None] * l1[None, :]
    g = np.zeros((cut_ids.size, b.size))  # log prod over the cut's runs, per slope node
    for start in range(0, r.size, 16):
        sl = slice(start, start + 16)
        e = r[sl, None, None] - b[None, :, None] * d[sl, None, None]            # (m, B, 1)
        v = var[sl, None, :]                                                     # (m, 1, L1)
        per_run = logsumexp(-0.5 * (np.log(2 * math.pi * v) + e ** 2 / v), axis=2) - math.log(l1.size)
        np.add.at(g, cut_of[sl], per_run)
    top = g.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):  # a k whose every slope is > 700 nats off: log 0 = -inf, weight 0
        pos = np.log(_slope_prior(tuple(k[k > 0])) @ np.exp(g - top).T) + top.T  # (K+, cuts)
    out = np.zeros(k.size)
    out[k > 0] = pos.sum(axis=1)
    out[k == 0] = g[:, np.argmin(np.abs(b))].sum()
    return out


#: every how many grid nodes the likelihood is first evaluated, and how far below the coarse
#: maximum (nats) a node may fall and still be evaluated exactly
_COARSE_STEP = 8
_COARSE_DROP = 60.0


def _coarse_to_fine(log_prior: np.ndarray, log_lik: Any) -> np.ndarray:
    """``log_lik`` on the kappa grid, evaluated exactly only where the posterior has mass.

    The log likelihood of a variance scale is smooth in kappa: first evaluated at every
    ``_COARSE_STEP``-th node (a factor 1.26 in kappa), then exactly at every node between
    the coarse neighbours of any coarse node within ``_COARSE_DROP`` nats of the coarse
    maximum of prior + likelihood; the rest are set to -inf (a weight below e^-60 of the
    largest, which changes neither the quantiles nor the evidence at float64 precision).
    Cuts the cost ~4-6x on 400-run records (3 designs: 2.7 s -> ~0.5 s on Chinchilla).
    """
    n = log_prior.size
    coarse = np.unique(np.r_[np.arange(0, n, _COARSE_STEP), n - 1])
    at = log_lik(_GRID[coarse])
    post = log_prior[coarse] + at
    keep = np.flatnonzero(post > post.max() - _COARSE_DROP)
    lo, hi = coarse[max(keep.min() - 1, 0)], coarse[min(keep.max() + 1, coarse.size - 1)]
    out = np.full(n, -np.inf)
    out[coarse] = at
    out[lo:hi + 1] = log_lik(_GRID[lo:hi + 1])
    return out


def _grid_posterior(design: str, lfo: pd.DataFrame, prior_scale: float,
                    noise: str = "student_t", structure: str = DEFAULT_STRUCTURE) -> tuple[np.ndarray, float]:
    k = _GRID
    widths = np.gradient(k)
    logw = _halfnormal_logpdf(k, prior_scale) + np.log(widths)
    if len(lfo):
        d = _design_distance(design, lfo)
        if structure == "shared":
            logw = logw + _log_lik_grid_shared(k, lfo, d, noise)
        elif structure == "independent":
            logw = logw + _coarse_to_fine(logw, lambda kk: _log_lik_grid(
                kk, lfo["residual"].to_numpy(np.float64), lfo["var_param"].to_numpy(np.float64),
                lfo["sigma2"].to_numpy(np.float64), d, noise))
        else:
            raise ValueError(f"discrepancy structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
    top = logw.max()
    w = np.exp(logw - top)
    return w / w.sum(), float(top + np.log(w.sum()))


@dataclass(frozen=True, eq=False)
class Discrepancy:
    """The learned discrepancy of a fit: design, kappa's posterior and its evidence.

    Attributes
    ----------
    design : str
        ``"centre"``, ``"edge"`` or ``"constant"`` (module docstring).
    origin : float
        log10 FLOPs the distance counts from, for this fit's runs.
    weights : numpy.ndarray
        Posterior weights of kappa on ``grid()`` (log loss per decade of compute).
    prior_scale : float
        HalfNormal scale of kappa's prior.
    lfo : DataFrame
        One row per internal held-out run: cut (share held out), row (in the fitted
        table), family, log10_C, origin_centre / origin_edge (the internal training runs'
        median and largest log10 compute), residual and variance of log loss under the
        plain posterior predictive of the internal fit, pit (its predictive CDF at the run).
    fits : tuple of dict
        Per internal cut: share, n_train, n_test, divergences, seconds.
    notes : tuple of str
    """

    design: str
    origin: float
    weights: np.ndarray = field(repr=False)
    prior_scale: float = KAPPA_PRIOR_SCALE
    lfo: pd.DataFrame = field(repr=False, default_factory=lambda: pd.DataFrame(columns=list(_LFO_COLUMNS)))
    fits: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    evidence: Mapping[str, float] = field(default_factory=dict)
    noise: str = "student_t"
    structure: str = DEFAULT_STRUCTURE

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(f"discrepancy design must be one of {', '.join(DESIGNS)}, got {self.design!r}")
        if self.structure not in STRUCTURES:
            raise ValueError(f"discrepancy structure must be one of {', '.join(STRUCTURES)}, got {self.structure!r}")
        w = np.asarray(self.weights, dtype=np.float64)
        if w.shape != _GRID.shape or not np.isfinite(w).all() or (w < 0).any() or not math.isclose(w.sum(), 1.0,
                                                                                                   rel_tol=1e-6):
            raise ValueError("discrepancy weights must be a probability vector over the kappa grid")
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "fits", tuple(dict(f) for f in self.fits))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "evidence", {str(k): float(v) for k, v in dict(self.evidence).items()})

    @staticmethod
    def grid() -> np.ndarray:
        """The kappa grid (log loss per decade of compute): 0 and 400 log-spaced values 1e-5..1."""
        return _GRID.copy()

    @classmethod
    def from_lfo(cls, design: str, lfo: pd.DataFrame, log10_C_train: Any, prior_scale: float = KAPPA_PRIOR_SCALE,
                 fits: Sequence[Mapping[str, Any]] = (), notes: Sequence[str] = (),
                 noise: str = "student_t") -> Discrepancy:
        """kappa's posterior for ``design`` from internal leave-future-out records.

        ``design`` is ``"auto"`` (the design of largest evidence) or one of ``DESIGNS``,
        optionally with a structure after a slash (``"edge/independent"``, ``parse_design``);
        ``noise`` is the fit's likelihood.
        """
        design, structure = parse_design(design)
        fitted = {d: _grid_posterior(d, lfo, prior_scale, noise, structure) for d in DESIGNS}
        evidence = {d: v[1] for d, v in fitted.items()}
        if design == "auto":
            design = max(DESIGNS, key=lambda d: evidence[d]) if len(lfo) else DESIGNS[0]
        return cls(design=design, origin=origin_of(design, log10_C_train), weights=fitted[design][0],
                   prior_scale=prior_scale, lfo=lfo.reset_index(drop=True), fits=tuple(dict(f) for f in fits),
                   notes=tuple(notes), evidence=evidence, noise=noise, structure=structure)

    def with_design(self, design: str, log10_C_train: Any) -> Discrepancy:
        """The same internal leave-future-out evidence read through another design (or "auto",
        either with an optional ``/structure``)."""
        return Discrepancy.from_lfo(design, self.lfo, log10_C_train, self.prior_scale, self.fits, self.notes,
                                    self.noise)

    # ------------------------------------------------------------------ kappa
    def kappa_quantiles(self, q: Sequence[float] = (0.05, 0.5, 0.95)) -> np.ndarray:
        """Posterior quantiles of kappa (log loss per decade of compute)."""
        cdf = np.cumsum(self.weights)
        return _GRID[np.minimum(np.searchsorted(cdf, np.asarray(q, dtype=np.float64)), _GRID.size - 1)]

    @property
    def kappa_rms(self) -> float:
        """sqrt(E[kappa^2]): the root mean square of the t scale per decade of distance."""
        return float(np.sqrt(np.sum(self.weights * _GRID ** 2)))

    @property
    def sd_per_decade(self) -> float:
        """The discrepancy's sd per decade of distance: ``kappa_rms sqrt(nu / (nu - 2))``."""
        from .models.likelihood import Likelihood

        return self.kappa_rms * math.sqrt(Likelihood("student_t", nu=NU).unit_variance())

    def distance(self, log10_C: Any) -> np.ndarray:
        """Decades of compute from this fit's origin (the design's ``d(x)``)."""
        return distance(self.design, log10_C, self.origin)

    def sd(self, log10_C: Any) -> np.ndarray:
        """The discrepancy's sd of log loss at given compute: ``sd_per_decade * d(x)``."""
        return self.sd_per_decade * self.distance(log10_C)

    def draws(self, log10_C: Any, n_draws: int, seed: int = 0, shared: bool = False) -> np.ndarray:
        """Draws of delta(x), shape ``(n_draws, len(log10_C))``, log-loss units.

        ``shared=False``: independent per point (the marginal of each point, for its
        interval); ``shared=True``: one standard normal per draw scaled by ``kappa d(x)``,
        so a draw is one consistent law error across points (for plans over candidates).
        """
        d = self.distance(np.atleast_1d(log10_C))
        if shared:
            return self.unit_draws(n_draws, seed)[:, None] * d[None, :]
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xD15C]))
        kappa = rng.choice(_GRID, size=n_draws, p=self.weights)
        return kappa[:, None] * rng.standard_t(NU, (n_draws, d.size)) * d[None, :]

    def unit_draws(self, n_draws: int, seed: int = 0) -> np.ndarray:
        """``kappa_s t_s`` per draw (kappa from its posterior, t a standard Student-t with
        ``NU`` degrees of freedom): the law error per decade of distance, one value per
        draw, shape ``(n_draws,)``."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xD15D]))
        return rng.choice(_GRID, size=n_draws, p=self.weights) * rng.standard_t(NU, n_draws)

    # --------------------------------------------------------------- coverage
    def lfo_coverage(self, levels: Sequence[float]) -> pd.DataFrame:
        """Coverage of central predictive intervals at ``levels`` on the internal held-out
        runs: plain (from the internal fits' own draws) and with this discrepancy (normal
        approximation of the plain predictive plus the t law error, kappa from this
        posterior; in-sample, since kappa was learned there)."""
        from scipy.stats import norm

        rows = []
        if not len(self.lfo):
            return pd.DataFrame(columns=["level", "plain", "calibrated", "n"])
        pit = self.lfo["pit"].to_numpy(np.float64)
        r = self.lfo["residual"].to_numpy(np.float64)
        p = self.lfo["var_param"].to_numpy(np.float64)
        s2 = self.lfo["sigma2"].to_numpy(np.float64)
        d = _design_distance(self.design, self.lfo)
        l1, l2 = _lambda_nodes(self.noise), _lambda_nodes("student_t", NU)
        keep = self.weights > 1e-9 * self.weights.max()
        k, w = _GRID[keep], self.weights[keep] / self.weights[keep].sum()
        cal_pit = np.zeros(r.size)
        for kj, wj in zip(k, w, strict=True):
            var = p[:, None, None] + s2[:, None, None] * l1[None, :, None] + (kj * d)[:, None, None] ** 2 * l2[None, None, :]
            cal_pit += wj * norm.cdf(r[:, None, None] / np.sqrt(var)).mean(axis=(1, 2))
        for lev in levels:
            half = float(lev) / 2
            rows.append({"level": float(lev), "plain": float(np.mean(np.abs(pit - 0.5) <= half)),
                         "calibrated": float(np.mean(np.abs(cal_pit - 0.5) <= half)), "n": int(pit.size)})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------- persistence
    def to_json(self) -> str:
        return json.dumps({
            "design": self.design, "origin": self.origin, "weights": self.weights.tolist(),
            "prior_scale": self.prior_scale, "lfo": self.lfo[list(_LFO_COLUMNS)].to_dict(orient="list"),
            "fits": list(self.fits), "notes": list(self.notes), "evidence": dict(self.evidence),
            "noise": self.noise, "structure": self.structure,
        })

    @classmethod
    def from_json(cls, text: str) -> Discrepancy:
        d = json.loads(text)
        return cls(design=d["design"], origin=float(d["origin"]), weights=np.asarray(d["weights"]),
                   prior_scale=float(d["prior_scale"]), lfo=pd.DataFrame(d["lfo"], columns=list(_LFO_COLUMNS)),
                   fits=tuple(d["fits"]), notes=tuple(d["notes"]), evidence=d.get("evidence", {}),
                   noise=d.get("noise", "student_t"),
                   # files written before the structure existed were learned with independent errors
                   structure=d.get("structure", "independent"))

    def summary(self) -> dict[str, Any]:
        """kappa's posterior median and 90% interval, the LFO evidence behind it, notes."""
        q5, q50, q95 = self.kappa_quantiles()
        return {"design": self.design, "structure": self.structure, "kappa_q5": float(q5), "kappa_median": float(q50), "kappa_q95": float(q95),
                "kappa_rms": self.kappa_rms, "sd_per_decade": self.sd_per_decade, "origin_log10_C": self.origin, "n_lfo_runs": int(len(self.lfo)),
                "log_evidence": dict(self.evidence),
                "internal_fits": list(self.fits), "notes": list(self.notes)}


def cut_sampler(cfg: Any) -> Any:
    """Settings of the internal fits that start from the full fit (``nuts.run_cuts``): 30% of
    its warmup (at least 100 steps) and half its draws (at least 100) per chain, ``cfg.chains``
    chains shared among the cuts (one chain per cut at the defaults). The predictive mean
    and variance of a held-out run are all a cut gives kappa; 500 draws estimate a variance
    to ~10% (ESS 200), below the spread between the runs of a cut. Warmup: 200 steps left
    the xLSTM cuts at 170-220 leapfrog steps per draw, 300 at 60-120."""
    from dataclasses import replace

    return replace(cfg, warmup=max(100, 3 * cfg.warmup // 10), draws=max(100, cfg.draws // 2), seed=cfg.seed + 1)


def learn_discrepancy(spec: Any, data: Any, cfg: Any, design: str = DEFAULT_DESIGN,
                      holdouts: Sequence[float] = INTERNAL_HOLDOUTS, method: str = "nuts",
                      prior_scale: float = KAPPA_PRIOR_SCALE, warm: Mapping[str, Any] | None = None) -> Discrepancy:
    """Learn kappa by leave-future-out inside the fitted runs (module docstring).

    Parameters
    ----------
    spec : ModelSpec
        The fitted model; the internal fits use it unchanged.
    data : ScalingData
        The fitted runs.
    cfg : SamplerConfig
        The fit's sampler settings.
    design : str
        A design, or ``"auto"``: the one with the largest internal evidence.
    holdouts : sequence of float
        Shares of the runs (by compute C = 6ND) held out per internal fit.
    method : {"nuts", "laplace"}
        As the fit: an approximate fit learns from approximate internal fits.
    prior_scale : float
        HalfNormal scale of kappa.
    warm : dict, optional
        Where the full fit's chains ended (``run_nuts``'s ``extra["warm"]``). Given, all
        cuts are sampled in one program that starts there (``nuts.run_cuts``, settings
        ``cut_sampler(cfg)``); otherwise each cut is a fit of its own with ``cfg`` and seed
        ``cfg.seed + 1 + k``.
    """
    import time
    from dataclasses import replace

    from .backtesting import distinct_splits
    from .inference import log_mean_draws, model_args, program_chain_method, run_laplace, run_nuts

    log10_C = np.log10(data.C)
    logN, logD, logU, fam = model_args(data)
    notes: list[str] = []
    cuts = []
    for k, cut in enumerate(distinct_splits(data, holdouts)):
        h, train, test = cut.holdout, cut.train, cut.test
        if cut.same_as is not None:  # its held-out runs would count twice as evidence about kappa
            notes.append(f"internal cut {h:g}: the same split as cut {cut.same_as:g}; skipped")
        elif train.size < MIN_INTERNAL_TRAIN or test.size < MIN_INTERNAL_TEST:
            notes.append(f"internal cut {h:g}: {train.size} runs to fit, {test.size} to predict; skipped")
        else:
            mask = np.zeros(data.n_rows, bool)
            mask[train] = True
            cuts.append((k, cut, mask))

    t0 = time.perf_counter()
    together = method == "nuts" and warm is not None and 0 < len(cuts) <= cfg.chains
    if together:
        from . import nuts

        sub = cut_sampler(cfg)
        runs = nuts.run_cuts(spec, data, sub, program_chain_method(sub), np.stack([m for _, _, m in cuts]), warm)
        steps = float(np.mean([r[2].mean() for r in runs]))
        shared_wall = (time.perf_counter() - t0) / len(cuts)
    records: list[pd.DataFrame] = []
    fits: list[dict[str, Any]] = []
    for j, (k, cut, mask) in enumerate(cuts):
        h, train, test = cut.holdout, cut.train, cut.test
        t0 = time.perf_counter()
        if together:
            samples, diverging, _ = runs[j]
        else:
            sub = replace(cfg, seed=cfg.seed + 1 + k)
            run = run_laplace if method == "laplace" else lambda *a, **kw: run_nuts(*a, progress=False, **kw)
            samples, extra = run(spec, data, sub, obs_mask=mask)
            diverging = extra["diverging"]
        flat = {s: v.reshape((-1,) + v.shape[2:]) for s, v in samples.items()}
        # every row, then the held-out ones: the whole table's shape is already compiled (the fit's
        # own log-likelihood), while each new subset shape would compile every eager op again and a
        # long session of them exhausts the process's memory mappings
        mu = log_mean_draws(spec, flat, logN, logD, logU, fam)[:, test]
        noise = np.asarray(spec.lik.standard_noise(cfg.seed + 101 + k, mu.shape))
        x = mu + flat["sigma"][:, None] * noise
        sigma2 = float(np.mean(np.asarray(flat["sigma"], np.float64) ** 2))
        y = np.log(data.loss[test])
        div = int(np.asarray(diverging).sum())
        wall = shared_wall if together else time.perf_counter() - t0
        fits.append({"holdout": float(h), "n_train": int(train.size), "n_test": int(test.size),
                     "divergences": div, "wall_s": round(wall, 3), "draws": int(mu.shape[0]),
                     "warm_start": bool(together), **({"steps_per_draw": round(steps, 1)} if together else {})})
        if div:
            notes.append(f"internal fit at cut {h:g} had {div} divergent transitions")
        records.append(pd.DataFrame({
            "cut": float(h), "row": test, "family": [data.families[i] for i in data.family_idx[test]],
            "log10_C": log10_C[test], "origin_centre": float(np.median(log10_C[train])),
            "origin_edge": float(np.max(log10_C[train])), "residual": y - mu.mean(axis=0),
            "variance": x.var(axis=0), "var_param": mu.var(axis=0), "sigma2": sigma2,
            "pit": (x < y[None, :]).mean(axis=0),
        }))
    lfo = pd.concat(records, ignore_index=True) if records else pd.DataFrame(columns=list(_LFO_COLUMNS))
    if not records:
        notes.append("no internal leave-future-out fit was possible: kappa is its prior alone")
    return Discrepancy.from_lfo(design, lfo, log10_C, prior_scale, fits, notes, noise=spec.likelihood)
