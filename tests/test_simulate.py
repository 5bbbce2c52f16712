"""Fast tier: the simulator (no MCMC)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayescale import simulate as sim


def test_ladder_shape_ranges_and_reproducibility():
    d = sim.ladder([5, 3], ["a", "b"], N_range=(1e7, 1e9), tokens_per_param=(10, 40), seed=2)
    assert list(d.columns) == ["N", "D", "U", "family"]
    assert list(d["family"]) == ["a"] * 5 + ["b"] * 3
    assert d["N"].between(1e7, 1e9).all()
    assert (d["D"] / d["N"]).between(10, 40).all()
    assert (d["U"] == d["D"]).all()
    pd.testing.assert_frame_equal(d, sim.ladder([5, 3], ["a", "b"], N_range=(1e7, 1e9), tokens_per_param=(10, 40),
                                                seed=2))
    assert sim.ladder(4, 3).shape == (12, 4)
    with pytest.raises(ValueError):
        sim.ladder([1, 2], 3)


def test_draw_truth_sites_follow_the_fit_model():
    design = sim.ladder(6, 3, seed=0)
    truth = sim.draw_truth(design, hierarchy="partial", seed=1)
    for s in ("E", "A_ref", "B_ref", "alpha", "beta"):
        assert truth[s].shape == () and truth[f"tau_{s}"].shape == () and truth[f"{s}_f"].shape == (3,)
    assert truth["sigma"] > 0 and truth["A"] > 0
    spec = sim.design_spec(design)
    np.testing.assert_allclose(truth["A"], truth["A_ref"] * np.exp(truth["alpha"] * spec.ctx.log_N0), rtol=1e-5)
    assert set(sim.draw_truth(design, hierarchy="complete", seed=1)) >= {"E", "alpha", "sigma", "A", "B"}


def test_simulate_is_the_models_prior_predictive():
    """With tiny noise, the simulated log loss equals the model's own ``log_loss`` site."""
    import numpyro

    from bayescale.inference import make_model, model_args

    design = sim.ladder(5, 2, seed=3)
    priors = {"sigma": "HalfNormal(1e-6)"}
    spec = sim.design_spec(design, priors=priors)
    tr = numpyro.handlers.trace(numpyro.handlers.seed(make_model(spec), rng_seed=5)).get_trace(
        *model_args(sim.design_data(design)), log_y=None)
    truth = {k: np.asarray(tr[k]["value"]) for k in ("E_f", "A_ref_f", "B_ref_f", "alpha_f", "beta_f", "sigma")}
    out = sim.simulate(design, truth=truth, priors=priors, seed=0)
    np.testing.assert_allclose(np.log(out.runs["loss"]), np.asarray(tr["log_loss"]["value"]), atol=1e-5)
    assert list(out.runs.columns) == ["N", "D", "U", "family", "loss", "loss_law"]
    with pytest.raises(ValueError, match="lacks site"):
        sim.simulate(design, truth={"sigma": 0.01})


def test_simulate_is_seeded():
    design = sim.ladder(4, 2, seed=0)
    a, b, c = (sim.simulate(design, seed=s) for s in (7, 7, 8))
    pd.testing.assert_frame_equal(a.runs, b.runs)
    assert not np.allclose(a.runs["loss"], c.runs["loss"])
    assert a.truth.keys() == b.truth.keys()


def test_import_has_no_jax_side_effect():
    code = "import sys, bayescale.simulate; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
