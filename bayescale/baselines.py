"""The classical baseline: Epoch AI's Huber fit of the Chinchilla law, with bootstrap intervals.

Besiroglu, Erdil, Barnett and You (2024), "Chinchilla Scaling: A replication attempt"
(arXiv:2404.10102; notebook ``data_analysis.ipynb`` of github.com/epoch-research/
analyzing-chinchilla) refit Hoffmann et al. (2022)'s Approach 3 as follows, and this module
does the same:

* the law ``L = E + A / N**alpha + B / D**beta`` in log parameters
  ``theta = (log A, log B, log E, alpha, beta)``, predicted in log space,
  ``log Lhat = logsumexp(log A - alpha log N, log B - beta log D, log E)``;
* objective ``sum_i Huber_delta(log Lhat_i - log L_i)`` with ``delta = 1e-3``, where
  ``Huber_delta(r) = r**2 / 2`` for ``|r| <= delta`` and ``delta (|r| - delta / 2)`` beyond
  (with so small a delta this is nearly least absolute deviations: a median fit);
* the point estimate is the best of L-BFGS-B runs (``scipy.optimize.minimize``) from a grid
  of starts: log A, log B in {0, 5, ..., 25}, log E in {-1, -0.5, ..., 1}, alpha, beta in
  {0, 0.5, ..., 2} (4,500 starts);
* uncertainty by the nonparametric bootstrap: resample the runs with replacement and refit,
  one L-BFGS-B run from the point estimate per replicate (Epoch used 4,000 replicates).

The bootstrap distribution of the fitted curve gives a *confidence* interval for the mean
curve, not an interval for the loss of a new run. For a fair comparison with Bayesian
*predictive* intervals :class:`BootstrapResult` also gives a residual-bootstrap *prediction*
interval (Davison and Hinkley 1997, Sec. 6.3.3): each draw is a bootstrap replicate's log
prediction plus a log residual of the point fit drawn with replacement, residuals scaled by
``sqrt(n / (n - p))`` (p = 5) because in-sample residuals understate out-of-sample error.

This module needs only numpy, scipy and pandas (no JAX). Units: N parameters, D tokens,
C = 6 N D FLOPs, loss nats/token, natural logs.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from .data import DataError, ScalingData, extrapolation_decades, new_points, validate

__all__ = [
    "DELTA",
    "PARAM_ORDER",
    "BootstrapResult",
    "HuberFit",
    "bootstrap",
    "chinchilla_log_loss",
    "fit_huber",
    "huber",
    "huber_baseline",
    "huber_objective",
    "huber_objective_and_grad",
    "kde_log_density",
    "start_grid",
]

#: Huber threshold on log-loss residuals used by Hoffmann et al. (2022) and Epoch (2024).
DELTA = 1e-3
#: Order of the optimised vector: Epoch's ``[log A, log B, log E, alpha, beta]``.
PARAM_ORDER: tuple[str, ...] = ("log_A", "log_B", "log_E", "alpha", "beta")
#: Number of law parameters (for the residual inflation ``sqrt(n / (n - p))``).
N_PARAMS = 5

_FULL_GRID = {
    "log_A": np.arange(0.0, 30.0, 5.0),
    "log_B": np.arange(0.0, 30.0, 5.0),
    "log_E": np.arange(-1.0, 1.5, 0.5),
    "alpha": np.arange(0.0, 2.5, 0.5),
    "beta": np.arange(0.0, 2.5, 0.5),
}
# 3 x 3 x 3 x 2 x 2 = 108 starts: on the Epoch data it finds the same optimum as the full grid.
_COARSE_GRID = {
    "log_A": np.array([0.0, 10.0, 20.0]),
    "log_B": np.array([0.0, 10.0, 20.0]),
    "log_E": np.array([-1.0, 0.0, 1.0]),
    "alpha": np.array([0.5, 1.5]),
    "beta": np.array([0.5, 1.5]),
}


# --------------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------------


def chinchilla_log_loss(theta: Any, logN: Any, logD: Any) -> np.ndarray:
    """Log of the Chinchilla law, ``log(E + A N^-alpha + B D^-beta)``, computed stably.

    Parameters
    ----------
    theta : array_like, shape (5,) or (S, 5)
        ``[log A, log B, log E, alpha, beta]`` (one vector, or S of them).
    logN, logD : array_like, shape (n,)
        Natural logs of parameters and training tokens.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)`` or ``(S, n)``: ``logsumexp(log A - alpha log N, log B - beta log D, log E)``.
    """
    th = np.asarray(theta, dtype=np.float64)
    logN = np.asarray(logN, dtype=np.float64)
    logD = np.asarray(logD, dtype=np.float64)
    a, b, e, al, be = (th[..., k, None] for k in range(5))
    t1 = a - al * logN
    t2 = b - be * logD
    m = np.maximum(np.maximum(t1, t2), e)
    return m + np.log(np.exp(t1 - m) + np.exp(t2 - m) + np.exp(e - m))


def huber(r: Any, delta: float = DELTA) -> np.ndarray:
    """Huber's loss: ``r**2 / 2`` for ``|r| <= delta``, else ``delta (|r| - delta / 2)``.

    The same function as ``scipy.special.huber(delta, r)`` (Huber 1964).
    """
    r = np.asarray(r, dtype=np.float64)
    psi = np.clip(r, -delta, delta)
    return psi * (r - 0.5 * psi)


def huber_objective_and_grad(
    theta: Any,
    logN: np.ndarray,
    logD: np.ndarray,
    logL: np.ndarray,
    delta: float = DELTA,
    weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Epoch's objective and its analytic gradient.

    ``f(theta) = sum_i w_i Huber_delta(r_i)``, ``r_i = log Lhat_i(theta) - log L_i``, with
    ``log Lhat = logsumexp(t1, t2, t3)``, ``t1 = log A - alpha log N``,
    ``t2 = log B - beta log D``, ``t3 = log E``. With softmax weights ``s_k = exp(t_k - log Lhat)``
    and ``psi(r) = clip(r, -delta, delta)`` (Huber's psi):
    ``df/d log A = sum w psi s1``, ``df/d log B = sum w psi s2``, ``df/d log E = sum w psi s3``,
    ``df/d alpha = -sum w psi s1 log N``, ``df/d beta = -sum w psi s2 log D``.

    Parameters
    ----------
    theta : array_like, shape (5,)
        ``[log A, log B, log E, alpha, beta]``.
    logN, logD, logL : numpy.ndarray, shape (n,)
        Logs of parameters, tokens and observed loss (nats/token).
    delta : float
        Huber threshold (1e-3 in Hoffmann et al. 2022 and Besiroglu et al. 2024).
    weights : numpy.ndarray, optional
        Per-run weights (bootstrap counts); default 1.

    Returns
    -------
    (float, numpy.ndarray)
        Objective value and gradient, shape (5,).
    """
    a, b, e, al, be = (float(x) for x in theta)
    t1 = a - al * logN
    t2 = b - be * logD
    m = np.maximum(np.maximum(t1, t2), e)
    x1 = np.exp(t1 - m)
    x2 = np.exp(t2 - m)
    x3 = np.exp(e - m)
    s = x1 + x2 + x3
    r = m + np.log(s) - logL
    psi = np.minimum(np.maximum(r, -delta), delta)
    h = psi * (r - 0.5 * psi)
    u = psi / s
    if weights is not None:
        h = h * weights
        u = u * weights
    q1 = u * x1
    q2 = u * x2
    grad = np.array([q1.sum(), q2.sum(), (u * x3).sum(), -(q1 @ logN), -(q2 @ logD)])
    return float(h.sum()), grad


def huber_objective(theta: Any, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray,
                    delta: float = DELTA, weights: np.ndarray | None = None) -> float:
    """Epoch's objective alone; see :func:`huber_objective_and_grad`."""
    return huber_objective_and_grad(theta, logN, logD, logL, delta, weights)[0]


# --------------------------------------------------------------------------------------------
# Starts and optimiser
# --------------------------------------------------------------------------------------------


def start_grid(grid: str | Mapping[str, Sequence[float]] | np.ndarray = "full") -> np.ndarray:
    """Starting points for the multi-start L-BFGS-B, shape ``(k, 5)``.

    Parameters
    ----------
    grid : "full", "coarse", mapping or array
        ``"full"``: Epoch's grid, log A, log B in {0, 5, ..., 25}, log E in {-1, -0.5, ..., 1},
        alpha, beta in {0, 0.5, ..., 2}: 6 x 6 x 5 x 5 x 5 = 4,500 starts.
        ``"coarse"``: log A, log B in {0, 10, 20}, log E in {-1, 0, 1}, alpha, beta in
        {0.5, 1.5}: 108 starts (about 40x faster; on Epoch's data it finds the same optimum).
        A mapping with keys ``log_A, log_B, log_E, alpha, beta`` gives the axes of a product
        grid; an array of shape ``(k, 5)`` gives the starts themselves.
    """
    if isinstance(grid, str):
        if grid not in ("full", "coarse"):
            raise ValueError(f"grid must be 'full', 'coarse', a mapping or an array, got {grid!r}")
        grid = _FULL_GRID if grid == "full" else _COARSE_GRID
    if isinstance(grid, Mapping):
        missing = [k for k in PARAM_ORDER if k not in grid]
        unknown = [k for k in grid if k not in PARAM_ORDER]
        if missing or unknown:
            raise ValueError(f"grid needs exactly the keys {', '.join(PARAM_ORDER)}; "
                             f"missing {missing}, unknown {unknown}")
        axes = [np.atleast_1d(np.asarray(grid[k], dtype=np.float64)) for k in PARAM_ORDER]
        starts = np.array(list(itertools.product(*axes)), dtype=np.float64)
    else:
        starts = np.atleast_2d(np.asarray(grid, dtype=np.float64))
    if starts.ndim != 2 or starts.shape[1] != 5 or starts.shape[0] == 0 or not np.isfinite(starts).all():
        raise ValueError(f"starts must be a finite (k, 5) array, got shape {starts.shape}")
    return starts


@contextlib.contextmanager
def _single_thread_blas() -> Iterator[None]:
    """Run BLAS single-threaded for the duration (restored afterwards).

    scipy's L-BFGS-B calls BLAS on 5-vectors; OpenBLAS's thread hand-offs then dominate and,
    on a loaded 2-core machine, made each run 10-50x slower (measured here: 0.38 s against
    0.026 s for one 97-evaluation run). Uses threadpoolctl when installed, else scipy's
    bundled OpenBLAS through ctypes; does nothing if neither is found.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    libs = []
    try:
        import ctypes

        import scipy

        root = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
        for path in glob.glob(os.path.join(root, "*openblas*.so*")):
            lib = ctypes.CDLL(path)
            get = getattr(lib, "scipy_openblas_get_num_threads", None)
            put = getattr(lib, "scipy_openblas_set_num_threads", None)
            if get is not None and put is not None:
                previous = int(get())
                put(1)
                libs.append((put, previous))
    except Exception:  # best effort only: never fail a fit over thread settings
        pass
    try:
        yield
    finally:
        for put, previous in libs:
            with contextlib.suppress(Exception):
                put(previous)


# scipy's default ftol (2.2e-9 on ``(f_k - f_k+1) / max(|f_k|, |f_k+1|, 1)``) is an *absolute*
# 2.2e-9 here, where the objective is ~1e-3: bootstrap refits then stopped after a few
# iterations, still at the starting point (A's bootstrap sd came out 10 instead of ~120).
# With these tolerances a single start from the point estimate reaches the multi-start optimum
# of the resampled data (checked on Epoch's runs).
FTOL = 1e-15
GTOL = 1e-12
MAXITER = 20000


#: Starts polished with the tight tolerances after the grid pass (best objectives first).
N_POLISH = 5


def _minimize(x0: np.ndarray, args: tuple, tight: bool = True) -> Any:
    from scipy.optimize import minimize

    options = {"maxiter": MAXITER, "ftol": FTOL, "gtol": GTOL} if tight else {}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return minimize(huber_objective_and_grad, x0, args=args, jac=True, method="L-BFGS-B",
                        options=options)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def _readonly(a: Any) -> np.ndarray:
    out = np.array(a, dtype=np.float64)
    out.setflags(write=False)
    return out


def _paper(theta: np.ndarray) -> dict[str, np.ndarray]:
    th = np.asarray(theta, dtype=np.float64)
    return {"E": np.exp(th[..., 2]), "A": np.exp(th[..., 0]), "B": np.exp(th[..., 1]),
            "alpha": th[..., 3], "beta": th[..., 4]}


def _single_family(pts: pd.DataFrame, families: tuple[str, ...]) -> None:
    if "family" in pts.columns and len(families) == 1:
        other = sorted(set(pts["family"].astype(str)) - set(families))
        if other:
            raise DataError(
                f"the Huber baseline was fitted to family {families[0]!r} only; rows ask for "
                f"{', '.join(map(repr, other))} (fit one baseline per family)"
            )


@dataclass(frozen=True, eq=False)
class HuberFit:
    """Point estimate of the Chinchilla law by Epoch's multi-start Huber fit.

    Attributes
    ----------
    params : dict
        Paper convention: ``E``, ``A``, ``B`` (loss units, nats/token), ``alpha``, ``beta``.
    theta : numpy.ndarray
        The optimised vector ``[log A, log B, log E, alpha, beta]``.
    objective : float
        ``sum_i Huber_delta(log Lhat_i - log L_i)`` at ``theta``.
    delta : float
        Huber threshold.
    n_starts : int
        Number of L-BFGS-B starts; ``start`` is the one that won.
    start : numpy.ndarray
    success : bool
        The winning run's convergence flag; ``message`` its message.
    message : str
    data : ScalingData
        The runs fitted (families ignored: one curve).
    residuals : numpy.ndarray
        ``log L_i - log Lhat_i`` per run (observed minus fitted).
    wall_s : float
        Seconds taken.
    """

    params: dict[str, float]
    theta: np.ndarray
    objective: float
    delta: float
    n_starts: int
    start: np.ndarray
    success: bool
    message: str
    data: ScalingData = field(repr=False)
    residuals: np.ndarray = field(repr=False)
    wall_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("theta", "start", "residuals"):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        if self.theta.shape != (5,) or not np.isfinite(self.theta).all():
            raise ValueError(f"theta must be 5 finite numbers, got {self.theta}")
        object.__setattr__(self, "params", {k: float(v) for k, v in self.params.items()})

    @property
    def n_runs(self) -> int:
        """Number of runs fitted."""
        return self.data.n_rows

    def log_loss(self, N: Any, D: Any) -> np.ndarray:
        """Fitted log loss at ``(N, D)`` (natural log of nats/token)."""
        return chinchilla_log_loss(self.theta, np.log(np.asarray(N, float)), np.log(np.asarray(D, float)))

    def predict(self, new: Any) -> pd.DataFrame:
        """Point prediction: input columns + ``mean``, ``median`` (both the fitted curve) and
        ``extrapolation`` (decades of compute C = 6ND outside the fitted runs' range)."""
        pts = new_points(new)
        _single_family(pts, self.data.families)
        out = pts.copy()
        out["mean"] = out["median"] = np.exp(self.log_loss(pts["N"].to_numpy(), pts["D"].to_numpy()))
        out["extrapolation"] = extrapolation_decades(pts["N"].to_numpy(), pts["D"].to_numpy(), self.data.compute_range)
        return out


def fit_huber(
    df: Any,
    grid: str | Mapping[str, Sequence[float]] | np.ndarray = "full",
    delta: float = DELTA,
    columns: Mapping[str, str] | None = None,
) -> HuberFit:
    """Fit the Chinchilla law by Epoch's procedure (Besiroglu et al. 2024).

    Minimises ``sum_i Huber_delta(logsumexp(log A - alpha log N_i, log B - beta log D_i, log E)
    - log L_i)`` with L-BFGS-B (analytic gradient) from every start of ``grid`` (scipy's
    default tolerances, as Epoch), then refines the 5 best end points with tight tolerances
    (``ftol`` 1e-15, ``gtol`` 1e-12) and keeps the lowest objective.

    Parameters
    ----------
    df : DataFrame, path or ScalingData
        Runs with N, D (or C) and loss; ``U`` and ``family`` are ignored (one curve for all
        rows, no repetition term).
    grid : "full", "coarse", mapping or array
        Starts, see :func:`start_grid`. ``"full"`` (4,500 starts) reproduces Epoch; on 240 runs
        it took 19 s here (53 s on a loaded 2-core machine), ``"coarse"`` (108 starts) 0.4-4 s.
    delta : float
        Huber threshold on log-loss residuals.
    columns : dict, optional
        Column renames as in :func:`bayescale.validate`.

    Returns
    -------
    HuberFit

    Examples
    --------
    On Epoch's 240 runs the full grid gives A = 477.8, B = 2143, E = 1.8172, alpha = 0.3473,
    beta = 0.3672: the grid-search best that Epoch's notebook reports. Their headline
    A = 482.0, B = 2085, E = 1.8169, alpha = 0.3478, beta = 0.3658 differs by at most 2.8%
    (B), under 0.05 bootstrap standard errors for every parameter::

        fit = fit_huber(bs.datasets.load("chinchilla", epoch_subset=True))
    """
    t0 = time.perf_counter()
    data = df if isinstance(df, ScalingData) else validate(df, columns=columns, check_duplicates=False)
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if data.n_rows < N_PARAMS:
        raise DataError(f"the Huber baseline needs at least {N_PARAMS} runs, got {data.n_rows}")
    starts = start_grid(grid)
    logN, logD, logL = np.log(data.N), np.log(data.D), np.log(data.loss)
    args = (logN, logD, logL, float(delta), None)
    found: list[tuple[float, int, np.ndarray]] = []
    with _single_thread_blas():
        for i, x0 in enumerate(starts):
            res = _minimize(x0, args, tight=False)
            if np.isfinite(res.fun) and np.isfinite(res.x).all():
                found.append((float(res.fun), i, res.x))
        if not found:
            raise RuntimeError("the Huber fit failed from every start (non-finite objective)")
        found.sort(key=lambda t: t[0])
        best, best_start = None, starts[0]
        for _, i, x in found[:N_POLISH]:
            res = _minimize(x, args, tight=True)
            if np.isfinite(res.fun) and np.isfinite(res.x).all() and (best is None or res.fun < best.fun):
                best, best_start = res, starts[i]
    if best is None:  # pragma: no cover - polishing starts at a finite point
        raise RuntimeError("the Huber fit's refinement failed (non-finite objective)")
    theta = np.asarray(best.x, dtype=np.float64)
    resid = logL - chinchilla_log_loss(theta, logN, logD)
    return HuberFit(
        params={k: float(v) for k, v in _paper(theta).items()},
        theta=theta, objective=float(best.fun), delta=float(delta), n_starts=len(starts),
        start=best_start, success=bool(best.success), message=str(best.message), data=data,
        residuals=resid, wall_s=time.perf_counter() - t0,
    )


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap replicates of a Huber fit, and the intervals they give.

    Attributes
    ----------
    fit : HuberFit
        The point estimate the replicates started from.
    theta : numpy.ndarray, shape (n_boot, 5)
        Replicates of ``[log A, log B, log E, alpha, beta]``.
    converged : numpy.ndarray of bool, shape (n_boot,)
        L-BFGS-B's success flag per replicate (all replicates are kept, as Epoch did).
    seed : int
    residuals : numpy.ndarray
        Residual pool for prediction intervals: the point fit's log residuals times
        ``inflation = sqrt(n / (n - 5))``.
    inflation : float
    wall_s : float
    """

    fit: HuberFit
    theta: np.ndarray
    converged: np.ndarray
    seed: int
    residuals: np.ndarray = field(repr=False)
    inflation: float = 1.0
    wall_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("theta", "residuals"):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        conv = np.array(self.converged, dtype=bool)
        conv.setflags(write=False)
        object.__setattr__(self, "converged", conv)
        if self.theta.ndim != 2 or self.theta.shape[1] != 5 or self.theta.shape[0] < 1:
            raise ValueError(f"theta must have shape (n_boot, 5), got {self.theta.shape}")

    @property
    def n_boot(self) -> int:
        """Number of bootstrap replicates."""
        return int(self.theta.shape[0])

    @property
    def params(self) -> pd.DataFrame:
        """Replicates in the paper's convention: columns E, A, B, alpha, beta."""
        return pd.DataFrame(_paper(self.theta))

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Estimate, bootstrap standard error and percentile interval per parameter.

        Columns ``estimate`` (the point fit), ``se`` (sd of the replicates), ``lower``,
        ``upper`` (central ``level`` percentile interval): the layout of Epoch's Table 1.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        draws = self.params
        q = draws.quantile([(1 - level) / 2, (1 + level) / 2])
        out = pd.DataFrame({
            "estimate": pd.Series(self.fit.params),
            "se": draws.std(ddof=1),
            "lower": q.iloc[0],
            "upper": q.iloc[1],
        })
        out.index.name = "parameter"
        out.attrs["level"] = level
        return out

    def _log_draws(self, pts: pd.DataFrame, kind: str, seed: int, draws_per_replicate: int | None) -> np.ndarray:
        if kind not in ("observation", "mean"):
            raise ValueError(f"kind must be 'observation' or 'mean', got {kind!r}")
        _single_family(pts, self.fit.data.families)
        logN = np.log(pts["N"].to_numpy(np.float64))
        logD = np.log(pts["D"].to_numpy(np.float64))
        mu = chinchilla_log_loss(self.theta, logN, logD)  # (B, rows)
        if kind == "mean":
            return mu
        k = draws_per_replicate or max(1, math.ceil(4000 / self.n_boot))
        rng = np.random.default_rng(seed)
        eps = rng.choice(self.residuals, size=(self.n_boot, k, mu.shape[1]), replace=True)
        return (mu[:, None, :] + eps).reshape(-1, mu.shape[1])

    def predictive_draws(
        self,
        new: Any,
        kind: Literal["observation", "mean"] = "observation",
        seed: int = 0,
        draws_per_replicate: int | None = None,
    ) -> np.ndarray:
        """Draws of loss (nats/token), shape ``(S, rows)``.

        ``kind="mean"``: the bootstrap replicates' curves, ``exp(log Lhat_b(x))``, S = n_boot
        (a confidence distribution for the mean curve). ``kind="observation"``: the residual
        bootstrap, ``exp(log Lhat_b(x) + e)``, ``e`` drawn with replacement from
        :attr:`residuals`, ``draws_per_replicate`` per replicate (default enough for 4,000
        draws in all).
        """
        return np.exp(self._log_draws(new_points(new), kind, seed, draws_per_replicate))

    def predict(
        self,
        new: Any,
        interval: float | Sequence[float] = 0.9,
        kind: Literal["observation", "mean"] = "observation",
        seed: int = 0,
    ) -> pd.DataFrame:
        """Predicted loss with bootstrap intervals, in the layout of :meth:`bayescale.Fit.predict`.

        Parameters
        ----------
        new : DataFrame or mapping
            Rows with N and D (or C).
        interval : float or list of float
            Central interval mass(es); several give ``lower_90``/``upper_90`` and so on.
        kind : {"observation", "mean"}
            ``"observation"``: residual-bootstrap prediction interval for a new run's loss;
            ``"mean"``: percentile bootstrap confidence interval for the mean curve (Epoch's).

        Returns
        -------
        DataFrame
            Input columns plus ``mean``, ``median``, interval bounds (nats/token), ``point``
            (the point fit's prediction) and ``extrapolation`` (decades of compute beyond the
            fitted runs).
        """
        from .fitting import summarise_log_draws

        pts = new_points(new)
        logs = self._log_draws(pts, kind, seed, None)
        out = summarise_log_draws(pts, logs, interval, kind, self.fit.data.compute_range,
                                  "chinchilla (Huber fit, bootstrap)")
        N, D = pts["N"].to_numpy(np.float64), pts["D"].to_numpy(np.float64)
        out.insert(out.columns.get_loc("extrapolation"), "point", np.exp(self.fit.log_loss(N, D)))
        return out

    def log_predictive_density(self, new: Any, loss: Any, seed: int = 0) -> np.ndarray:
        """Log density of observed log loss under the residual-bootstrap predictive draws.

        A Gaussian kernel density estimate per row on the log-loss draws ``z_s``, bandwidth by
        Silverman's rule ``h = 0.9 min(sd, IQR / 1.34) S^(-1/5)``:
        ``log p(log y) = log( (1/S) sum_s Normal(log y; z_s, h) )``. Density of *log* loss
        (add ``-log y`` for the density of loss itself).
        """
        z = self._log_draws(new_points(new), "observation", seed, None)
        y = np.log(np.asarray(loss, dtype=np.float64))
        return kde_log_density(z, y)


def kde_log_density(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gaussian-KDE log density of ``y[j]`` under the draws ``draws[:, j]`` (Silverman bandwidth)."""
    from scipy.special import logsumexp

    z = np.asarray(draws, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    S = z.shape[0]
    sd = z.std(axis=0, ddof=1)
    iqr = np.subtract(*np.quantile(z, [0.75, 0.25], axis=0)) / 1.34
    spread = np.where(iqr > 0, np.minimum(sd, iqr), sd)
    h = np.maximum(0.9 * spread * S ** (-0.2), 1e-12)
    u = (y[None, :] - z) / h
    return logsumexp(-0.5 * u * u, axis=0) - math.log(S) - np.log(h) - 0.5 * math.log(2 * math.pi)


def bootstrap(fit: HuberFit, n_boot: int = 4000, seed: int = 0) -> BootstrapResult:
    """Nonparametric bootstrap of a Huber fit (Besiroglu et al. 2024, Sec. 3).

    Each replicate draws n runs with replacement (as bootstrap counts ``w``) and refits by one
    L-BFGS-B run from the point estimate on ``sum_i w_i Huber_delta(r_i)``.

    Parameters
    ----------
    fit : HuberFit
    n_boot : int
        Replicates (Epoch: 4,000; about 5 ms each on 240 runs: 18 s for 4,000 here).
    seed : int

    Returns
    -------
    BootstrapResult
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    t0 = time.perf_counter()
    data = fit.data
    n = data.n_rows
    logN, logD, logL = np.log(data.N), np.log(data.D), np.log(data.loss)
    rng = np.random.default_rng(seed)
    thetas = np.empty((n_boot, 5))
    ok = np.zeros(n_boot, dtype=bool)
    x0 = np.asarray(fit.theta, dtype=np.float64).copy()
    with _single_thread_blas():
        for b in range(n_boot):
            w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
            res = _minimize(x0, (logN, logD, logL, fit.delta, w))
            good = np.isfinite(res.x).all() and np.isfinite(res.fun)
            thetas[b] = res.x if good else x0
            ok[b] = bool(res.success) and good
    inflation = math.sqrt(n / (n - N_PARAMS)) if n > N_PARAMS else 1.0
    return BootstrapResult(
        fit=fit, theta=thetas, converged=ok, seed=int(seed),
        residuals=np.asarray(fit.residuals) * inflation, inflation=inflation,
        wall_s=time.perf_counter() - t0,
    )


def huber_baseline(
    df: Any,
    grid: str | Mapping[str, Sequence[float]] | np.ndarray = "full",
    n_boot: int = 4000,
    seed: int = 0,
    delta: float = DELTA,
    columns: Mapping[str, str] | None = None,
) -> BootstrapResult:
    """:func:`fit_huber` then :func:`bootstrap`: Epoch's whole procedure in one call."""
    return bootstrap(fit_huber(df, grid=grid, delta=delta, columns=columns), n_boot=n_boot, seed=seed)
