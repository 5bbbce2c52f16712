"""Figures: each draws what the API computes, on real fits (small_fit: Chinchilla runs;
gadre_partial_fit: three families under partial pooling)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

import bayescale as bs
from bayescale import plots
from bayescale.data import DataError
from bayescale.io import atomic_savefig


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _not_blank(fig, tmp_path) -> None:
    import matplotlib.image as mpimg

    path = atomic_savefig(fig, tmp_path / "fig.png", dpi=60)
    img = mpimg.imread(path)[..., :3]
    # a drawn figure has many non-white pixels and some spread in colour
    assert (img.min(axis=-1) < 0.9).mean() > 0.02
    assert img.std() > 0.05


def _line(ax, label):
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert found, f"no line labelled {label!r}: {[ln.get_label() for ln in ax.get_lines()]}"
    return found[0]


def test_loss_vs_compute_draws_the_frontier_and_heldout_runs(small_fit, tmp_path):
    df = bs.datasets.load("chinchilla", epoch_subset=True)
    held = df.iloc[1::40][["N", "D", "loss"]]
    fig = plots.loss_vs_compute(small_fit, heldout=held, n_budgets=10)
    ax = fig.axes[0]
    med = _line(ax, "compute-optimal run (median)")
    C, y = med.get_data()
    ref = bs.frontier(small_fit, C, noise=True, n_candidates=200, interval=0.9)
    np.testing.assert_allclose(y, ref["loss_median"], rtol=1e-12)
    assert np.all(np.diff(y) < 0), "the compute-optimal loss falls with compute"
    # the fitted runs, and the held-out runs drawn as diamonds, one marker per run
    sizes = [len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")]
    assert small_fit.data.n_rows in sizes and len(held) in sizes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "FLOPs" in ax.get_xlabel() and "nats/token" in ax.get_ylabel()
    _not_blank(fig, tmp_path)


def test_loss_vs_compute_rejects_heldout_without_loss(small_fit):
    with pytest.raises(DataError, match="loss"):
        plots.loss_vs_compute(small_fit, heldout={"N": 1e9, "D": 2e10})


def test_loss_vs_compute_one_curve_per_family(gadre_partial_fit):
    fig = plots.loss_vs_compute(gadre_partial_fit, n_budgets=8)
    labels = {ln.get_label() for ln in fig.axes[0].get_lines()}
    assert set(gadre_partial_fit.families) <= labels


def test_surface_path_follows_the_frontier(small_fit, tmp_path):
    fig = plots.loss_surface(small_fit, n_grid=30, n_budgets=6)
    ax = fig.axes[0]
    path = _line(ax, "optimal allocation (posterior median)")
    N, D = path.get_data()
    assert np.all(np.diff(N) > 0) and np.all(np.diff(D) > 0), "bigger budgets: more parameters and more tokens"
    C = 6 * N * D
    ref = bs.frontier(small_fit, C, n_candidates=200)
    np.testing.assert_allclose(N, ref["N_opt_median"], rtol=1e-9)
    assert ax.get_xlabel() == "parameters N" and "tokens" in ax.get_ylabel()
    assert any("isoFLOP" in t.get_text() for t in [ax.title])
    _not_blank(fig, tmp_path)


def test_surface_over_epochs_needs_no_data_constrained_law_but_labels_U(small_fit):
    fig = plots.loss_surface(small_fit, over="epochs", unique_tokens=1e9, n_grid=20, n_budgets=4)
    assert "epochs over U = 1e+09" in fig.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="over"):
        plots.loss_surface(small_fit, over="N")


def test_forest_rows_per_family_population_and_new_family(gadre_partial_fit, tmp_path):
    fig = plots.forest(gadre_partial_fit)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(gadre_partial_fit.spec.law_obj.params)
    assert visible[0].get_title() == "alpha" and visible[1].get_title() == "beta"  # exponents side by side
    rows = [t.get_text() for t in visible[0].get_yticklabels()]
    assert rows == ["population", "new family", *gadre_partial_fit.families]
    _not_blank(fig, tmp_path)


def test_forest_medians_match_summary(small_fit):
    fig = plots.forest(small_fit, params=["alpha"], new_family=False)
    ax = fig.axes[0]
    dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert len(dots) == 1
    assert dots[0].get_xdata()[0] == pytest.approx(small_fit.summary().loc["alpha", "q50"], rel=1e-6)
    with pytest.raises(ValueError, match="unknown parameter"):
        plots.forest(small_fit, params=["gamma"])


def test_plan_and_frontier_figures(small_fit, tmp_path):
    p = bs.plan(small_fit, budget=1e22, risk="cvar:0.9", n_candidates=200)
    fig = plots.plan_figure(p)
    left, right = fig.axes[:2]
    vlines = [ln for ln in left.get_lines() if "N =" in str(ln.get_label())]
    assert len(vlines) == len(p.alternatives)
    assert sum(1 for patch in right.patches) == 50  # the histogram of the plan's loss draws
    _not_blank(fig, tmp_path)
    fr = bs.frontier(small_fit, [1e20, 1e21, 1e22], n_candidates=200)
    fig2 = plots.frontier_figure(fr)
    n_line = [ln for ln in fig2.axes[0].get_lines() if str(ln.get_label()).startswith("parameters")][0]
    np.testing.assert_allclose(n_line.get_ydata(), fr["N"])
