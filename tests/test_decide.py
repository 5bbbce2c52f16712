"""Decision module: risk measures, cost model, planner, frontier, budget_for, CLI `plan`.

Fast tier, no MCMC: point-mass posteriors are built with ``Fit.from_draws`` and
the one real posterior is the stored tiny fit ``tests/fixtures/chinchilla_tiny.nc``
(``tests/fixtures/make_fixtures.py`` regenerates it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.cli import EXIT_OK, EXIT_USAGE, run
from bayescale.decide import (
    ALTERNATIVE_COLUMNS,
    CANDIDATE_COLUMNS,
    FRONTIER_COLUMNS,
    CostModel,
    cara,
    cvar,
    mean,
    mean_sd,
    quantile,
    risk_measure,
)
from bayescale.fitting import Fit

FIXTURE = Path(__file__).parent / "fixtures" / "chinchilla_tiny.nc"

#: Hoffmann et al. 2022, Approach 3 (Eq. 10)
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
#: Muennighoff et al. 2023, C4 fit (huggingface/datablations README, "Parametric Fit")
MUENNIGHOFF = {
    "E": math.exp(0.6254804), "A": math.exp(6.255414), "B": math.exp(7.3049974),
    "alpha": 0.3526596, "beta": 0.3526596, "R_D_star": 15.387756, "R_N_star": 5.309743,
}


def closed_form_n(p: dict[str, float], C: float, k: float = 6.0) -> float:
    """N* = G (C/k)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta))."""
    a, b = p["alpha"], p["beta"]
    G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    return G * (C / k) ** (b / (a + b))


@pytest.fixture(scope="module")
def hoffmann_fit():
    # Gaussian: its noise draws compile in a fraction of the Student-t's time
    return Fit.from_draws(HOFFMANN, bs.datasets.load("chinchilla", epoch_subset=True), likelihood="gaussian")


@pytest.fixture(scope="module")
def muennighoff_fit():
    return Fit.from_draws(MUENNIGHOFF, bs.datasets.load("datablations"), law="data_constrained",
                          likelihood="gaussian")


@pytest.fixture(scope="module")
def real_fit():
    return bs.load_fit(FIXTURE)


# ------------------------------------------------------------------ risk measures


def test_mean_and_quantile_by_hand():
    assert mean()([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert quantile(0.9)([1, 2, 3, 4, 5]) == pytest.approx(4.6)  # 1 + 0.9 * 4
    assert quantile(0.5)([4, 1, 3, 2]) == pytest.approx(2.5)
    assert quantile(0.9, method="inverted_cdf")([1, 2, 3, 4, 5]) == 5  # smallest x with F(x) >= 0.9
    assert quantile(0.8, method="inverted_cdf")([1, 2, 3, 4, 5]) == 4


def test_cvar_by_hand():
    x = np.arange(1.0, 11.0)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(x)
    assert cvar(0.9)(shuffled) == pytest.approx(10.0)  # the worst 10% of ten values: the largest
    assert cvar(0.8)(shuffled) == pytest.approx(9.5)  # (10 + 9) / 2
    assert cvar(0.75)(shuffled) == pytest.approx(9.2)  # (10 + 9 + 0.5 * 8) / 2.5
    assert cvar(0.0)(shuffled) == pytest.approx(5.5)  # the whole distribution: the mean
    assert cvar(0.5)([4.0, 1.0, 3.0, 2.0]) == pytest.approx(3.5)
    assert cvar(0.99)([1.0, 2.0, 3.0]) == pytest.approx(3.0)  # tail thinner than one sample: the max


def test_mean_sd_and_cara_by_hand():
    assert mean_sd(1.0)([1.0, 3.0]) == pytest.approx(3.0)  # mean 2, population sd 1
    assert mean_sd(0.0)([1.0, 3.0]) == pytest.approx(2.0)
    assert cara(1.0)([0.0, math.log(3.0)]) == pytest.approx(math.log(2.0))  # log((1 + 3) / 2)
    x = np.array([2.0, 2.1, 2.3])
    assert cara(1e-6)(x) == pytest.approx(x.mean(), rel=1e-6)
    assert cara(1e4)(x) == pytest.approx(x.max(), abs=1e-3)
    assert cara(1e3)([1e3, 1e3]) == pytest.approx(1e3)  # log-sum-exp: no overflow


def test_risk_measures_work_column_wise():
    x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    np.testing.assert_allclose(cvar(0.5)(x, axis=0), [3.5, 35.0])
    np.testing.assert_allclose(cvar(0.5)(x.T, axis=1), [3.5, 35.0])
    np.testing.assert_allclose(mean_sd(2.0)(x, axis=0), x.mean(0) + 2 * x.std(0))
    np.testing.assert_allclose(quantile(0.5)(x.T, axis=1), [2.5, 25.0])


def test_risk_measure_parser_round_trips_names():
    for text in ("mean", "q:0.9", "cvar:0.9", "meansd:1", "cara:5", "q:0.9:inverted_cdf"):
        assert risk_measure(text).name == text
        assert risk_measure(risk_measure(text).name).name == text
    assert risk_measure("median").name == "q:0.5"
    assert risk_measure(" CVaR:0.95 ").name == "cvar:0.95"
    f = cvar(0.9)
    assert risk_measure(f) is f


@pytest.mark.parametrize("bad", ["cvar:1.0", "cvar:-0.1", "q:1.5", "foo", "cvar", "cvar:x", "cara:0", "meansd:-1",
                                 "mean:0.5:linear", "q:0.9:bogus"])
def test_risk_measure_parser_rejects(bad):
    with pytest.raises(ValueError):
        risk_measure(bad)


# ----------------------------------------------------------------------- cost model


def test_cost_model():
    c = CostModel()
    assert c.training_flops(1e9, 2e10) == pytest.approx(1.2e20)
    assert c.tokens(1e9, 1.2e20) == pytest.approx(2e10)
    served = CostModel(inference_tokens=1e12, price_per_flop=2e-18)
    # (C - 2 N T) / (6 N) = (1.2e22 - 2e21) / 6e9
    assert served.tokens(1e9, 1.2e22) == pytest.approx(1e22 / 6e9)
    assert served.max_params(1.2e22) == pytest.approx(6e9)
    n = served.params_for_ratio(1e23, 20.0)
    assert served.total_flops(n, 20 * n) == pytest.approx(1e23)
    assert served.flops_for(2e5) == pytest.approx(1e23) and served.price(1e23) == pytest.approx(2e5)
    assert CostModel(flops_per_param_token=8).training_flops(1, 1) == 8
    with pytest.raises(ValueError, match="price_per_flop"):
        CostModel().flops_for(1.0)
    for bad in ({"flops_per_param_token": 0}, {"inference_tokens": -1.0}, {"price_per_flop": float("nan")}):
        with pytest.raises(ValueError):
            CostModel(**bad)


# --------------------------------------------------------- point masses: closed forms


@pytest.mark.parametrize("C", [1e21, 5.76e23, 1e25])
def test_point_mass_reproduces_chinchilla_closed_form(hoffmann_fit, C):
    p = bs.plan(hoffmann_fit, budget=C)
    n_star = closed_form_n(HOFFMANN, C)
    assert p.N == pytest.approx(n_star, rel=0.01)
    assert p.D == pytest.approx(C / (6 * n_star), rel=0.01)
    assert p.epochs == 1 and p.unique_tokens is None
    alt = p.alternatives
    assert alt.loc["closed_form_median", "N"] == pytest.approx(n_star, rel=1e-9)
    assert alt.loc["closed_form_median", "p_plan_beats"] == 0.5  # the same allocation: a tie on every draw


def test_point_mass_closed_form_with_other_flops_per_token(hoffmann_fit):
    p = bs.plan(hoffmann_fit, budget=1e23, cost=CostModel(flops_per_param_token=8.0))
    assert p.N == pytest.approx(closed_form_n(HOFFMANN, 1e23, k=8.0), rel=0.01)
    assert 8.0 * p.N * p.D == pytest.approx(1e23)


def test_point_mass_every_risk_measure_agrees(hoffmann_fit):
    ns = [bs.plan(hoffmann_fit, budget=1e22, risk=r).N for r in ("mean", "cvar:0.9", "q:0.1", "meansd:2", "cara:10")]
    assert max(ns) / min(ns) - 1 < 1e-3  # no uncertainty, nothing to be averse to


@pytest.mark.parametrize(
    "C, N, D, epochs",
    [(6 * 8.67e9 * 178e9, 6.8e9, 227e9, 9.1), (1e22, 7.03e9, 237e9, 9.49)],
)
def test_point_mass_reproduces_muennighoff_allocation(muennighoff_fit, C, N, D, epochs):
    p = bs.plan(muennighoff_fit, budget=C, unique_tokens=25e9)
    assert p.N == pytest.approx(N, rel=0.01)
    assert p.D == pytest.approx(D, rel=0.01)
    assert p.epochs == pytest.approx(epochs, rel=0.01)
    assert p.unique_tokens_used == 25e9
    # Chinchilla's closed form ignores repetition: it picks a bigger model on fewer (repeated) tokens
    assert p.alternatives.loc["closed_form_median", "N"] > 1.2 * p.N
    assert p.alternatives.loc["closed_form_median", "p_plan_beats"] == 1.0


def test_unique_tokens_cap_only_binds_when_short(muennighoff_fit):
    free = bs.plan(muennighoff_fit, budget=1e22)
    plenty = bs.plan(muennighoff_fit, budget=1e22, unique_tokens="10T")
    assert plenty.N == pytest.approx(free.N, rel=1e-3) and plenty.epochs == 1
    scarce = bs.plan(muennighoff_fit, budget=1e22, unique_tokens=5e9)
    assert scarce.epochs > 10 and scarce.loss_mean > free.loss_mean


def test_law_that_ignores_unique_tokens_says_so(hoffmann_fit):
    p = bs.plan(hoffmann_fit, budget=1e23, unique_tokens=1e10)
    assert p.epochs > 1
    assert any("ignores unique tokens" in n for n in p.notes)


def test_inference_cost_favours_smaller_models(hoffmann_fit):
    base = bs.plan(hoffmann_fit, budget=1e23)
    served = bs.plan(hoffmann_fit, budget=1e23, cost=CostModel(inference_tokens=2e12))
    assert served.N < 0.8 * base.N
    assert served.training_flops + served.inference_flops == pytest.approx(1e23)
    assert "closed_form_median" not in served.alternatives.index  # C = 6ND no longer holds


def test_money_budget(hoffmann_fit):
    cost = CostModel(price_per_flop=1e-18)
    p = bs.plan(hoffmann_fit, money=1e5, cost=cost)
    assert p.budget == pytest.approx(1e23) and p.money == pytest.approx(1e5)
    with pytest.raises(bs.DataError, match="exactly one"):
        bs.plan(hoffmann_fit, budget=1e23, money=1e5, cost=cost)


def test_point_mass_frontier_bands_collapse_on_the_closed_form(hoffmann_fit):
    budgets = [1e21, 1e23]
    fr = bs.frontier(hoffmann_fit, budgets)
    for C, (_, row) in zip(budgets, fr.iterrows(), strict=True):
        n_star = closed_form_n(HOFFMANN, C)
        for col in ("N", "N_opt_lower", "N_opt_median", "N_opt_upper"):
            assert row[col] == pytest.approx(n_star, rel=0.01), col
        assert row["loss_lower"] == pytest.approx(row["loss_upper"])


def test_other_laws_plan_or_refuse():
    df = bs.datasets.load("chinchilla", epoch_subset=True)
    eta = 0.17  # Gadre et al.'s law equals Chinchilla's with alpha = beta = 2 eta, A = a 6^-eta, B = b 6^-eta
    over = Fit.from_draws({"E": 1.69, "a": 406.4 * 6**eta, "b": 410.7 * 6**eta, "eta": eta}, df, law="overtrain",
                          likelihood="gaussian")
    same = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 2 * eta, "beta": 2 * eta}
    assert bs.plan(over, budget=1e23).N == pytest.approx(closed_form_n(same, 1e23), rel=0.01)
    compute_only = Fit.from_draws({"a": 1.7, "b": 1e3, "c0": 0.1, "c_1": 0.05, "d_1": 1e21, "f_1": 0.5}, df,
                                  law="broken_power", likelihood="gaussian")
    with pytest.raises(bs.DataError, match="law in compute alone"):
        bs.plan(compute_only, budget=1e23)


# ------------------------------------------------------------------- real posterior


def test_plan_on_real_posterior(real_fit):
    p = bs.plan(real_fit, budget=1e23, risk="cvar:0.9")
    assert isinstance(p, bs.Plan)
    assert 6 * p.N * p.D == pytest.approx(1e23)
    assert tuple(p.alternatives.columns) == ALTERNATIVE_COLUMNS
    assert tuple(p.candidates.columns) == CANDIDATE_COLUMNS and len(p.candidates) == 1000
    alt = p.alternatives
    assert list(alt.index[:2]) == ["plan", "risk_neutral"]
    assert {"closed_form_median", "tokens_per_param_20"} <= set(alt.index)
    # the plan minimises its risk measure; the risk-neutral plan minimises the mean
    assert (alt["risk_value"] >= p.risk_value - 1e-6).all()
    assert (alt["loss_mean"] >= alt.loc["risk_neutral", "loss_mean"] - 1e-6).all()
    assert alt["p_plan_beats"].between(0, 1).all() and (alt["oracle_regret"] >= 0).all()
    assert (alt["expected_regret"] >= 0).all()
    assert alt.loc["plan", "expected_regret"] == 0 and alt.loc["plan", "p_plan_beats"] == 0.5
    q = p.loss_quantiles
    assert q[0.05] < q[0.5] < q[0.95]
    assert p.loss_draws.shape == (real_fit.n_draws,) and p.optimum_draws.shape == (real_fit.n_draws,)
    assert p.extrapolation > 0


def test_plan_uses_the_fits_own_draws(real_fit):
    p = bs.plan(real_fit, budget=1e22)
    want = real_fit.predictive_draws(pd.DataFrame({"N": [p.N], "D": [p.D]}), kind="mean").values[:, 0]
    np.testing.assert_allclose(p.loss_draws, want, rtol=1e-5)


def test_noise_widens_the_loss_distribution(real_fit):
    quiet = bs.plan(real_fit, budget=1e22)
    noisy = bs.plan(real_fit, budget=1e22, noise=True)
    assert noisy.kind == "observation" and quiet.kind == "mean"
    width = lambda p: p.loss_quantiles[0.95] - p.loss_quantiles[0.05]  # noqa: E731
    assert width(noisy) > width(quiet)


def test_frontier(real_fit):
    budgets = [1e20, 1e22, 1e24]
    fr = bs.frontier(real_fit, budgets, risk="cvar:0.9")
    assert tuple(fr.columns) == FRONTIER_COLUMNS and list(fr["budget"]) == budgets
    assert fr["N"].is_monotonic_increasing and fr["D"].is_monotonic_increasing
    assert fr["loss_mean"].is_monotonic_decreasing
    for name in ("N_opt", "D_opt", "loss"):
        lo, mid, hi = (fr[f"{name}_{k}"] for k in ("lower", "median", "upper"))
        assert (lo <= mid).all() and (mid <= hi).all()
    assert (fr["N_opt_upper"] / fr["N_opt_lower"]).iloc[-1] > (fr["N_opt_upper"] / fr["N_opt_lower"]).iloc[0]
    assert fr.attrs["risk"] == "cvar:0.9"
    served = bs.frontier(real_fit, budgets, cost=CostModel(inference_tokens=1e12))
    assert (served["N"] < fr["N"]).all()
    np.testing.assert_allclose(served["training_flops"] + served["inference_flops"], budgets)


def test_budget_for_feasible(real_fit):
    res = bs.budget_for(real_fit, target_loss=2.0, probability=0.9)
    assert res.feasible and res.reason == ""
    assert res.achieved_probability >= 0.9
    assert res.plan.budget == res.budget and res.plan.p_below(2.0) >= 0.9
    below = bs.plan(real_fit, budget=res.budget / 1.03, risk="q:0.9:inverted_cdf", n_candidates=256)
    assert below.p_below(2.0) < 0.9  # the least budget, to the 1% tolerance
    looser = bs.budget_for(real_fit, target_loss=2.0, probability=0.5)
    assert looser.budget < res.budget
    assert json.loads(json.dumps(res.to_dict()))["feasible"] is True


def test_budget_for_point_mass_matches_optimal_loss(hoffmann_fit):
    res = bs.budget_for(hoffmann_fit, target_loss=2.0, probability=0.9)
    C = res.budget
    n = closed_form_n(HOFFMANN, C)
    d = C / (6 * n)
    best = HOFFMANN["E"] + HOFFMANN["A"] / n ** HOFFMANN["alpha"] + HOFFMANN["B"] / d ** HOFFMANN["beta"]
    assert best == pytest.approx(2.0, abs=1e-3)


def test_budget_for_infeasible_below_irreducible_loss(real_fit):
    res = bs.budget_for(real_fit, target_loss=1.5, probability=0.9)
    assert not res.feasible and res.budget is None and res.plan is None
    assert "irreducible loss E" in res.reason
    assert "infeasible" in str(res)


def test_budget_for_infeasible_when_repetition_caps_the_loss(muennighoff_fit):
    res = bs.budget_for(muennighoff_fit, target_loss=2.1, probability=0.9, unique_tokens=1e9)
    assert not res.feasible and "unique tokens" in res.reason
    assert bs.budget_for(muennighoff_fit, target_loss=2.1, probability=0.9).feasible


# ------------------------------------------------------------------ validation, API


def test_plan_validates_inputs(real_fit, hoffmann_fit):
    with pytest.raises(bs.DataError, match="budget"):
        bs.plan(real_fit, budget=-1)
    with pytest.raises(bs.DataError, match="unique_tokens"):
        bs.plan(real_fit, budget=1e22, unique_tokens=0)
    with pytest.raises(ValueError, match="unknown risk"):
        bs.plan(real_fit, budget=1e22, risk="worst")
    with pytest.raises(bs.DataError, match="n_candidates"):
        bs.plan(real_fit, budget=1e22, n_candidates=3)
    with pytest.raises(bs.DataError, match="serving"):
        bs.plan(real_fit, budget=1e20, cost=CostModel(inference_tokens=1e30))
    two = Fit.from_draws(HOFFMANN, bs.datasets.load("gadre"), likelihood="gaussian")
    with pytest.raises(bs.DataError, match="family"):
        bs.plan(two, budget=1e22)
    assert bs.plan(two, budget=1e22, family=two.families[1]).family == two.families[1]


def test_plan_is_frozen_and_validated(real_fit):
    p = bs.plan(real_fit, budget=1e22)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.N = 1.0
    with pytest.raises(ValueError, match="more than its budget"):
        dataclasses.replace(p, N=p.N * 2)
    with pytest.raises(ValueError, match="epochs"):
        dataclasses.replace(p, epochs=0.5)
    with pytest.raises(ValueError, match="alternatives"):
        dataclasses.replace(p, alternatives=p.alternatives.drop(columns="p_plan_beats"))
    with pytest.raises(ValueError):
        p.loss_draws[0] = 0.0
    text = str(p)
    assert "alternatives" in text and "tokens/parameter" in text


def test_public_api_is_wired():
    import bayescale.decide as decide

    for name in ("plan", "frontier", "budget_for", "Plan"):
        assert name in bs.__all__
    assert bs.plan is decide.plan and bs.Plan is decide.Plan


def test_from_draws_rejects_bad_draws():
    df = bs.datasets.load("chinchilla", epoch_subset=True)
    with pytest.raises(bs.DataError, match="missing: beta"):
        Fit.from_draws({k: v for k, v in HOFFMANN.items() if k != "beta"}, df)
    with pytest.raises(bs.DataError, match="unknown: gamma"):
        Fit.from_draws({**HOFFMANN, "gamma": 1.0}, df)
    with pytest.raises(bs.DataError, match="support"):
        Fit.from_draws({**HOFFMANN, "A": -1.0}, df)
    with pytest.raises(bs.DataError, match="one length"):
        Fit.from_draws({**HOFFMANN, "E": [1.7, 1.8], "A": [400.0, 410.0, 420.0]}, df)


def test_from_draws_predicts_its_values(hoffmann_fit):
    got = hoffmann_fit.predict(pd.DataFrame({"N": [7e10], "D": [1.4e12]}), kind="mean")["mean"].iloc[0]
    h = HOFFMANN
    assert got == pytest.approx(h["E"] + h["A"] / 7e10 ** h["alpha"] + h["B"] / 1.4e12 ** h["beta"], rel=1e-5)
    assert hoffmann_fit.diagnose().ok and hoffmann_fit.n_draws == 1


# -------------------------------------------------------------------------- CLI


def test_cli_plan_json_matches_api(real_fit, capsys):
    code = run(["plan", str(FIXTURE), "--budget", "1e23", "--risk", "cvar:0.9", "--json"])
    assert code == EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    want = bs.plan(real_fit, budget=1e23, risk="cvar:0.9")
    assert payload["N"] == pytest.approx(want.N) and payload["epochs"] == pytest.approx(want.epochs)
    assert payload["risk"] == "cvar:0.9" and payload["law"] == "chinchilla"
    names = [a["name"] for a in payload["alternatives"]]
    assert names[:2] == ["plan", "risk_neutral"]
    assert set(payload["alternatives"][1]) >= {"p_plan_beats", "expected_regret"}


def test_cli_plan_text_and_unique_tokens(capsys):
    assert run(["plan", str(FIXTURE), "--budget", "1e22", "--unique-tokens", "20B"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "plan for 1e+22 FLOPs" in out and "epochs over 2e+10 unique tokens" in out
    assert "ignores unique tokens" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["plan", str(FIXTURE)], "--budget"),
        (["plan", str(FIXTURE), "--budget", "lots"], "lots"),
        (["plan", str(FIXTURE), "--budget", "1e22", "--risk", "cvar:2"], "cvar"),
        (["plan", str(FIXTURE), "--budget", "1e22", "--inference-tokens", "-5"], "inference_tokens"),
        (["plan", "missing.nc", "--budget", "1e22"], "no such file"),
    ],
)
def test_cli_plan_bad_input_exit_2(argv, fragment, capsys):
    assert run(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err
