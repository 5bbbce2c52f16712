"""Real tier: NUTS on bundled data, checked against published numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs

# Besiroglu et al. 2024 (arXiv:2404.10102), Table 1: 95% bootstrap intervals of
# the Huber fit on 240 digitised Chinchilla runs (epoch_chinchilla/SOURCE.md).
EPOCH_95 = {
    "E": (1.769, 1.871),
    "A": (285.2, 743.6),
    "B": (1042.4, 5810.3),
    "alpha": (0.317, 0.373),
    "beta": (0.331, 0.415),
}


def test_epoch_reproduction_medians_inside_bootstrap_intervals(epoch240_fit):
    s = epoch240_fit.summary()
    for name, (lo, hi) in EPOCH_95.items():
        assert lo <= s.loc[name, "q50"] <= hi, f"{name} median {s.loc[name, 'q50']:.4g} outside Epoch's {lo}-{hi}"


def test_epoch_fit_passes_diagnostics(epoch240_fit):
    d = epoch240_fit.diagnose()
    assert d.ok, d.messages
    assert d.divergences == 0 and d.max_r_hat <= 1.01
    assert d.min_ess_bulk >= 400 and d.min_ess_tail >= 400


def test_summary_schema_and_both_conventions(epoch240_fit):
    s = epoch240_fit.summary()
    assert list(s.columns[:9]) == ["mean", "sd", "q5", "q50", "q95", "ess_bulk", "ess_tail", "mcse_mean", "r_hat"]
    for name in ("E", "A", "B", "alpha", "beta", "A_ref", "B_ref", "sigma"):
        assert name in s.index
    # A = A_ref * N0^alpha holds draw by draw, so it holds for the posterior median of a monotone map only
    # approximately; check it on the draws instead.
    post = epoch240_fit.datatree["posterior"]
    log_N0 = epoch240_fit.spec.ctx.log_N0
    np.testing.assert_allclose(post["A"].values, post["A_ref"].values * np.exp(post["alpha"].values * log_N0),
                               rtol=1e-5)


def test_datatree_groups(epoch240_fit):
    dt = epoch240_fit.datatree
    for group in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive", "observed_data"):
        assert group in dt.children
    assert dt["log_likelihood"]["log_loss"].shape == (4, 1000, 240)
    assert np.isfinite(dt["log_likelihood"]["log_loss"].values).all()


def test_prediction_interval_order_and_kinds(epoch240_fit):
    new = pd.DataFrame({"N": [7e10, 1e9], "D": [1.4e12, 2e10]})
    obs = epoch240_fit.predict(new, interval=[0.5, 0.9])
    mean = epoch240_fit.predict(new, interval=0.9, kind="mean")
    assert (obs["lower_90"] < obs["lower_50"]).all() and (obs["upper_50"] < obs["upper_90"]).all()
    assert ((obs["lower_50"] < obs["median"]) & (obs["median"] < obs["upper_50"])).all()
    # observation intervals add run-to-run noise to parameter uncertainty
    assert (obs["upper_90"] - obs["lower_90"] > mean["upper"] - mean["lower"]).all()
    # 70B on 1.4T tokens is beyond the largest fitted run (C ~ 1.3e22); 1e9 x 2e10 is inside
    assert obs["extrapolation"].iloc[0] > 1.0 and obs["extrapolation"].iloc[1] == 0.0


def test_predictive_draws_match_predict(epoch240_fit):
    new = pd.DataFrame({"N": [7e10], "D": [1.4e12]})
    draws = epoch240_fit.predictive_draws(new, seed=5)
    pred = epoch240_fit.predict(new, seed=5)
    assert draws.dims == ("sample", "row") and draws.shape == (4000, 1)
    assert float(np.median(draws.values)) == pytest.approx(pred["median"].iloc[0], rel=1e-6)


def test_surface_quantiles_are_ordered_and_decrease_with_scale(small_fit):
    grid_N = np.geomspace(1e8, 1e11, 4)
    grid_D = np.geomspace(1e9, 1e12, 5)
    surf = small_fit.surface(N=grid_N, D=grid_D)
    q = surf["loss"]
    assert q.dims == ("quantile", "N", "D")
    assert (q.sel(quantile=0.05) <= q.sel(quantile=0.5)).all() and (q.sel(quantile=0.5) <= q.sel(quantile=0.95)).all()
    assert (surf["mean"].diff("N") < 0).all() and (surf["mean"].diff("D") < 0).all()


def test_save_load_predicts_identically(small_fit, tmp_path):
    path = small_fit.save(tmp_path / "f.nc")
    again = bs.load_fit(path)
    new = pd.DataFrame({"N": [7e10, 3e8], "D": [1.4e12, 6e9]})
    pd.testing.assert_frame_equal(small_fit.predict(new), again.predict(new))
    pd.testing.assert_frame_equal(small_fit.summary(), again.summary())
    assert again.spec == small_fit.spec and again.sampler == small_fit.sampler
    assert not list(tmp_path.glob(".*tmp")), "atomic save leaves no temporary file"


def test_load_rejects_foreign_and_truncated_files(small_fit, tmp_path):
    foreign = tmp_path / "foreign.nc"
    import xarray as xr

    xr.Dataset({"x": ("i", [1.0, 2.0])}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(bs.FitFileError, match="not one written by bayescale"):
        bs.load_fit(foreign)
    good = small_fit.save(tmp_path / "good.nc")
    truncated = tmp_path / "trunc.nc"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(bs.FitFileError):
        bs.load_fit(truncated)
    with pytest.raises(bs.FitFileError, match="no such file"):
        bs.load_fit(tmp_path / "missing.nc")


def test_partial_pooling_summary_and_unseen_family(gadre_partial_fit):
    fit = gadre_partial_fit
    s = fit.summary()
    for fam in fit.families:
        assert f"alpha[{fam}]" in s.index and f"E[{fam}]" in s.index
    assert "tau_alpha" in s.index and "mostly prior" in s.loc["tau_alpha", "note"]
    seen = fit.predict(pd.DataFrame({"N": [1.4e9], "D": [2.8e10], "family": [fit.families[0]]}))
    new = fit.predict(pd.DataFrame({"N": [1.4e9], "D": [2.8e10], "family": ["an_unseen_dataset"]}))
    # a new family borrows the population: wider than a seen one, and finite
    assert np.isfinite(new[["lower", "upper"]].to_numpy()).all()
    assert (new["upper"] - new["lower"]).iloc[0] > (seen["upper"] - seen["lower"]).iloc[0]


def test_target_accept_default_follows_pooling(gadre_partial_fit, small_fit):
    # partial pooling samples at the higher target acceptance; a single-family fit at 0.8
    from bayescale.fitting import DEFAULT_TARGET_ACCEPT, PARTIAL_TARGET_ACCEPT

    assert gadre_partial_fit.sampler.target_accept == PARTIAL_TARGET_ACCEPT == 0.95
    assert small_fit.sampler.target_accept == DEFAULT_TARGET_ACCEPT == 0.8


def test_target_accept_default_follows_the_law():
    # the data-constrained laws' min kink: 0.9 at complete pooling, 0.95 still when partial
    from bayescale.data import validate
    from bayescale.fitting import default_target_accept
    from bayescale.inference import build_spec

    data = validate(bs.datasets.load("datablations"))
    assert default_target_accept(build_spec("data_constrained", data, hierarchy="complete")) == 0.9
    assert default_target_accept(build_spec("chinchilla", data, hierarchy="complete")) == 0.8
    curves = validate(bs.datasets.load("datablations_curves"), check_duplicates=False)  # two training sets
    assert default_target_accept(build_spec("data_constrained", curves, hierarchy="partial")) == 0.95


def test_multi_family_predict_needs_family(gadre_partial_fit):
    with pytest.raises(bs.DataError, match="family"):
        gadre_partial_fit.predict(pd.DataFrame({"N": [1e9], "D": [2e10]}))


def test_unseen_family_needs_partial_pooling():
    df = bs.datasets.load("gadre")
    fit = bs.fit(df, hierarchy={"E": "independent"}, draws=50, warmup=50, chains=1, progress=False, warn=False,
                 discrepancy=None)
    with pytest.raises(bs.DataError, match="E"):
        fit.predict(pd.DataFrame({"N": [1e9], "D": [2e10], "family": ["new"]}))


def test_same_seed_same_draws():
    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::6]
    kw = dict(draws=60, warmup=60, chains=2, seed=11, progress=False, warn=False, discrepancy=None)
    a, b = bs.fit(df, **kw), bs.fit(df, **kw)
    np.testing.assert_array_equal(a.datatree["posterior"]["alpha"].values, b.datatree["posterior"]["alpha"].values)


def test_refit_after_jax_clear_caches():
    # the NUTS sampler is kept per spec; jax.clear_caches() must not break the next fit
    import jax

    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::6]
    kw = dict(draws=60, warmup=60, chains=2, seed=11, progress=False, warn=False, discrepancy=None)
    a = bs.fit(df, **kw)
    jax.clear_caches()
    b = bs.fit(df, **kw)
    np.testing.assert_array_equal(a.datatree["posterior"]["alpha"].values, b.datatree["posterior"]["alpha"].values)


def test_failed_defaults_get_one_safe_remedy():
    from bayescale.fitting import Diagnostics, remedied
    from bayescale.inference import SamplerConfig

    cfg = SamplerConfig(target_accept=0.95)
    diverged = Diagnostics(False, 3, 1.0, 900.0, 900.0, ("3 divergent transitions",))
    again = remedied(cfg, diverged)
    assert (again.target_accept, again.warmup, again.draws) == (0.99, 2000, 1000)
    assert remedied(SamplerConfig(), diverged).target_accept == 0.95
    slow = Diagnostics(False, 0, 1.02, 300.0, 900.0, ("R-hat 1.020 > 1.01",))
    again = remedied(cfg, slow)
    assert (again.target_accept, again.warmup, again.draws) == (0.95, 2000, 2000)


def test_divergences_are_located_at_a_parameter(small_fit):
    # mark the draws with the smallest alpha divergent: the message names alpha and "small"
    tree = small_fit.datatree.copy(deep=True)
    alpha = tree["posterior"]["alpha"].values
    tree["sample_stats"]["diverging"].values[...] = alpha < np.quantile(alpha, 0.05)
    fit = bs.Fit(small_fit.spec, small_fit.data, tree, small_fit.sampler)
    message = fit.diagnose().messages[0]
    assert "divergent transitions (at small alpha" in message and "centred=" in message


def test_a_poorly_mixed_family_value_gets_a_pooling_hint(gadre_partial_fit):
    fit = gadre_partial_fit
    # every other partially pooled parameter stays partial; a parameter a dict leaves out is complete
    hint = fit._pooling_hint("beta[rpj]")
    assert hint.endswith("hierarchy={'E': 'partial', 'A': 'partial', 'B': 'partial', 'alpha': 'partial'} shares it")
    assert "'beta': 'partial'" in fit._pooling_hint("tau_B_ref") and "'B'" not in fit._pooling_hint("tau_B_ref")
    assert fit._pooling_hint("sigma") == ""
