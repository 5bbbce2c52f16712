"""compare (LOO, WAIC) and average on real fits of the same runs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.comparison import COLUMNS, waic


@pytest.fixture(scope="module")
def pair():
    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::3]
    kw = dict(draws=300, warmup=300, chains=2, seed=4, progress=False, warn=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"chinchilla": bs.fit(df, law="chinchilla", **kw), "kaplan": bs.fit(df, law="kaplan", **kw)}


@pytest.mark.parametrize("method", ["loo", "waic"])
def test_fixed_schema_and_ranking(pair, method):
    table = bs.compare(pair, method=method)
    assert list(table.columns) == COLUMNS
    assert table["rank"].tolist() == [0, 1]
    assert table["diff"].iloc[0] == 0 and table["diff"].iloc[1] > 0
    assert table["weight"].sum() == pytest.approx(1.0)
    # Kaplan's law has no floor: on these runs the Chinchilla form predicts far better
    assert table.index[0] == "chinchilla"
    assert table.loc["kaplan", "diff"] > 2 * table.loc["kaplan", "diff_se"]


def test_waic_by_hand(pair):
    fit = pair["chinchilla"]
    ll = fit.datatree["log_likelihood"]["log_loss"].values.reshape(-1, fit.data.n_rows).astype(np.float64)
    lppd = np.log(np.exp(ll).mean(axis=0))
    expected = (lppd - ll.var(axis=0, ddof=1)).sum()
    assert waic(fit)[0].sum() == pytest.approx(expected, rel=1e-9)


def test_refuses_different_data(pair):
    other = dict(pair)
    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[1::3]
    other["different"] = bs.fit(df, draws=50, warmup=50, chains=1, progress=False, warn=False, discrepancy=None)
    with pytest.raises(ValueError, match="different runs"):
        bs.compare(other)


def test_average_predicts_like_a_fit(pair):
    avg = bs.average(pair, weights={"chinchilla": 0.5, "kaplan": 0.5})
    new = pd.DataFrame({"N": [7e10], "D": [1.4e12]})
    p = avg.predict(new, interval=0.9)
    a, b = (pair[k].predict(new, interval=0.9) for k in ("chinchilla", "kaplan"))
    assert set(["mean", "median", "lower", "upper", "extrapolation"]) <= set(p.columns)
    # an equal mixture spans both laws' predictions
    assert p["lower"].iloc[0] <= min(a["median"].iloc[0], b["median"].iloc[0])
    assert p["upper"].iloc[0] >= max(a["median"].iloc[0], b["median"].iloc[0])
    one = bs.average(pair, weights={"chinchilla": 1.0, "kaplan": 0.0}).predict(new)
    assert one["median"].iloc[0] == pytest.approx(a["median"].iloc[0], rel=0.01)
    stacked = bs.average(pair)  # stacking weights from LOO
    assert stacked.weights["chinchilla"] > 0.5


def test_evidence_ranking_agrees_with_loo(pair):
    by_loo = bs.compare(pair, method="loo")
    by_evidence = bs.compare(pair, method="evidence")
    assert list(by_evidence.columns) == COLUMNS
    assert by_evidence.index.tolist() == by_loo.index.tolist()
    assert by_evidence.loc["kaplan", "diff"] > 10 * by_evidence.loc["kaplan", "diff_se"]


def test_comparison_figure_draws_each_model_with_its_error(pair, tmp_path):
    import matplotlib.pyplot as plt

    from bayescale.plots import comparison_figure

    table = bs.compare(pair, method="loo")
    fig = comparison_figure(table, method="loo")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0].startswith(table.sort_values("rank").index[0])  # the best model on top
    assert len(labels) == len(table)
    x = ax.lines[0].get_xdata()
    np.testing.assert_allclose(x, -table.sort_values("rank")["diff"].to_numpy())
    assert "elpd" in ax.get_xlabel()
    plt.close(fig)
