"""Leave-future-out backtest (bayescale.backtesting): split, scores, one small real run."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import bayescale as bs
from bayescale.backtesting import coverage, crps, distinct_splits, split


def _runs(C):
    C = np.asarray(C, float)
    N = np.full_like(C, 1e8)
    return bs.validate(pd.DataFrame({"N": N, "D": C / (6 * N), "loss": np.linspace(3, 2, len(C))}))


# ------------------------------------------------------------------ split


def test_split_holds_out_the_largest_compute():
    data = _runs(np.logspace(18, 21, 10))
    train, test, q = split(data, holdout=0.2)
    # the 0.8 quantile of 10 sorted values lies between the 8th and 9th: the top 2 are held out
    assert list(test) == [8, 9] and list(train) == list(range(8))
    assert data.C[7] < q <= data.C[8]


def test_split_is_by_value_not_position():
    C = np.array([5e20, 1e18, 3e21, 2e19, 7e19])
    train, test, q = split(_runs(C), holdout=0.2)
    assert list(test) == [2]
    assert sorted(train) == [0, 1, 3, 4]


def test_split_ties_are_held_out():
    train, test, _ = split(_runs([1e18, 1e19, 1e20, 1e20, 1e20]), holdout=0.2)
    assert list(test) == [2, 3, 4]


def test_split_by_N():
    df = pd.DataFrame({"N": [1e8, 2e8, 4e8, 8e8, 1.6e9], "D": [1e11, 1e10, 1e9, 1e9, 1e9],
                       "loss": [3, 2.9, 2.8, 2.7, 2.6]})
    train, test, q = split(bs.validate(df), holdout=0.2, by="N")
    assert list(test) == [4] and q == pytest.approx(9.6e8)  # 8e8 + 0.2 (1.6e9 - 8e8)


def test_split_rejects_bad_input():
    data = _runs(np.logspace(18, 21, 10))
    for bad in (0, 1, 1.5, -0.1, True):
        with pytest.raises(ValueError, match="holdout"):
            split(data, holdout=bad)
    with pytest.raises(ValueError, match="by"):
        split(data, by="loss")
    with pytest.raises(bs.DataError, match="held out"):
        split(_runs([1e20] * 4), holdout=0.2)


# ------------------------------------------------------------------ scores


def test_crps_of_a_point_mass_is_the_absolute_error():
    draws = np.full((50, 3), 2.0)
    np.testing.assert_allclose(crps(draws, [2.0, 2.5, 1.0]), [0.0, 0.5, 1.0], atol=1e-12)


def test_crps_by_hand():
    # two equally likely values {0, 1}, y = 0: E|X - y| = 1/2, E|X - X'| = 1/2 -> 1/2 - 1/4
    assert crps(np.array([0.0, 1.0]), 0.0)[0] == pytest.approx(0.25)
    # y = 0.5: E|X - y| = 1/2 -> 1/4 as well; y = 3: E|X - y| = 2.5 -> 2.25
    np.testing.assert_allclose(crps(np.array([[0.0, 0.0], [1.0, 1.0]]), [0.5, 3.0]), [0.25, 2.25])


def test_crps_equals_the_energy_form_and_the_normal_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=(400, 2))
    y = np.array([0.3, 4.0])
    energy = np.abs(x - y).mean(axis=0) - 0.5 * np.abs(x[:, None, :] - x[None, :, :]).mean(axis=(0, 1))
    np.testing.assert_allclose(crps(x, y), energy, rtol=1e-10)
    # Gneiting and Raftery 2007: CRPS(N(mu, s), y) = s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)]
    big = rng.normal(1.0, 2.0, size=(40000, 1))
    z = (0.3 - 1.0) / 2.0
    exact = 2.0 * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))
    assert crps(big, 0.3)[0] == pytest.approx(exact, rel=0.02)


def test_coverage_counts_inclusive_bounds_and_skips_nan():
    lower = [1.0, 1.0, 1.0, 1.0, np.nan]
    upper = [2.0, 2.0, 2.0, 2.0, 2.0]
    y = [1.0, 2.0, 2.5, 0.5, 1.5]
    assert coverage(lower, upper, y) == pytest.approx(0.5)
    assert math.isnan(coverage([np.nan], [np.nan], [1.0]))


def test_backtest_is_public_api():
    assert "backtest" in bs.__all__ and "BacktestResult" in bs.__all__
    assert callable(bs.backtest) and bs.BacktestResult.__name__ == "BacktestResult"
    assert bs.baselines.fit_huber is not None


# ------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def small_backtest():
    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.DiagnosticsWarning)
        return bs.backtest(df, law="chinchilla", holdout=0.2, interval=0.8,
                           fit_kwargs={"draws": 150, "warmup": 150, "chains": 2, "seed": 2},
                           baseline_kwargs={"n_boot": 30})


@pytest.mark.real
def test_small_real_backtest(small_backtest):
    bt = small_backtest
    assert bt.n_train + bt.n_test == 60 and bt.n_test == 12
    assert bt.levels == (0.5, 0.8, 0.9)
    s = bt.scores.set_index(["method", "kind"])
    # the default fit learns a discrepancy: its plain posterior is scored beside it
    assert list(s.index) == [("bayescale", "observation"), ("bayescale", "mean"), ("plain", "observation"),
                             ("plain", "mean"), ("huber", "observation"), ("huber", "mean")]
    for col in ("coverage_50", "coverage_80", "coverage_90"):
        assert s[col].between(0, 1).all()
    assert (s["n_test"] == 12).all()
    assert (s["crps"] > 0).all() and (s["median_rel_error"] < 0.1).all()
    assert s["log_score"].notna().tolist() == [True, False, True, False, True, False]
    # the same posterior: the discrepancy only widens (its law errors are centred on zero)
    w = s["width_90"]
    assert w[("bayescale", "observation")] > w[("plain", "observation")]
    # the test runs lie beyond the training compute
    assert (s["mean_extrapolation"] > 0).all()
    p = bt.predictions
    assert len(p) == 6 * 12
    assert ((p["lower_90"] <= p["lower_50"]) & (p["upper_50"] <= p["upper_90"])).all()
    assert set(p["row"]) == set(bt.test_index)
    train_c = 6 * bt.fit.data.N * bt.fit.data.D
    assert train_c.max() < bt.threshold <= p["C"].min()
    # scores agree with the per-run table
    obs = p[(p["method"] == "bayescale") & (p["kind"] == "observation")]
    cov = ((obs["lower_90"] <= obs["loss"]) & (obs["loss"] <= obs["upper_90"])).mean()
    assert s.loc[("bayescale", "observation"), "coverage_90"] == pytest.approx(cov)
    assert set(bt.baseline) == {"massivetext"}
    json.dumps(bt.to_dict())


def test_backtest_figure_shows_coverage_per_method(small_backtest):
    import matplotlib.pyplot as plt

    from bayescale.plots import backtest_figure

    fig = backtest_figure(small_backtest)
    left, right = fig.axes[:2]
    heights = sorted(round(p.get_height(), 12) for p in left.patches)
    scores = small_backtest.scores
    expected = sorted(round(v, 12) for c in scores.columns if c.startswith("coverage_") for v in scores[c])
    assert heights == expected
    assert "FLOPs" in right.get_xlabel()
    plt.close(fig)


def test_distinct_splits_marks_shares_that_tie_into_one_split():
    from bayescale.data import validate

    # ten runs of distinct compute, then eight tied (one N and D, eight epoch counts)
    N = np.concatenate([np.geomspace(1e7, 3e8, 10), np.full(8, 1e9)])
    D, loss = 20.0 * N, np.linspace(4.0, 2.5, 18)
    U = D / np.concatenate([np.ones(10), np.arange(1, 9)])
    data = validate(pd.DataFrame({"N": N, "D": D, "U": U, "loss": loss}))
    cuts = distinct_splits(data, [0.1, 0.3, 0.6])
    assert [c.same_as for c in cuts] == [None, 0.1, None]
    for c in cuts:
        train, test, q = split(data, c.holdout)
        assert np.array_equal(c.train, train) and np.array_equal(c.test, test) and c.threshold == q
    assert cuts[0].test.size == 8 and cuts[2].test.size > 8
