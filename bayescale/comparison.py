"""Compare law variants fitted to the same runs, and average their predictions.

``compare(fits, method=...)`` returns one fixed schema whatever the method:

========  ===============================================================
rank      0 = best
score     elpd_loo (PSIS-LOO), elpd_waic, or log marginal likelihood (nats)
diff      best score minus this score (0 for the best; positive = worse)
diff_se   standard error of ``diff``: from pointwise differences for LOO and
          WAIC, from the bridge-sampling Monte Carlo errors for evidence
weight    stacking weights (LOO), Akaike-type weights (WAIC), posterior
          model probabilities under equal prior odds (evidence)
warning   empty, or why the score should not be trusted (Pareto k > 0.7;
          p_waic_i > 0.4; bridge sampler not converged)
========  ===============================================================

PSIS-LOO and stacking come from arviz-stats (Vehtari, Gelman and Gabry 2017;
Yao et al. 2018). arviz 1.x dropped WAIC (Watanabe 2010), so it is computed
here: ``elpd_waic = sum_i [log mean_s p(y_i | theta_s) - var_s log p(y_i | theta_s)]``.
The evidence comes from bridge sampling (``bayescale.evidence``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

COLUMNS = ["rank", "score", "diff", "diff_se", "weight", "warning"]
PARETO_K_MAX = 0.7
P_WAIC_MAX = 0.4


def same_data(fits: Mapping[str, Any]) -> None:
    """Raise ValueError unless every fit was conditioned on the same runs."""
    names = list(fits)
    ref = fits[names[0]].data
    for name in names[1:]:
        d = fits[name].data
        same = d.n_rows == ref.n_rows and all(
            np.array_equal(getattr(d, a), getattr(ref, a)) for a in ("N", "D", "U", "loss")
        )
        fam = same and [d.families[i] for i in d.family_idx] == [ref.families[i] for i in ref.family_idx]
        if not fam:
            raise ValueError(
                f"fits {names[0]!r} and {name!r} were fitted to different runs; "
                "comparisons of predictive accuracy or evidence need the same data"
            )


def _pointwise_loglik(fit) -> np.ndarray:
    ll = fit.datatree["log_likelihood"]["log_loss"].values
    return ll.reshape(-1, ll.shape[-1])


def waic(fit) -> tuple[np.ndarray, float]:
    """Pointwise elpd_waic and the count of points with p_waic_i > 0.4."""
    from scipy.special import logsumexp

    ll = _pointwise_loglik(fit).astype(np.float64)
    lppd = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    p = ll.var(axis=0, ddof=1)
    return lppd - p, int((p > P_WAIC_MAX).sum())


def _table(scores: dict[str, float], pointwise: dict[str, np.ndarray] | None, errors: dict[str, float] | None,
           weights: dict[str, float], warns: dict[str, str]) -> pd.DataFrame:
    best = max(scores, key=scores.get)
    rows = {}
    for name, score in scores.items():
        if pointwise is not None:
            d = pointwise[best] - pointwise[name]
            se = float(np.sqrt(d.size * d.var(ddof=1))) if name != best else 0.0
        else:
            se = float(np.hypot(errors[best], errors[name])) if name != best else 0.0
        rows[name] = {"score": score, "diff": scores[best] - score, "diff_se": se, "weight": weights[name],
                      "warning": warns.get(name, "")}
    frame = pd.DataFrame.from_dict(rows, orient="index").sort_values("score", ascending=False)
    frame.insert(0, "rank", np.arange(len(frame)))
    frame.index.name = "model"
    return frame[COLUMNS]


def compare(fits: Mapping[str, Any], method: Literal["loo", "waic", "evidence"] = "loo", seed: int = 0) -> pd.DataFrame:
    """Rank fits of the same runs by predictive accuracy or by evidence.

    Parameters
    ----------
    fits : dict of name -> Fit
    method : {"loo", "waic", "evidence"}
    seed : int
        Seed of the bridge sampler (evidence only).

    Returns
    -------
    DataFrame indexed by model name with columns rank, score, diff, diff_se,
    weight, warning (module docstring).
    """
    if len(fits) < 2:
        raise ValueError("compare needs at least two fits")
    same_data(fits)
    if method == "loo":
        return _compare_loo(fits)
    if method == "waic":
        pointwise, warns = {}, {}
        for name, fit in fits.items():
            pointwise[name], n_bad = waic(fit)
            if n_bad:
                warns[name] = f"{n_bad} runs with p_waic > {P_WAIC_MAX}: WAIC unreliable, prefer LOO"
        scores = {k: float(v.sum()) for k, v in pointwise.items()}
        return _table(scores, pointwise, None, _softmax(scores), warns)
    if method == "evidence":
        from .bridge import evidence

        ev = {name: evidence(fit, seed=seed) for name, fit in fits.items()}
        scores = {k: float(e.log_ml) for k, e in ev.items()}
        warns = {k: "bridge sampler did not converge" for k, e in ev.items() if not e.converged}
        return _table(scores, None, {k: float(e.mc_error) for k, e in ev.items()}, _softmax(scores), warns)
    raise ValueError(f"method must be 'loo', 'waic' or 'evidence', got {method!r}")


def _softmax(scores: Mapping[str, float]) -> dict[str, float]:
    v = np.array(list(scores.values()))
    w = np.exp(v - v.max())
    return dict(zip(scores, (w / w.sum()).tolist(), strict=True))


def _compare_loo(fits: Mapping[str, Any]) -> pd.DataFrame:
    import arviz_stats as azs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loos = {name: azs.loo(fit.datatree, pointwise=True) for name, fit in fits.items()}
        table = azs.compare(loos, method="stacking")
    pointwise = {name: np.asarray(res.elpd_i).ravel() for name, res in loos.items()}
    warns = {}
    for name, res in loos.items():
        k = np.asarray(res.pareto_k).ravel()
        if (k > PARETO_K_MAX).any():
            warns[name] = f"{int((k > PARETO_K_MAX).sum())} runs with Pareto k > {PARETO_K_MAX}: PSIS-LOO unreliable there"
    scores = {name: float(res.elpd) for name, res in loos.items()}
    weights = {name: float(table.loc[name, "weight"]) for name in fits}
    return _table(scores, pointwise, None, weights, warns)


class ModelAverage:
    """Predictions mixed across fits with fixed weights; predicts like a Fit.

    Each predictive draw comes from one fit, chosen with probability equal to
    its weight (arviz-stats ``weight_predictions``), so intervals reflect the
    spread between laws as well as within each.
    """

    def __init__(self, fits: Mapping[str, Any], weights: Mapping[str, float]) -> None:
        same_data(fits)
        total = sum(weights.values())
        if total <= 0 or any(w < 0 for w in weights.values()):
            raise ValueError("weights must be non-negative and not all zero")
        self.fits = dict(fits)
        self.weights = {k: float(weights[k]) / total for k in fits}
        first = next(iter(fits.values()))
        self.data = first.data
        self.families = first.families

    def __repr__(self) -> str:
        return "<ModelAverage " + ", ".join(f"{k}: {w:.3f}" for k, w in self.weights.items()) + ">"

    @property
    def law(self) -> str:
        """``"average(chinchilla 0.70, kaplan 0.30)"``: the fits and their weights."""
        return "average(" + ", ".join(f"{k} {w:.2f}" for k, w in self.weights.items()) + ")"

    def predictive_draws(self, new: Any, kind: str = "observation", seed: int = 0) -> xr.DataArray:
        import arviz_base as azb
        import arviz_stats as azs

        trees = []
        for fit in self.fits.values():
            draws = fit.predictive_draws(new, kind=kind, seed=seed).values
            trees.append(azb.from_dict({"posterior_predictive": {"loss": draws[None]},
                                        "observed_data": {"loss": np.zeros(draws.shape[1])}},
                                       dims={"loss": ["row"]}))
        mixed = azs.weight_predictions(trees, weights=list(self.weights.values()), random_seed=seed)
        da = mixed["posterior_predictive"]["loss"]
        values = da.transpose(*[d for d in da.dims if d != "row"], "row").values
        return xr.DataArray(values.reshape(-1, values.shape[-1]), dims=("sample", "row"), name="loss",
                            attrs={"units": "nats/token", "kind": kind, "weights": str(self.weights)})

    def predict(self, new: Any, interval: float | Sequence[float] = 0.9, kind: str = "observation",
                seed: int = 0) -> pd.DataFrame:
        """Same columns as ``Fit.predict``, from the mixture of the fits' draws."""
        first = next(iter(self.fits.values()))
        pts = first._points(new)
        logs = np.log(self.predictive_draws(pts, kind=kind, seed=seed).values)
        return first._summarise_draws(pts, logs, interval, kind)


def average(fits: Mapping[str, Any], weights: str | Mapping[str, float] = "stacking") -> ModelAverage:
    """Average fits' predictions: ``weights="stacking"`` (LOO stacking, Yao et al.
    2018), ``"waic"``, ``"evidence"`` or an explicit dict."""
    if isinstance(weights, str):
        method = {"stacking": "loo", "loo": "loo", "waic": "waic", "evidence": "evidence"}.get(weights)
        if method is None:
            raise ValueError(f"weights must be 'stacking', 'waic', 'evidence' or a dict, got {weights!r}")
        table = compare(fits, method=method)
        weights = table["weight"].to_dict()
    return ModelAverage(fits, weights)
