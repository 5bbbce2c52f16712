"""Per-family fixed values and priors (``fixed={"E[c4]": ...}``, ``priors={"E[oscar]": ...}``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpyro import handlers

from bayescale import inference as inf
from bayescale.data import validate
from bayescale.models import PriorError

BASE = {"E": 1.869, "A": 520.8, "B": 1487.7, "alpha": 0.3527}
HIER = {"R_D_star": "partial", "R_N_star": "partial", "default": "independent"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 12
    return validate(pd.DataFrame({
        "N": np.geomspace(1e8, 3e9, n), "D": np.geomspace(2e9, 6e10, n), "U": np.full(n, 1e9),
        "loss": 2.5 + 0.05 * rng.standard_normal(n), "family": ["c4", "oscar"] * (n // 2),
    }))


def spec_for(data, **kw):
    return inf.build_spec("data_constrained_tied", data, hierarchy=HIER,
                          fixed={f"{k}[c4]": v for k, v in BASE.items()}, **kw)


def test_fixed_family_values_reach_the_law(data):
    spec = spec_for(data)
    assert spec.fixed_family["E"] == {"c4": 1.869}
    tr = handlers.trace(handlers.seed(inf.make_model(spec), 0)).get_trace(*inf.model_args(data))
    assert "E__1" in tr and "E__0" not in tr  # only oscar's E is sampled
    sites = {k: tr[k]["value"] for k in ("E_f", "A_ref_f", "B_ref_f", "alpha_f", "R_D_star_f", "R_N_star_f")}
    vals = inf.law_params(spec, sites, data.family_idx)
    c4 = data.family_idx == 0
    np.testing.assert_allclose(np.asarray(vals["E"])[c4], 1.869, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(vals["A"])[c4], 520.8, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(vals["B"])[c4], 1487.7, rtol=1e-5)
    assert not np.allclose(np.asarray(vals["E"])[~c4], 1.869)


def test_family_prior_applies_to_that_family_only(data):
    spec = spec_for(data, priors={"E[oscar]": "LogNormal(0.5, 0.01)"})
    tr = handlers.trace(handlers.seed(inf.make_model(spec), 1)).get_trace(*inf.model_args(data))
    assert float(tr["E__1"]["fn"].scale) == pytest.approx(0.01)
    assert spec.priors["E"] != spec.priors["E[oscar]"]


def test_paper_draws_carry_fixed_values(data):
    spec = spec_for(data)
    post = {
        "E_f": np.array([[1.0, 1.9]]), "A_ref_f": np.array([[1.0, 0.4]]), "B_ref_f": np.array([[1.0, 0.4]]),
        "alpha_f": np.array([[0.5, 0.33]]), "R_D_star": np.array([15.0]), "R_N_star": np.array([5.0]),
    }
    out = inf.paper_draws(spec, post)
    assert out["E_f"][0, 0] == 1.869 and out["A_f"][0, 0] == 520.8
    assert np.isnan(out["A_ref_f"][0, 0]) and out["A_ref_f"][0, 1] == 0.4


@pytest.mark.parametrize(
    "fixed, hierarchy, match",
    [
        ({"E[c4]": 1.9}, "partial", "independent"),
        ({"E[nope]": 1.9}, {"default": "independent"}, "no family 'nope'"),
        ({"E[c4]": 1.9, "E[oscar]": 1.8}, {"default": "independent"}, "every family"),
        ({"Z[c4]": 1.0}, {"default": "independent"}, "Z"),
        ({"E[c4]": -1.0}, {"default": "independent"}, "support"),
    ],
)
def test_bad_family_fixed(data, fixed, hierarchy, match):
    with pytest.raises(PriorError, match=match):
        inf.build_spec("data_constrained_tied", data, hierarchy=hierarchy, fixed=fixed)


def test_family_prior_needs_independent_pooling(data):
    with pytest.raises(PriorError, match="E\\[oscar\\]"):
        inf.build_spec("data_constrained_tied", data, hierarchy="partial", priors={"E[oscar]": "LogNormal(0, 1)"})


def test_spec_json_round_trip_keeps_family_fixed(data):
    spec = spec_for(data, priors={"E[oscar]": "LogNormal(0.5, 0.3)"})
    assert inf.ModelSpec.from_json(spec.to_json()) == spec
