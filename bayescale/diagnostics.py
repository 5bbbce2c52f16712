"""MCMC convergence statistics of one quantity's draws: rank-normalised split R-hat, bulk
and tail effective sample sizes, Monte Carlo standard error of the mean.

The estimators are those of Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing
convergence of MCMC", Bayesian Analysis 16(2): draws split into half-chains, ranked over
all chains (average ranks for ties) and mapped to normal scores ``Phi^-1((r - 3/8) / (S + 1/4))``
(Blom 1958); R-hat is the larger of the split R-hats of these scores and of the scores of
the draws folded about their median; bulk ESS is the ESS of the scores; tail ESS the smaller
ESS of the indicators ``x <= q_0.05`` and ``x <= q_0.95``.

The variance ratio and the autocorrelation sums come from ``numpyro.diagnostics``
(``gelman_rubin``; ``effective_sample_size``: Geyer's initial positive and monotone sequences,
from the Stan reference manual). arviz-stats implements the same paper, but importing it
loads ``scipy.stats``, 0.6 s of the 2 s a warm fit may take (issue "Performance"); here
only the normal quantile function comes from scipy (``scipy.special.ndtri``). The two agree
to a fraction of the ESS's own Monte Carlo error (tests/test_diagnostics.py): numpyro clips
negative autocorrelation pairs to zero where arviz-stats truncates at the first one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the tail ESS's quantiles (Vehtari et al. 2021, Sec. 4.3)
TAIL_PROBS = (0.05, 0.95)


@dataclass(frozen=True)
class ChainStats:
    """Convergence statistics of one quantity (NaN where undefined: R-hat needs 2 chains,
    everything needs 4 draws a chain and finite draws)."""

    ess_bulk: float
    ess_tail: float
    mcse_mean: float
    r_hat: float


def _split(x: np.ndarray) -> np.ndarray:
    """(chains, draws) -> (2 chains, draws // 2): each chain's first and last halves."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def normal_scores(x: np.ndarray) -> np.ndarray:
    """Rank-normalised draws: average ranks over all chains mapped to ``Phi^-1((r - 3/8) / (S + 1/4))``."""
    from scipy.special import ndtri

    flat = x.ravel()
    order = np.argsort(flat, kind="stable")
    _, first, counts = np.unique(flat[order], return_index=True, return_counts=True)
    ranks = np.empty(flat.size)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)  # 1-based average ranks
    return ndtri((ranks - 0.375) / (flat.size + 0.25)).reshape(x.shape)


def _ess(x: np.ndarray) -> float:
    from numpyro.diagnostics import effective_sample_size

    x = np.asarray(x, np.float64)
    if np.ptp(x) < np.finfo(np.float64).resolution:
        return float(x.size)  # no variation: every draw is as good as an independent one
    return float(effective_sample_size(x))


def _rhat(x: np.ndarray) -> float:
    from numpyro.diagnostics import gelman_rubin

    return float(gelman_rubin(x))


def chain_stats(x: np.ndarray) -> ChainStats:
    """Statistics of draws ``x`` of shape ``(chains, draws)``."""
    x = np.asarray(x, np.float64)
    chains, draws = x.shape
    if draws < 4 or not np.isfinite(x).all():
        return ChainStats(np.nan, np.nan, np.nan, np.nan)
    split = _split(x)
    ess_bulk = _ess(normal_scores(split))
    lo, hi = np.quantile(x, TAIL_PROBS)
    ess_tail = min(_ess(_split((x <= lo).astype(np.float64))), _ess(_split((x <= hi).astype(np.float64))))
    mcse = float(np.std(x, ddof=1) / np.sqrt(_ess(split)))
    r_hat = np.nan
    if chains >= 2:
        with np.errstate(invalid="ignore", divide="ignore"):
            r_hat = max(_rhat(normal_scores(split)), _rhat(normal_scores(np.abs(split - np.median(split)))))
    return ChainStats(ess_bulk, ess_tail, mcse, float(r_hat))
