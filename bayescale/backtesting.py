"""Leave-future-out backtest: fit on small compute, predict the largest-compute runs.

``bs.backtest(df, law="chinchilla", holdout=0.2, by="compute")`` sorts the runs by training
compute ``C = 6 N D`` (or by ``N`` or ``D``), fits the law with ``bs.fit`` on the runs below
the ``1 - holdout`` quantile and scores its predictions of the rest, the runs a user would
actually want to forecast. The same split is scored for the classical baseline
(:mod:`bayescale.baselines`: Epoch AI's Huber fit of the Chinchilla law with bootstrap
intervals), so the two can be compared like for like.

Scores (per method and kind of interval; ``y`` the held-out loss, nats/token):

* coverage of the central 50% and 90% intervals: the fraction of held-out runs with
  ``lower <= y <= upper`` (a calibrated 90% predictive interval covers about 90%);
* mean relative width of those intervals, ``(upper - lower) / median`` (sharpness);
* CRPS (Gneiting and Raftery 2007), ``E|X - y| - E|X - X'| / 2`` over the predictive draws
  ``X`` of loss, in nats/token, lower is better. Computed by arviz-stats' CRPS kernel
  (``arviz_stats.base.array_stats.loo_score``, the probability-weighted-moment form of
  Taillardat et al. 2016) with equal weights, which is exactly the sample energy form with
  the ``1/S^2`` (V-statistic) pair term; a point mass scores ``|x - y|``. arviz-stats'
  ``loo_score`` proper needs PSIS-LOO weights of in-sample data, which held-out runs do not
  have; equal weights are the held-out case;
* log predictive density of the held-out log loss, per run (higher is better): for bayescale
  ``log (1/S) sum_s p(log y | mu_s, sigma_s)`` with the fit's own likelihood (Student-t by
  default); for the baseline a Gaussian kernel density estimate on its residual-bootstrap
  draws (it has no likelihood of its own). Only for ``kind="observation"``;
* median relative error of the median prediction, ``median_i |median_i - y_i| / y_i``;
* mean extrapolation distance: decades of compute beyond the training runs' range.

Kinds: ``"observation"`` are predictive intervals for a new run's loss (bayescale's posterior
predictive; the baseline's residual bootstrap); ``"mean"`` are intervals for the mean curve
(bayescale's credible interval of the law; the baseline's bootstrap confidence interval, the
interval Epoch report). Only ``"observation"`` intervals are meant to cover held-out runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .data import DataError, ScalingData, extrapolation_decades, validate

__all__ = ["BacktestResult", "Split", "backtest", "coverage", "crps", "distinct_splits", "interval_score", "split"]

#: Interval masses always scored.
LEVELS: tuple[float, ...] = (0.5, 0.9)
#: Baseline defaults: coarse start grid and a few hundred bootstraps (seconds, not minutes).
BASELINE_DEFAULTS: dict[str, Any] = {"grid": "coarse", "n_boot": 400, "seed": 0}
#: Fewest training runs per family for the 5-parameter Huber baseline.
BASELINE_MIN_RUNS = 6
#: Fewest distinct (N, D) points per family (the Chinchilla form has 5 parameters).
BASELINE_MIN_POINTS = 5
_BY = {"compute": "C", "C": "C", "N": "N", "D": "D"}


# --------------------------------------------------------------------------------------------
# Scoring functions (pure numpy; tested on hand-checked arrays)
# --------------------------------------------------------------------------------------------


def crps(draws: Any, y: Any) -> np.ndarray:
    """Continuous ranked probability score of observations under sample draws.

    ``CRPS(F, y) = E|X - y| - E|X - X'| / 2`` (Gneiting and Raftery 2007, Eq. 21), estimated
    from S draws with the pair term averaged over all ``S^2`` pairs, which is what
    arviz-stats' kernel computes with equal weights (used here).

    Parameters
    ----------
    draws : array_like, shape (S, m) or (S,)
        Predictive draws per observation (columns).
    y : array_like, shape (m,) or scalar
        Observations.

    Returns
    -------
    numpy.ndarray, shape (m,)
        CRPS per observation, in the units of ``y``; lower is better, 0 only for a point mass
        at ``y``.
    """
    from arviz_stats.base import array_stats

    x = np.asarray(draws, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.broadcast_to(np.asarray(y, dtype=np.float64), (x.shape[1],))
    ary = np.ascontiguousarray(x.T)[:, None, :]  # (m, chain=1, draw=S)
    neg = array_stats.loo_score(ary, y, np.zeros_like(ary), kind="crps", chain_axis=-2, draw_axis=-1)
    return -np.asarray(neg, dtype=np.float64).reshape(-1)


def interval_score(lower: Any, upper: Any, y: Any, level: float) -> np.ndarray:
    """Interval score of central ``level`` intervals (Gneiting and Raftery 2007, Eq. 43).

    ``IS = (u - l) + (2/a) (l - y) 1{y < l} + (2/a) (y - u) 1{y > u}``, ``a = 1 - level``:
    the width plus a penalty for a miss that grows with its size. Lower is better, in the
    units of ``y``; a proper score for the pair of quantiles, so it cannot be gamed by
    widening or narrowing the interval.
    """
    lo, hi, y = (np.asarray(a, dtype=np.float64) for a in (lower, upper, y))
    a = 1.0 - float(level)
    return (hi - lo) + (2.0 / a) * np.maximum(lo - y, 0.0) + (2.0 / a) * np.maximum(y - hi, 0.0)


def coverage(lower: Any, upper: Any, y: Any) -> float:
    """Fraction of observations with ``lower <= y <= upper`` (NaN rows ignored)."""
    lo, hi, y = (np.asarray(a, dtype=np.float64) for a in (lower, upper, y))
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(y)
    if not ok.any():
        return float("nan")
    return float(np.mean((lo[ok] <= y[ok]) & (y[ok] <= hi[ok])))


def split(data: ScalingData, holdout: float = 0.2, by: str = "compute") -> tuple[np.ndarray, np.ndarray, float]:
    """Leave-future-out split: train on runs below the ``1 - holdout`` quantile of ``by``.

    Parameters
    ----------
    data : ScalingData
    holdout : float in (0, 1)
        Share of runs (by quantile) to hold out.
    by : {"compute", "N", "D"}
        ``"compute"`` orders runs by ``C = 6 N D`` FLOPs.

    Returns
    -------
    train, test : numpy.ndarray of int
        Row positions; ``test`` holds every run with value ``>= q``, ``q`` the
        ``1 - holdout`` quantile (linear interpolation), so ties at ``q`` are held out.
    q : float
        The threshold, in the units of ``by``.
    """
    if by not in _BY:
        raise ValueError(f"by must be one of 'compute', 'N', 'D', got {by!r}")
    if isinstance(holdout, bool) or not 0 < float(holdout) < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout!r}")
    x = {"C": data.C, "N": data.N, "D": data.D}[_BY[by]]
    q = float(np.quantile(x, 1.0 - float(holdout)))
    test = np.flatnonzero(x >= q)
    train = np.flatnonzero(x < q)
    if train.size == 0:
        raise DataError(f"backtest: no run has {by} below the {1 - holdout:.2f} quantile ({q:.3g}); "
                        "every run would be held out")
    return train, test, q


@dataclass(frozen=True, eq=False)
class Split:
    """One leave-future-out split of :func:`distinct_splits`.

    Attributes
    ----------
    holdout : float
        Share held out.
    train, test : numpy.ndarray of int
        Row positions (as :func:`split`).
    threshold : float
        Runs with ``by >= threshold`` are held out.
    same_as : float or None
        The earlier share that gave the same split (runs tied in ``by``), or ``None``.
    """

    holdout: float
    train: np.ndarray
    test: np.ndarray
    threshold: float
    same_as: float | None = None


def distinct_splits(data: ScalingData, holdouts: Sequence[float], by: str = "compute") -> list[Split]:
    """:func:`split` at each share, marking a share whose split an earlier one already gave.

    Runs tied in ``by`` (a repetition ladder: one N and D at several epoch counts) can put two
    shares on one split; fitted and scored twice, its held-out runs would count twice.
    """
    out: list[Split] = []
    first: dict[tuple[int, ...], float] = {}
    for h in holdouts:
        train, test, q = split(data, h, by)
        key = tuple(train.tolist())
        out.append(Split(float(h), train, test, q, first.get(key)))
        first.setdefault(key, float(h))
    return out


def _interval_columns(levels: tuple[float, ...]) -> list[str]:
    return [f"{side}_{round(100 * lev):d}" for lev in levels for side in ("lower", "upper")]


def _describe(log_draws: np.ndarray, levels: tuple[float, ...]) -> dict[str, np.ndarray]:
    out = {"mean": np.exp(log_draws).mean(axis=0), "median": np.exp(np.median(log_draws, axis=0))}
    for lev in levels:
        lo, hi = np.exp(np.quantile(log_draws, [(1 - lev) / 2, (1 + lev) / 2], axis=0))
        out[f"lower_{round(100 * lev):d}"], out[f"upper_{round(100 * lev):d}"] = lo, hi
    return out


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """A leave-future-out backtest of bayescale and the Huber baseline.

    Attributes
    ----------
    law : str
        The law bayescale fitted (the baseline always fits the Chinchilla form).
    by : str
        Split variable: "compute" (C = 6ND), "N" or "D".
    holdout : float
    threshold : float
        Runs with ``by >= threshold`` were held out (FLOPs for "compute").
    levels : tuple of float
        Interval masses scored.
    train_index, test_index : numpy.ndarray
        Row positions in the validated table.
    train_range : tuple of float
        Smallest and largest compute (FLOPs) among the training runs.
    predictions : DataFrame
        One row per (method, kind, held-out run): ``row`` (position in the validated table), family, N, D, U,
        C, loss, method, kind, mean, median, lower_50, upper_50, lower_90, upper_90, crps,
        log_score, rel_error, extrapolation (and ``point`` for the baseline).
    scores : DataFrame
        One row per (method, kind): n_test, coverage_50, coverage_90, width_50, width_90
        (mean relative width), crps, log_score (mean per run), median_rel_error,
        mean_extrapolation, max_extrapolation.
    fit : Fit
        The bayescale fit on the training runs.
    baseline : dict
        Family -> :class:`bayescale.baselines.BootstrapResult` (empty without the baseline).
    notes : tuple of str
    wall_s : dict
        Seconds per method.
    """

    law: str
    by: str
    holdout: float
    threshold: float
    levels: tuple[float, ...]
    train_index: np.ndarray = field(repr=False)
    test_index: np.ndarray = field(repr=False)
    train_range: tuple[float, float]
    predictions: pd.DataFrame = field(repr=False)
    scores: pd.DataFrame = field(repr=False)
    fit: Any = field(repr=False)
    baseline: Mapping[str, Any] = field(repr=False, default_factory=dict)
    notes: tuple[str, ...] = ()
    wall_s: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("train_index", "test_index"):
            a = np.array(getattr(self, name), dtype=np.int64)
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be in (0, 1), got {self.holdout}")
        object.__setattr__(self, "levels", tuple(float(v) for v in self.levels))
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def n_train(self) -> int:
        return int(self.train_index.size)

    @property
    def n_test(self) -> int:
        return int(self.test_index.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: split, scores, per-run predictions, diagnostics, notes."""
        d = self.fit.diagnose() if self.fit is not None else None
        return {
            "law": self.law, "by": self.by, "holdout": self.holdout, "threshold": self.threshold,
            "n_train": self.n_train, "n_test": self.n_test, "train_range": list(self.train_range),
            "levels": list(self.levels),
            "scores": _records(self.scores),
            "predictions": _records(self.predictions),
            "diagnostics": None if d is None else {
                "ok": d.ok, "divergences": d.divergences, "max_r_hat": d.max_r_hat,
                "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail, "messages": list(d.messages),
            },
            "notes": list(self.notes), "wall_s": dict(self.wall_s),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            clean[str(k)] = v
        out.append(clean)
    return out


# --------------------------------------------------------------------------------------------
# The backtest
# --------------------------------------------------------------------------------------------


def _bayes_rows(fit: Any, test: pd.DataFrame, levels: tuple[float, ...], seed: int,
                method: str = "bayescale") -> list[pd.DataFrame]:
    from scipy.special import logsumexp

    pts = test[["N", "D", "U", "family"]]
    y = test["loss"].to_numpy(np.float64)
    log_obs = np.log(fit.predictive_draws(pts, kind="observation", seed=seed).values)
    log_mu = np.log(fit.predictive_draws(pts, kind="mean", seed=seed).values)
    sigma = np.asarray(fit.datatree["posterior"]["sigma"].values, dtype=np.float64).reshape(-1, 1)
    # log_mu already carries the discrepancy draw (if any): the density is the likelihood
    # around the law plus its error, averaged over both
    loglik = np.asarray(fit.spec.lik.dist(log_mu, sigma).log_prob(np.log(y)), dtype=np.float64)
    lpd = logsumexp(loglik, axis=0) - math.log(loglik.shape[0])
    frames = []
    for kind, logs in (("observation", log_obs), ("mean", log_mu)):
        cols = _describe(logs, levels)
        cols["crps"] = crps(np.exp(logs), y)
        cols["log_score"] = lpd if kind == "observation" else np.full(y.shape, np.nan)
        cols["pit"] = (logs < np.log(y)[None, :]).mean(axis=0)
        frames.append(_frame(test, method, kind, cols))
    return frames


def _calibration_rows(fit: Any, test: pd.DataFrame, levels: tuple[float, ...], seed: int,
                      designs: Sequence[str]) -> list[pd.DataFrame]:
    """The fit's own predictions ("bayescale"), the plain model's ("plain") and, for each
    requested design, the same internal evidence read through it ("bayescale:edge", ...;
    the fit's own design too, so every design has a complete set of rows)."""
    frames = _bayes_rows(fit, test, levels, seed)
    if fit.discrepancy is None:
        return frames
    frames += _bayes_rows(fit.with_discrepancy(None), test, levels, seed, method="plain")
    for design in designs:
        frames += _bayes_rows(fit.with_discrepancy(design), test, levels, seed, method=f"bayescale:{design}")
    return frames


def _baseline_rows(boot: Any, test: pd.DataFrame, levels: tuple[float, ...], seed: int) -> list[pd.DataFrame]:
    from .baselines import kde_log_density

    pts = test[["N", "D"]]
    y = test["loss"].to_numpy(np.float64)
    point = boot.predict(pts, interval=0.5)["point"].to_numpy()
    frames = []
    for kind in ("observation", "mean"):
        logs = np.log(boot.predictive_draws(pts, kind=kind, seed=seed))
        cols = _describe(logs, levels)
        cols["crps"] = crps(np.exp(logs), y)
        cols["log_score"] = kde_log_density(logs, np.log(y)) if kind == "observation" else np.full(y.shape, np.nan)
        cols["pit"] = (logs < np.log(y)[None, :]).mean(axis=0)
        cols["point"] = point
        frames.append(_frame(test, "huber", kind, cols))
    return frames


def _frame(test: pd.DataFrame, method: str, kind: str, cols: Mapping[str, np.ndarray]) -> pd.DataFrame:
    out = test[["row", "family", "N", "D", "U", "C", "loss", "extrapolation"]].copy()
    out.insert(7, "method", method)
    out.insert(8, "kind", kind)
    for k, v in cols.items():
        out[k] = v
    out["rel_error"] = (out["median"] - out["loss"]) / out["loss"]
    for col in list(out.columns):
        if col.startswith("lower_"):
            tag = col.removeprefix("lower_")
            out[f"interval_score_{tag}"] = interval_score(out[col], out[f"upper_{tag}"], out["loss"], int(tag) / 100)
    return out


def _scores(pred: pd.DataFrame, levels: tuple[float, ...]) -> pd.DataFrame:
    rows = []
    for (method, kind), g in pred.groupby(["method", "kind"], sort=False):
        ok = g["median"].notna()
        g = g[ok]
        rec: dict[str, Any] = {"method": method, "kind": kind, "n_test": int(len(g))}
        for lev in levels:
            tag = round(100 * lev)
            rec[f"coverage_{tag}"] = coverage(g[f"lower_{tag}"], g[f"upper_{tag}"], g["loss"])
        for lev in levels:
            tag = round(100 * lev)
            rec[f"width_{tag}"] = float(((g[f"upper_{tag}"] - g[f"lower_{tag}"]) / g["median"]).mean()) if len(g) else np.nan
        for lev in levels:
            tag = round(100 * lev)
            rec[f"interval_score_{tag}"] = float(g[f"interval_score_{tag}"].mean()) if len(g) else np.nan
        rec["crps"] = float(g["crps"].mean()) if len(g) else np.nan
        rec["log_score"] = float(g["log_score"].mean()) if len(g) and g["log_score"].notna().any() else np.nan
        rec["median_rel_error"] = float(g["rel_error"].abs().median()) if len(g) else np.nan
        rec["mean_extrapolation"] = float(g["extrapolation"].mean()) if len(g) else np.nan
        rec["max_extrapolation"] = float(g["extrapolation"].max()) if len(g) else np.nan
        rows.append(rec)
    return pd.DataFrame(rows)


def backtest(
    df: Any,
    law: str = "chinchilla",
    holdout: float = 0.2,
    by: str = "compute",
    interval: float = 0.9,
    baseline: bool = True,
    fit_kwargs: Mapping[str, Any] | None = None,
    baseline_kwargs: Mapping[str, Any] | None = None,
    columns: Mapping[str, str] | None = None,
    seed: int = 0,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    out: str | Any | None = None,
    designs: Sequence[str] = (),
) -> Any:
    """Fit on the smaller-compute runs, predict the largest, and score the predictions.

    One cut point (``holdout=0.2``) returns a :class:`BacktestResult` with the fit,
    the per-run predictions and the baseline. Several cut points (``holdout=(0.1,
    0.2, 0.4)``) are several independent backtests: they run as the tasks of a
    sweep (:func:`bayescale.sweep`, on ``executor``) and return its
    :class:`~bayescale.sweeping.SweepResult`, one row of scores per cut point
    (no fits or per-run predictions: a task returns a small record).

    Parameters
    ----------
    df : DataFrame, path or mapping
        Runs as for :func:`bayescale.fit`.
    law : str
        Law for bayescale (``bayescale.models.law_names()``).
    holdout : float in (0, 1), or a sequence of them
        Share of runs held out: those at or above the ``1 - holdout`` quantile of ``by``.
        A sequence runs one backtest per share (see above).
    by : {"compute", "N", "D"}
        ``"compute"``: training FLOPs ``C = 6 N D``.
    interval : float
        An extra interval mass to score besides 50% and 90%.
    baseline : bool
        Also score the Huber baseline (:mod:`bayescale.baselines`) on the same split. It
        fits the Chinchilla form ``E + A/N^alpha + B/D^beta`` whatever ``law`` is (no
        repetition term, ``U`` ignored), one fit per family (the classical practice: no
        pooling); a family with fewer than 6 training runs, or fewer than 5 distinct (N, D)
        points among them (the form ignores U, so runs differing only in U are one point for
        it), gets no baseline prediction (NaN rows, a note says why).
    fit_kwargs : dict, optional
        Passed to :func:`bayescale.fit` (``hierarchy``, ``priors``, ``draws``,
        ``target_accept``, ...); ``progress`` defaults to False.
    baseline_kwargs : dict, optional
        ``grid`` (default ``"coarse"``, 108 starts), ``n_boot`` (default 400), ``seed``,
        ``delta``. Epoch's full procedure is ``{"grid": "full", "n_boot": 4000}``: about
        40x slower, and on Epoch's data it gives the same optimum as the coarse grid.
    columns : dict, optional
        Column renames as in :func:`bayescale.validate`.
    seed : int
        Seed of the predictive draws. With several cut points, one seed drives both the
        fits and the predictive draws: ``fit_kwargs["seed"]`` if given, else ``seed``.
    executor : {"local", "processes", "ray"}
        Where the backtests of several cut points run (:mod:`bayescale.executors`). One
        cut point always runs in this process (one task gains nothing from a pool).
    workers, address : optional
        As for :func:`bayescale.sweep`: pool size; Ray cluster address.
    out : path, optional
        With several cut points: the JSON-lines file results stream to (resumable).
    designs : sequence of str
        With one cut point: also score these discrepancy designs (``"edge"``,
        ``"constant"``, ...) as methods ``"bayescale:<design>"``, from the same fit and
        the same internal leave-future-out evidence (``Fit.with_discrepancy``).

    Methods scored: ``"bayescale"`` (the fit as made: by default with its learned
    discrepancy, learned inside the training runs only), ``"plain"`` (the same
    posterior without the discrepancy; only when the fit has one) and ``"huber"``.

    Returns
    -------
    BacktestResult or SweepResult
        One cut point: ``scores`` (one row per method and kind), ``predictions`` (one row
        per held-out run, method and kind), the split, the fit and the baseline
        replicates. Several: a ``SweepResult`` whose ``table`` has one row per cut point
        (``split``), bayescale's 50%/90% coverage, CRPS, log score and errors, and the
        baseline's (``huber_*``) when ``baseline`` is true; ``interval`` is not scored there.

    Examples
    --------
    ::

        bt = bs.backtest(bs.datasets.load("chinchilla"), law="chinchilla", holdout=0.2)
        bt.scores[["method", "kind", "coverage_90", "crps", "median_rel_error"]]
        cuts = bs.backtest(df, holdout=(0.1, 0.2, 0.3, 0.4), executor="processes")
        cuts.table[["split", "coverage_90", "crps", "huber_coverage_90", "huber_crps"]]
    """
    from .executors import check_executor
    from .fitting import fit as bayes_fit

    check_executor(executor, workers, address)
    if isinstance(interval, bool) or not 0 < float(interval) < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval!r}")
    if not isinstance(holdout, int | float | np.floating | np.integer):
        return _backtest_cuts(df, law, holdout, by, baseline, fit_kwargs, baseline_kwargs, columns, seed,
                              executor, workers, address, out)
    data = validate(df, columns=columns, check_duplicates=False)
    levels = tuple(sorted(set(LEVELS) | {round(float(interval), 4)}))
    train_idx, test_idx, threshold = split(data, holdout, by)
    frame = data.to_frame()[["N", "D", "U", "loss", "family", "C"]].reset_index(drop=True)
    frame.insert(0, "row", np.arange(len(frame)))
    train = frame.iloc[train_idx].reset_index(drop=True)
    test = frame.iloc[test_idx].reset_index(drop=True)
    train_data = data.take(train_idx)
    train_range = train_data.compute_range
    test["extrapolation"] = extrapolation_decades(test["N"], test["D"], train_range)
    notes: list[str] = []
    wall: dict[str, float] = {}

    kwargs = {"progress": False, **dict(fit_kwargs or {})}
    for bad in ("df", "law", "columns"):
        if bad in kwargs:
            raise ValueError(f"fit_kwargs may not set {bad!r}: it is an argument of backtest")
    t0 = time.perf_counter()
    fitted = bayes_fit(train.drop(columns=["row"]), law=law, **kwargs)
    frames = _calibration_rows(fitted, test, levels, seed, designs)
    wall["bayescale"] = time.perf_counter() - t0
    unseen = sorted(set(test["family"]) - set(train["family"]))
    if unseen:
        notes.append(f"families without training runs ({', '.join(unseen)}) are predicted from the "
                     "population distribution")
    d = fitted.diagnose()
    if not d.ok:
        notes.append("bayescale fit failed its diagnostics: " + "; ".join(d.messages))

    boots: dict[str, Any] = {}
    if baseline:
        from .baselines import bootstrap, fit_huber

        bkw = {**BASELINE_DEFAULTS, **dict(baseline_kwargs or {})}
        unknown = sorted(set(bkw) - {"grid", "n_boot", "seed", "delta"})
        if unknown:
            raise ValueError(f"unknown baseline_kwargs {unknown}; valid: grid, n_boot, seed, delta")
        if law != "chinchilla":
            notes.append(f"the Huber baseline fits the Chinchilla form, not {law!r}")
        if bool((data.U < data.D).any()):
            notes.append("runs repeat data (U < D): the baseline's Chinchilla form has no repetition "
                         "term and treats D as fresh tokens")
        if len(data.families) > 1:
            notes.append("the baseline is fitted per family (no pooling)")
        t0 = time.perf_counter()
        for fam in data.families:
            tr = train_data.take(train_data.family_idx == data.families.index(fam))
            te = test[test["family"] == fam]
            if te.empty:
                continue
            n_points = len({(round(math.log(n), 4), round(math.log(d), 4)) for n, d in zip(tr.N, tr.D, strict=True)})
            why = None
            if tr.n_rows < BASELINE_MIN_RUNS:
                why = f"{tr.n_rows} training runs < {BASELINE_MIN_RUNS}"
            elif n_points < BASELINE_MIN_POINTS:
                why = (f"its training runs have only {n_points} distinct (N, D) points: the 5-parameter "
                       "Chinchilla form (which ignores U) is not identified")
            if why is not None:
                notes.append(f"no baseline for family {fam!r}: {why}")
                for kind in ("observation", "mean"):
                    empty = {c: np.full(len(te), np.nan) for c in ["mean", "median", *_interval_columns(levels),
                                                                    "crps", "log_score", "pit", "point"]}
                    frames.append(_frame(te, "huber", kind, empty))
                continue
            hf = fit_huber(tr, grid=bkw["grid"], delta=bkw.get("delta", 1e-3))
            boots[fam] = bootstrap(hf, n_boot=int(bkw["n_boot"]), seed=int(bkw["seed"]))
            frames.extend(_baseline_rows(boots[fam], te.reset_index(drop=True), levels, seed))
        wall["huber"] = time.perf_counter() - t0

    pred = pd.concat(frames, ignore_index=True)
    return BacktestResult(
        law=law, by=by, holdout=float(holdout), threshold=threshold, levels=levels,
        train_index=train_idx, test_index=test_idx, train_range=train_range,
        predictions=pred, scores=_scores(pred, levels), fit=fitted, baseline=boots,
        notes=tuple(notes), wall_s=wall,
    )


def _backtest_cuts(df: Any, law: str, holdouts: Any, by: str, baseline: bool, fit_kwargs: Mapping[str, Any] | None,
                   baseline_kwargs: Mapping[str, Any] | None, columns: Mapping[str, str] | None, seed: int,
                   executor: str, workers: int | None, address: str | None, out: Any) -> Any:
    """Several cut points: one sweep task each (``bayescale.sweeping``)."""
    from .sweeping import sweep

    if isinstance(holdouts, str) or not isinstance(holdouts, Sequence | np.ndarray):
        raise ValueError(f"holdout must be a share in (0, 1) or a sequence of them, got {holdouts!r}")
    cuts = list(holdouts)
    if not cuts or any(h is None for h in cuts):
        raise ValueError(f"holdout must list shares in (0, 1), got {holdouts!r}")
    kwargs = dict(fit_kwargs or {})
    for bad in ("df", "law", "columns"):
        if bad in kwargs:
            raise ValueError(f"fit_kwargs may not set {bad!r}: it is an argument of backtest")
    own = {k: kwargs.pop(k) for k in ("hierarchy", "priors", "draws", "warmup", "chains", "seed") if k in kwargs}
    for k in ("progress", "warn", "strict", "chain_method"):  # the sweep pins these per task
        kwargs.pop(k, None)
    return sweep(df, laws=law, priors=[own.get("priors")], hierarchy=own.get("hierarchy", "auto"), splits=cuts,
                 by=by, draws=own.get("draws", 1000), warmup=own.get("warmup", 1000), chains=own.get("chains", 4),
                 seed=own.get("seed", seed), fit_kwargs=kwargs, baseline=baseline, baseline_kwargs=baseline_kwargs,
                 executor=executor, workers=workers, address=address, out=out, progress=False, columns=columns)
