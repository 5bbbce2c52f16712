"""Model discrepancy (bayescale.discrepancy): the law's own error, learned by internal
leave-future-out, in predictions, plans, backtests, files and the CLI."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.backtesting import interval_score
from bayescale.discrepancy import (
    DESIGNS,
    INTERNAL_HOLDOUTS,
    KAPPA_PRIOR_SCALE,
    NU,
    Discrepancy,
    distance,
    kappa_posterior,
)


def _records(kappa: float, n: int, seed: int = 0, runs_per_cut: int | None = None) -> pd.DataFrame:
    """Synthetic internal LFO records drawn from the model itself: r = noise + kappa d t_4,
    the t_4 law error independent per run (``runs_per_cut=None``: one cut) or one per cut
    of ``runs_per_cut`` runs (the "shared" structure)."""
    rng = np.random.default_rng(seed)
    log10_C = rng.uniform(20.0, 21.5, n)
    origin = 20.0
    v = np.full(n, 0.004 ** 2)
    d = log10_C - origin
    cut = np.zeros(n) if runs_per_cut is None else np.arange(n) // runs_per_cut
    slope = rng.standard_t(NU, n) if runs_per_cut is None else rng.standard_t(NU, int(cut.max()) + 1)[cut]
    # the noise of the fit's Student-t likelihood (scale 0.004), no parameter uncertainty
    r = 0.004 * rng.standard_t(NU, n) + kappa * d * slope
    return pd.DataFrame({"cut": cut, "row": np.arange(n), "family": "f", "log10_C": log10_C,
                         "origin_centre": origin, "origin_edge": origin + 0.5, "residual": r, "variance": 2 * v,
                         "var_param": 0.0, "sigma2": v, "pit": 0.5})


# ----------------------------------------------------------------------------- pure pieces


def test_distance_by_hand():
    x = np.array([19.0, 20.0, 21.5])
    assert np.allclose(distance("centre", x, 20.0), [0.0, 0.0, 1.5])
    assert np.allclose(distance("edge", x, 21.0), [0.0, 0.0, 0.5])
    assert np.allclose(distance("constant", x, 123.0), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="design"):
        distance("quadratic", x, 0.0)


def test_interval_score_by_hand():
    # inside: the width; below by 0.1 at 90%: width + 2/0.1 * 0.1 = width + 2
    assert interval_score(1.0, 2.0, 1.5, 0.9) == pytest.approx(1.0)
    assert interval_score(1.0, 2.0, 0.9, 0.9) == pytest.approx(1.0 + 2.0)
    assert interval_score(1.0, 2.0, 2.5, 0.5) == pytest.approx(1.0 + 4 * 0.5)


def test_prior_alone_is_the_half_normal():
    w = kappa_posterior("centre", _records(0.01, 0).iloc[:0])
    d = Discrepancy(design="centre", origin=20.0, weights=w)
    # HalfNormal(s): median s * 0.6745, E[k^2] = s^2; the grid's resolution is ~2% per step
    assert d.kappa_quantiles([0.5])[0] == pytest.approx(0.6745 * KAPPA_PRIOR_SCALE, rel=0.04)
    assert d.kappa_rms == pytest.approx(KAPPA_PRIOR_SCALE, rel=0.03)


@pytest.mark.parametrize("kappa", [0.02, 0.05])
def test_kappa_posterior_recovers_the_simulated_scale(kappa):
    # n = 4000 records of noise (t_4, scale 0.004) plus a t_4 law error of scale kappa * d:
    # 12 replications at kappa = 0.02 gave a relative sd of the posterior median of 2.6% and a
    # bias of +2% (the grid, the quadrature and the prior); 10% is > 3 sd beyond the bias
    lfo = _records(kappa, 4000, seed=1)
    w = kappa_posterior("centre", lfo, structure="independent")  # one design: from_lfo reads all three
    d = Discrepancy(design="centre", origin=20.0, weights=w, structure="independent")
    assert d.kappa_quantiles([0.5])[0] == pytest.approx(kappa, rel=0.10)
    q5, q95 = d.kappa_quantiles([0.05, 0.95])
    assert q5 < kappa * 1.05 and q95 > kappa * 0.95


def test_shared_slope_posterior_recovers_the_simulated_scale():
    # 300 cuts of 2 runs, one t_4 slope per cut: kappa is learned from 300 slopes. The
    # Fisher information of a t_nu log-scale is 2 nu / (nu + 3) = 8/7 per slope, so the
    # posterior median's relative sd is ~ 1/sqrt(8/7 * 300) = 5.4%, a little more for the
    # noise on each slope; 20% is > 3.5 sd
    kappa = 0.03
    lfo = _records(kappa, 600, seed=2, runs_per_cut=2)
    w = kappa_posterior("centre", lfo, structure="shared")  # one design: from_lfo reads all three
    d = Discrepancy(design="centre", origin=20.0, weights=w, structure="shared")
    assert d.kappa_quantiles([0.5])[0] == pytest.approx(kappa, rel=0.20)


def test_shared_slope_likelihood_is_the_integral_over_the_slope():
    """The trapezoid rule on the slope grid against scipy's adaptive quadrature, one cut of
    three runs with a Gaussian and a Student-t noise."""
    from scipy.integrate import quad
    from scipy.stats import norm, t

    from bayescale.discrepancy import _lambda_nodes, _log_lik_grid_shared

    lfo = pd.DataFrame({"cut": 0.2, "residual": [0.012, 0.03, -0.004], "var_param": [1e-5, 4e-5, 2e-6],
                        "sigma2": 0.006 ** 2})
    d = np.array([0.3, 1.1, 0.05])
    k = np.array([0.0, 1e-4, 0.004, 0.03, 0.4])
    for noise in ("gaussian", "student_t"):
        got = _log_lik_grid_shared(k, lfo, d, noise)
        l1 = _lambda_nodes(noise)

        def runs(b, l1=l1):
            e = lfo["residual"].to_numpy() - b * d
            var = lfo["var_param"].to_numpy()[:, None] + lfo["sigma2"].to_numpy()[:, None] * l1[None, :]
            return np.prod(norm.pdf(e[:, None], scale=np.sqrt(var)).mean(axis=1))

        want = [np.log(runs(0.0))]
        for kj in k[1:]:
            val, _ = quad(lambda b, kj=kj: t.pdf(b / kj, NU) / kj * runs(b), -50 * kj, 50 * kj, points=[0.0],
                          limit=500, epsabs=0)
            want.append(np.log(val))
        np.testing.assert_allclose(got, want, atol=2e-3)


def test_shared_slope_is_wider_when_a_cut_misses_together():
    # ten runs of one cut all 2% above the law: independent errors read ten confirmations of a
    # small kappa; one shared slope reads one draw of the law error and keeps the prior's width
    lfo = _records(0.0, 10, seed=6)
    lfo["residual"] = 0.02 * (lfo["log10_C"] - 20.0)
    shared = Discrepancy.from_lfo("centre/shared", lfo, log10_C_train=[20.0])
    indep = Discrepancy.from_lfo("centre", lfo, log10_C_train=[20.0])
    assert indep.structure == "independent"
    q_s, q_i = shared.kappa_quantiles([0.05, 0.95]), indep.kappa_quantiles([0.05, 0.95])
    assert (q_s[1] - q_s[0]) > 2 * (q_i[1] - q_i[0])


def test_draws_are_kappa_times_a_student_t():
    from scipy.stats import t

    grid = Discrepancy.grid()
    w = np.zeros_like(grid)
    i = int(np.argmin(np.abs(grid - 0.01)))
    w[i] = 1.0
    d = Discrepancy(design="centre", origin=20.0, weights=w)
    kappa = grid[i]
    x = np.array([19.5, 21.0, 22.0])  # distances 0, 1, 2 decades from the origin 20
    S = 40_000
    q = np.array([0.75, 0.95])
    # MC sd of a quantile: sqrt(p(1-p)/S) / f(x_p): < 1.5% of the t_4 quantile here; 5% > 3 sd
    for shared in (False, True):
        delta = d.draws(x, S, seed=3, shared=shared)
        assert delta.shape == (S, 3)
        assert np.all(delta[:, 0] == 0.0)
        np.testing.assert_allclose(np.quantile(delta[:, 1], q), kappa * t.ppf(q, NU), rtol=0.05)
        np.testing.assert_allclose(np.quantile(delta[:, 2], q), 2 * kappa * t.ppf(q, NU), rtol=0.05)
    assert d.sd([21.0])[0] == pytest.approx(kappa * math.sqrt(NU / (NU - 2)))
    shared = d.draws(x, S, seed=3, shared=True)
    assert np.allclose(shared[:, 2], 2 * shared[:, 1])  # one law error per draw, scaled by distance


def test_discrepancy_round_trips_and_validates():
    lfo = _records(0.01, 50, seed=4)
    d = Discrepancy.from_lfo("edge", lfo, log10_C_train=[19.0, 20.0, 21.0], fits=[{"holdout": 0.2}],
                             notes=["a note"])
    back = Discrepancy.from_json(d.to_json())
    assert back.design == "edge" and back.origin == pytest.approx(21.0)
    assert np.allclose(back.weights, d.weights)
    assert back.fits == d.fits and back.notes == ("a note",)
    pd.testing.assert_frame_equal(back.lfo, d.lfo, check_dtype=False)
    assert d.with_design("centre", [19.0, 20.0, 21.0]).origin == pytest.approx(20.0)
    other = d.with_design("auto/independent", [19.0, 20.0, 21.0])
    assert other.structure == "independent" and Discrepancy.from_json(other.to_json()).structure == "independent"
    # files from before the structure existed were learned with independent errors
    legacy = json.loads(d.to_json())
    del legacy["structure"]
    assert Discrepancy.from_json(json.dumps(legacy)).structure == "independent"
    with pytest.raises(ValueError, match="structure"):
        d.with_design("edge/sideways", [20.0])
    with pytest.raises(ValueError, match="probability"):
        Discrepancy(design="centre", origin=0.0, weights=np.ones(3))
    with pytest.raises(ValueError, match="design"):
        Discrepancy(design="nope", origin=0.0, weights=d.weights)


def test_lfo_coverage_reads_the_pit():
    lfo = _records(0.01, 10, seed=5)
    lfo["pit"] = [0.5, 0.5, 0.5, 0.5, 0.3, 0.7, 0.01, 0.99, 0.02, 0.5]
    d = Discrepancy.from_lfo("centre", lfo, log10_C_train=[20.0])
    cov = d.lfo_coverage([0.5, 0.9])
    assert cov["plain"].tolist() == [pytest.approx(0.7), pytest.approx(0.7)]
    assert cov["n"].tolist() == [10, 10]


# ----------------------------------------------------------------------------- real fits


@pytest.fixture(scope="module")
def calibrated(small_fit):
    return small_fit


def test_default_fit_learns_a_discrepancy(calibrated):
    disc = calibrated.discrepancy
    # "auto": the design with the largest internal leave-future-out evidence
    assert disc is not None and set(disc.evidence) == set(DESIGNS)
    assert disc.design == max(disc.evidence, key=disc.evidence.get)
    assert [f["holdout"] for f in disc.fits] == list(INTERNAL_HOLDOUTS) == [0.1, 0.2, 0.3, 0.4]
    assert len(disc.lfo) == sum(f["n_test"] for f in disc.fits)
    # internal fits condition only on runs below their cut: every predicted run is at or above it
    for f in disc.fits:
        rows = disc.lfo[disc.lfo["cut"] == f["holdout"]]
        assert (rows["log10_C"] >= rows["origin_edge"]).all()
    assert f"discrepancy={disc.design}" in repr(calibrated)


def test_discrepancy_widens_only_beyond_the_centre(calibrated):
    calibrated = calibrated.with_discrepancy("centre")
    plain = calibrated.with_discrepancy(None)
    log10_C = np.log10(calibrated.data.C)
    lo_C = 10 ** (np.median(log10_C) - 0.5)
    far_C = 10 ** (log10_C.max() + 1.5)
    pts = pd.DataFrame({"N": [1e8, 3e10], "C": [lo_C, far_C]})
    a, b = calibrated.predict(pts), plain.predict(pts)
    # below the median compute the distance is 0: the very same draws
    assert a.loc[0, "lower"] == b.loc[0, "lower"] and a.loc[0, "upper"] == b.loc[0, "upper"]
    assert (a.loc[1, "upper"] - a.loc[1, "lower"]) > 1.2 * (b.loc[1, "upper"] - b.loc[1, "lower"])
    assert a.attrs["discrepancy"] == "centre" and b.attrs["discrepancy"].startswith("none")
    assert a.loc[0, "sd_model"] == 0.0 and a.loc[1, "sd_model"] > 0 and (b["sd_model"] == 0).all()


def test_uncertainty_split_adds_up(calibrated):
    pts = pd.DataFrame({"N": [1e9, 7e10], "D": [2e10, 1.4e12]})
    u = calibrated.uncertainty(pts)
    total = u["sd_parameter"] ** 2 + u["sd_noise"] ** 2 + u["sd_model"] ** 2
    assert np.allclose(u["sd_total"] ** 2, total)
    assert np.allclose(u[["share_parameter", "share_noise", "share_model"]].sum(axis=1), 1.0)
    assert u.loc[1, "share_model"] > u.loc[0, "share_model"]


def test_save_load_keeps_the_discrepancy(calibrated, tmp_path):
    path = calibrated.save(tmp_path / "fit.nc")
    back = bs.load_fit(path)
    assert back.discrepancy is not None
    assert np.allclose(back.discrepancy.weights, calibrated.discrepancy.weights)
    pts = pd.DataFrame({"N": [7e10], "D": [1.4e12]})
    pd.testing.assert_frame_equal(back.predict(pts), calibrated.predict(pts))


def test_other_designs_reuse_the_internal_evidence(calibrated):
    for design in DESIGNS:
        f = calibrated.with_discrepancy(design)
        assert f.discrepancy.design == design
        pd.testing.assert_frame_equal(f.discrepancy.lfo, calibrated.discrepancy.lfo)
    with pytest.raises(bs.DataError, match="design"):
        calibrated.with_discrepancy("sideways")
    with pytest.raises(bs.DataError, match="discrepancy=None"):
        calibrated.with_discrepancy(None).with_discrepancy("edge")


def test_masked_rows_do_not_touch_the_posterior():
    """obs_mask leaves rows out of the likelihood: garbage losses there change nothing."""
    from bayescale.data import validate
    from bayescale.inference import SamplerConfig, build_spec, run_nuts

    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::6].reset_index(drop=True)
    data = validate(df)
    spoiled = df.copy()
    mask = np.ones(len(df), bool)
    mask[-5:] = False
    spoiled.loc[mask.size - 5:, "loss"] = 9.0
    cfg = SamplerConfig(draws=50, warmup=50, chains=1, seed=0)
    spec = build_spec("chinchilla", data)
    a, _ = run_nuts(spec, data, cfg, progress=False, obs_mask=mask)
    b, _ = run_nuts(spec, validate(spoiled), cfg, progress=False, obs_mask=mask)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_fit_rejects_unknown_discrepancy():
    df = bs.datasets.load("chinchilla", epoch_subset=True)
    with pytest.raises(bs.DataError, match="discrepancy must be"):
        bs.fit(df, discrepancy="wide")


def test_laplace_fit_learns_from_laplace_refits():
    df = bs.datasets.load("chinchilla", epoch_subset=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = bs.fit(df, approx="laplace", draws=500, progress=False)
    assert f.discrepancy is not None and len(f.discrepancy.lfo) > 0
    assert math.isfinite(f.discrepancy.kappa_rms)


def test_internal_cuts_on_one_split_are_fitted_once():
    """Runs tied in compute (one N and D, several epochs) put every internal share on one
    split; its held-out runs must enter kappa's likelihood once, not once per share."""
    from bayescale.data import validate
    from bayescale.discrepancy import learn_discrepancy
    from bayescale.inference import SamplerConfig, build_spec

    rng = np.random.default_rng(0)
    N = np.concatenate([np.geomspace(1e7, 3e8, 10), np.full(8, 1e9)])
    D = 20.0 * N
    U = D / np.concatenate([np.ones(10), np.arange(1, 9)])
    loss = (1.8 + 400 / N ** 0.34 + 1500 / U ** 0.28) * np.exp(0.01 * rng.standard_normal(N.size))
    data = validate(pd.DataFrame({"N": N, "D": D, "U": U, "loss": loss}))
    spec = build_spec("data_constrained", data)
    cfg = SamplerConfig(draws=300, warmup=0, chains=1, seed=0, method="laplace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        disc = learn_discrepancy(spec, data, cfg, method="laplace")
    assert [f["holdout"] for f in disc.fits] == [0.1]
    assert len(disc.lfo) == 8 and disc.lfo["row"].is_unique
    assert sum("the same split as cut 0.1" in n for n in disc.notes) == 3


# ----------------------------------------------------------------------------- plans, averages


def _with_kappa(fit, kappa: float):
    """The fit with a discrepancy whose kappa is (all but) fixed at ``kappa``."""
    grid = Discrepancy.grid()
    w = np.zeros_like(grid)
    w[np.argmin(np.abs(grid - kappa))] = 1.0
    d = Discrepancy(design="centre", origin=float(np.median(np.log10(fit.data.C))), weights=w)
    return fit.with_discrepancy(d)


def test_plan_carries_the_discrepancy(calibrated):
    plain = calibrated.with_discrepancy(None)
    wide = _with_kappa(plain, 0.05)
    a = bs.plan(plain, budget=1e24)
    b = bs.plan(wide, budget=1e24)
    spread = lambda p: p.loss_quantiles[0.95] - p.loss_quantiles[0.05]  # noqa: E731
    assert spread(b) > 2 * spread(a)
    # compute-only distance: every allocation at one budget shares the law error, so the
    # choice moves only through the risk's weighting of draws, not the error itself
    assert b.N == pytest.approx(a.N, rel=0.25)


def test_plan_and_predict_from_a_model_average(calibrated):
    plain = calibrated.with_discrepancy(None)
    avg = bs.average({"a": plain, "b": _with_kappa(plain, 0.05)}, weights={"a": 0.5, "b": 0.5})
    p = bs.plan(avg, budget=1e24)
    pa, pb = bs.plan(plain, budget=1e24), bs.plan(_with_kappa(plain, 0.05), budget=1e24)
    assert p.law.startswith("average(")
    width = lambda q: q.loss_quantiles[0.95] - q.loss_quantiles[0.05]  # noqa: E731
    assert width(pa) < width(p) < width(pb)
    only_a = bs.average({"a": plain, "b": _with_kappa(plain, 0.05)}, weights={"a": 1.0, "b": 0.0})
    # weight 1: the fit's own draws, permuted, so the same plan
    assert bs.plan(only_a, budget=1e24).loss_quantiles == pytest.approx(pa.loss_quantiles, rel=1e-9)
    pred = avg.predict(pd.DataFrame({"N": [7e10], "D": [1.4e12]}))
    assert np.isfinite(pred[["lower", "upper"]].to_numpy()).all()


# ----------------------------------------------------------------------------- backtest, CLI


def test_backtest_scores_plain_and_designs(small_fit):
    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = bs.backtest(df, holdout=0.25, designs=DESIGNS, baseline=False,
                         fit_kwargs={"draws": 200, "warmup": 200, "chains": 2, "seed": 3})
    methods = set(bt.scores["method"])
    assert methods == {"bayescale", "plain"} | {f"bayescale:{d}" for d in DESIGNS}
    own = bt.predictions[bt.predictions["method"] == f"bayescale:{bt.fit.discrepancy.design}"]
    mine = bt.predictions[bt.predictions["method"] == "bayescale"]
    np.testing.assert_allclose(own["lower_90"].to_numpy(), mine["lower_90"].to_numpy())
    assert {"interval_score_50", "interval_score_90"} <= set(bt.scores.columns)
    obs = bt.predictions[bt.predictions["kind"] == "observation"]
    got = interval_score(obs["lower_90"], obs["upper_90"], obs["loss"], 0.9)
    np.testing.assert_allclose(obs["interval_score_90"], got)
    assert obs["pit"].between(0, 1).all()


def test_cli_fit_without_discrepancy_says_plain(tmp_path, capsys):
    from bayescale.cli import run

    csv = tmp_path / "runs.csv"
    bs.datasets.load("chinchilla", epoch_subset=True).iloc[::4][["N", "D", "loss"]].to_csv(csv, index=False)
    code = run(["fit", str(csv), "--draws", "100", "--warmup", "100", "--chains", "2", "--discrepancy", "none",
                "-o", str(tmp_path / "f.nc")])
    out = capsys.readouterr().out
    assert code in (0, 3)
    assert "discrepancy: none (plain model" in out
    run(["predict", str(tmp_path / "f.nc"), "--N", "7e10", "--D", "1.4e12"])
    out = capsys.readouterr().out
    assert "plain model" in out and "model discrepancy 0.0000" in out


def test_cli_predict_and_plan_average_several_fits(small_fit, tmp_path, capsys):
    from bayescale.cli import run

    a = small_fit.save(tmp_path / "a.nc")
    b = small_fit.with_discrepancy(None).save(tmp_path / "b.nc")
    assert run(["predict", str(a), str(b), "--N", "7e10", "--D", "1.4e12", "--weights", "waic", "--json"]) == 0
    cap = capsys.readouterr()
    assert "model average (waic)" in cap.err and '"law": "average(' in cap.out
    assert run(["plan", str(a), str(b), "--budget", "1e23", "--weights", "waic"]) == 0
    assert "average(" in capsys.readouterr().out


def test_compiled_programs_are_released_when_crowded():
    from bayescale import inference, nuts

    inference._SAMPLERS[("x",)] = ("kept",)
    nuts._PROGRAMS["x"] = print
    assert inference.release_compiled_if_crowded(limit=0) is True
    assert inference._SAMPLERS == {} and nuts._PROGRAMS == {}
    assert inference.release_compiled_if_crowded(limit=10**9) is False
