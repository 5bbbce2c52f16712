"""Fast tier: the numpyro model built from law + hierarchy + likelihood, without MCMC.

Models are traced with ``numpyro.handlers.trace(seed(model, 0))``; the reference-scale
mapping is checked against numbers computed here from the data's geometric means.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import numpyro.distributions as nd
import pandas as pd
import pytest
from numpyro import handlers
from scipy import stats

from bayescale import inference as inf
from bayescale.data import validate
from bayescale.models import PriorError, get_law
from bayescale.models import hierarchy as hier
from bayescale.models.hierarchy import HierarchyError
from bayescale.models.likelihood import Likelihood
from bayescale.models.priors import Prior

CHIN = ("E", "A_ref", "B_ref", "alpha", "beta")  # chinchilla's sampled names


def make_frame(n_families: int = 3, per_family: int = 4, loss_shift: float = 0.0) -> pd.DataFrame:
    rows = []
    for f in range(n_families):
        for i in range(per_family):
            N = 1e7 * 10 ** (0.5 * i + 0.1 * f)
            D = 20 * N * (1 + 0.3 * i)
            loss = 1.8 + 400 / N**0.34 + 400 / D**0.28 + 0.02 * f + loss_shift
            rows.append({"N": N, "D": D, "loss": loss, "family": f"fam{f}"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def frame3():
    return make_frame(3, 4)


@pytest.fixture(scope="module")
def data3(frame3):
    return validate(frame3)


@pytest.fixture(scope="module")
def data1():
    return validate(make_frame(1, 12))  # as many rows as data3: no new shapes to compile


def trace(spec, data, observed=True):
    model = inf.make_model(spec)
    log_y = np.log(data.loss).astype(np.float32) if observed else None
    return handlers.trace(handlers.seed(model, 0)).get_trace(*inf.model_args(data), log_y=log_y)


def sample_sites(tr):
    return {k: v for k, v in tr.items() if v["type"] == "sample"}


def shape(tr, name):
    return tuple(np.shape(tr[name]["value"]))


def base_fn(site):
    """The distribution at a site, unwrapped from plate expansion."""
    fn = site["fn"]
    while isinstance(fn, nd.ExpandedDistribution):
        fn = fn.base_dist
    return fn


# ----------------------------------------------------------------------------- hierarchy shapes


@pytest.mark.parametrize("law", ["chinchilla", "kaplan", "kaplan_e"])
def test_complete_pooling_gives_scalar_sites(law, data3):
    spec = inf.build_spec(law, data3, hierarchy="complete")
    tr = trace(spec, data3)
    expected = set(get_law(law).sampled_names) | {"sigma", "log_loss"}
    assert set(sample_sites(tr)) == expected
    for s in get_law(law).sampled_names:
        assert shape(tr, s) == (), s
    assert shape(tr, "sigma") == ()


def test_independent_gives_per_family_vectors(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="independent")
    tr = trace(spec, data3)
    for s in CHIN:
        assert s not in tr
        assert shape(tr, f"{s}_f") == (3,)
        assert f"tau_{s}" not in tr
    assert shape(tr, "sigma") == ()


def test_partial_gives_population_scale_and_family_values(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="partial")
    assert spec.centred is False  # loss-free default: non-centred (bs.fit reads weights off the runs)
    tr = trace(spec, data3)
    for s in CHIN:
        assert shape(tr, s) == ()
        assert tr[s]["type"] == "sample"
        assert shape(tr, f"tau_{s}") == ()
        assert shape(tr, f"{s}_f") == (3,)
        assert f"{s}_w_decentered" in tr  # LocScaleReparam(centered=0)
    # family values live on the log scale around the population value
    w = np.asarray(tr["alpha_w"]["value"])
    np.testing.assert_allclose(np.asarray(tr["alpha_f"]["value"]), np.exp(w), rtol=1e-6)
    assert np.all(np.asarray(tr["E_f"]["value"]) > 0)


def test_initialisation_starts_gamma_sites_at_their_mean_and_others_apart(data3):
    # population scales (Gamma priors) start at the prior mean, so JAX's Gamma sampler stays
    # out of the compiled chains; other sites still start at random medians, apart per chain
    import jax
    from numpyro.infer.util import initialize_model

    spec = inf.build_spec("chinchilla", data3, hierarchy="partial")
    model = inf.make_model(spec)
    kwargs = {"log_y": np.log(data3.loss).astype(np.float32)}
    starts = [initialize_model(jax.random.PRNGKey(k), model, model_args=inf.model_args(data3),
                               model_kwargs=kwargs, init_strategy=inf.init_strategy()) for k in (0, 1)]
    const = [info.postprocess_fn(info.param_info.z) for info in starts]
    for s in CHIN:
        prior = spec.priors[f"tau_{s}"]
        assert prior.dist == "Gamma"
        mean = prior.kwargs["concentration"] / prior.kwargs["rate"]
        for c in const:
            np.testing.assert_allclose(float(c[f"tau_{s}"]), mean, rtol=1e-5)
    assert float(const[0]["alpha"]) != float(const[1]["alpha"])


def test_centring_weights_follow_how_well_each_family_pins_its_value():
    # agreeing families (spread within their errors): no between-family scale, non-centred
    np.testing.assert_array_equal(hier.centring_weights([0.50, 0.52, 0.49], [0.05, 0.05, 0.05]), 0.0)
    # families far apart, each pinned tightly: centred; a loosely pinned one stays near 0
    c = hier.centring_weights([0.0, 1.0, 2.0, 1.0], [0.01, 0.01, 0.01, 5.0])
    assert c[:3].min() > 0.9 and c[3] < 0.1
    # the Papaspiliopoulos et al. weight tau^2 / (tau^2 + s^2); at equal errors Paule-Mandel's
    # tau^2 is the sample variance less the error variance
    mode, sd = np.array([0.0, 0.4, 0.8]), np.full(3, 0.2)
    tau2 = np.var(mode, ddof=1) - 0.04
    np.testing.assert_allclose(hier.centring_weights(mode, sd), np.round(tau2 / (tau2 + 0.04), 2))


def test_fit_reads_centring_weights_off_the_runs():
    # families whose losses differ by 0.3 nats (so in E only), 12 runs each with 1% noise:
    # E is pinned far tighter than the spread between families (centred), the exponents and
    # amplitudes agree across families (non-centred)
    rng = np.random.default_rng(0)
    frame = pd.concat([make_frame(1, 12, loss_shift=0.3 * k).assign(family=f"fam{k}") for k in range(3)])
    frame["loss"] *= np.exp(0.01 * rng.standard_normal(len(frame)))
    data = validate(frame)
    spec = inf.centring(inf.build_spec("chinchilla", data, hierarchy="partial"), data)
    assert min(spec.centred["E"]) > 0.5
    assert max(spec.centred["alpha"]) < 0.5 and max(spec.centred["beta"]) < 0.5
    assert inf.ModelSpec.from_json(spec.to_json()) == spec
    tr = trace(spec, data)  # the weighted site samples and maps back to the family values
    assert shape(tr, "E_f") == (3,) and "E_w_decentered" in tr


def test_centred_partial_samples_family_values_directly(data3):
    spec = dataclasses.replace(inf.build_spec("chinchilla", data3, hierarchy="partial"), centred=True)
    tr = trace(spec, data3)
    assert "alpha_w_decentered" not in tr
    assert tr["alpha_w"]["type"] == "sample"
    fn = base_fn(tr["alpha_w"])
    assert isinstance(fn, nd.Normal)
    np.testing.assert_allclose(np.asarray(fn.loc), math.log(float(tr["alpha"]["value"])), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fn.scale), float(tr["tau_alpha"]["value"]), rtol=1e-6)


def test_per_parameter_dict(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy={"alpha": "partial", "default": "complete"})
    assert spec.pooling == {"E": "complete", "A": "complete", "B": "complete", "alpha": "partial", "beta": "complete"}
    tr = trace(spec, data3)
    assert shape(tr, "alpha") == () and shape(tr, "tau_alpha") == () and shape(tr, "alpha_f") == (3,)
    for s in ("E", "A_ref", "B_ref", "beta"):
        assert shape(tr, s) == ()
        assert f"{s}_f" not in tr and f"tau_{s}" not in tr


def test_dict_default_and_sampled_name_keys(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy={"A_ref": "independent", "default": "partial"})
    assert spec.pooling["A"] == "independent"
    assert {spec.pooling[k] for k in ("E", "B", "alpha", "beta")} == {"partial"}
    tr = trace(spec, data3)
    assert "A_ref" not in tr and shape(tr, "A_ref_f") == (3,)


def test_dict_without_default_is_complete(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy={"E": "independent"})
    assert spec.pooling == {"E": "independent", "A": "complete", "B": "complete", "alpha": "complete", "beta": "complete"}


def test_auto_with_one_family_is_complete(data1):
    spec = inf.build_spec("chinchilla", data1)  # hierarchy="auto" is the default
    assert set(spec.pooling.values()) == {"complete"}
    tr = trace(spec, data1)
    assert all(shape(tr, s) == () for s in CHIN)
    assert not any(k.endswith("_f") or k.startswith("tau_") for k in tr)


def test_auto_with_three_families_is_partial(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="auto")
    assert spec.pooling == dict.fromkeys(("E", "A", "B", "alpha", "beta"), "partial")
    tr = trace(spec, data3)
    assert all(shape(tr, f"{s}_f") == (3,) and shape(tr, f"tau_{s}") == () for s in CHIN)


def test_string_and_dict_hierarchy_agree_with_one_family(data1):
    as_string = inf.build_spec("chinchilla", data1, hierarchy="partial")
    as_dict = inf.build_spec("chinchilla", data1, hierarchy={"default": "partial"})
    assert as_string.pooling == as_dict.pooling


@pytest.mark.parametrize("hierarchy", ["complete", "independent", "partial"])
def test_observation_site(hierarchy, data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy=hierarchy)
    tr = trace(spec, data3)
    site = tr["log_loss"]
    assert site["is_observed"]
    assert shape(tr, "log_loss") == (data3.n_rows,)
    np.testing.assert_allclose(np.asarray(site["value"]), np.log(data3.loss), rtol=1e-6)
    fn = site["fn"]
    assert isinstance(fn, nd.StudentT)
    np.testing.assert_array_equal(np.asarray(fn.df), 4.0)
    assert np.shape(fn.loc) == (data3.n_rows,)
    np.testing.assert_allclose(np.asarray(fn.scale), float(tr["sigma"]["value"]), rtol=1e-6)


def test_unobserved_trace_draws_log_loss(data3):
    # gaussian: drawing Student-t noise would compile a gamma sampler (seconds)
    spec = inf.build_spec("chinchilla", data3, hierarchy="complete", likelihood="gaussian")
    site = trace(spec, data3, observed=False)["log_loss"]
    assert not site["is_observed"]
    assert np.shape(site["value"]) == (data3.n_rows,)
    assert np.all(np.isfinite(np.asarray(site["value"])))


def test_model_mean_is_the_law_at_the_sampled_values(frame3, data3):
    """Obs location == log(E + A/N^alpha + B/D^beta) with A = A_ref * N0^alpha, by hand."""
    spec = inf.build_spec("chinchilla", data3, hierarchy={"alpha": "independent"})
    tr = trace(spec, data3)
    v = {k: np.asarray(tr[k]["value"], dtype=np.float64) for k in ("E", "A_ref", "B_ref", "alpha_f", "beta")}
    N, D = frame3["N"].to_numpy(), frame3["D"].to_numpy()
    logN0, logD0 = np.mean(np.log(N)), np.mean(np.log(D))
    fam = frame3["family"].map({"fam0": 0, "fam1": 1, "fam2": 2}).to_numpy()
    alpha = v["alpha_f"][fam]
    A = v["A_ref"] * np.exp(alpha * logN0)
    B = v["B_ref"] * np.exp(v["beta"] * logD0)
    expected = np.log(v["E"] + A / N**alpha + B / D ** v["beta"])
    np.testing.assert_allclose(np.asarray(tr["log_loss"]["fn"].loc), expected, rtol=2e-5)


# ----------------------------------------------------------------------------- priors


def test_prior_override_changes_the_site(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="complete", priors={"alpha": "Normal(0.35, 0.05)"})
    assert spec.priors["alpha"] == Prior("Normal", loc=0.35, scale=0.05)
    fn = trace(spec, data3)["alpha"]["fn"]
    assert isinstance(fn, nd.Normal)
    assert float(fn.loc) == pytest.approx(0.35) and float(fn.scale) == pytest.approx(0.05)
    # the other sites keep their defaults
    default = inf.build_spec("chinchilla", data3, hierarchy="complete")
    assert spec.priors["beta"] == default.priors["beta"]
    assert isinstance(trace(default, data3)["alpha"]["fn"], nd.LogNormal)


def test_prior_override_accepts_prior_objects_and_sigma(data3):
    spec = inf.build_spec(
        "chinchilla", data3, hierarchy="complete",
        priors={"E": Prior("LogNormal", loc=0.6, scale=0.1), "sigma": "HalfNormal(0.02)"},
    )
    tr = trace(spec, data3)
    assert isinstance(tr["E"]["fn"], nd.LogNormal) and float(tr["E"]["fn"].loc) == pytest.approx(0.6)
    assert isinstance(tr["sigma"]["fn"], nd.HalfNormal) and float(tr["sigma"]["fn"].scale) == pytest.approx(0.02)


def test_prior_override_on_population_and_tau(data3):
    spec = inf.build_spec(
        "chinchilla", data3, hierarchy="partial",
        priors={"alpha": "LogNormal(-1.1, 0.2)", "tau_alpha": "HalfNormal(0.05)"},
    )
    tr = trace(spec, data3)
    assert float(tr["alpha"]["fn"].loc) == pytest.approx(-1.1)
    assert isinstance(tr["tau_alpha"]["fn"], nd.HalfNormal)
    assert float(tr["tau_alpha"]["fn"].scale) == pytest.approx(0.05)
    default = tr["tau_beta"]["fn"]  # untouched: the zero-avoiding Gamma(2, 20)
    assert isinstance(default, nd.Gamma) and float(default.mean) == pytest.approx(0.1)


def test_independent_override_applies_to_every_family(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="independent", priors={"beta": "Normal(0.3, 0.02)"})
    site = trace(spec, data3)["beta_f"]
    fn = base_fn(site)
    assert isinstance(fn, nd.Normal) and float(fn.loc) == pytest.approx(0.3)
    assert site["fn"].batch_shape == (3,)


def test_unknown_prior_key_lists_valid_names(data3):
    with pytest.raises(PriorError) as info:
        inf.build_spec("chinchilla", data3, hierarchy="complete", priors={"gamma": "Normal(0, 1)"})
    msg = str(info.value)
    assert "gamma" in msg
    for name in ("E", "A_ref", "B_ref", "alpha", "beta", "sigma"):
        assert name in msg


def test_prior_on_paper_amplitude_hints_at_reference_scale(data3):
    with pytest.raises(PriorError) as info:
        inf.build_spec("chinchilla", data3, hierarchy="complete", priors={"A": "LogNormal(6, 1)"})
    msg = str(info.value)
    assert "A_ref" in msg and "reference scale" in msg


def test_prior_on_fixed_parameter_says_it_is_fixed(data3):
    with pytest.raises(PriorError, match="fixed"):
        inf.build_spec("chinchilla", data3, fixed={"E": 1.8}, priors={"E": "LogNormal(0.5, 0.1)"})


def test_prior_on_fixed_amplitude_says_it_is_fixed(data3):
    with pytest.raises(PriorError, match="fixed"):
        inf.build_spec("chinchilla", data3, fixed={"A": 400.0}, priors={"A": "LogNormal(6, 1)"})


def test_tau_prior_only_for_partially_pooled(data3):
    with pytest.raises(PriorError, match="tau_alpha"):
        inf.build_spec("chinchilla", data3, hierarchy="complete", priors={"tau_alpha": "HalfNormal(0.1)"})


@pytest.mark.parametrize(
    ("key", "prior", "hierarchy"),
    [
        ("alpha", "Normal(0, 1)", "complete"),
        ("E", "Normal(1.8, 1)", "complete"),
        ("sigma", "Normal(0, 0.1)", "complete"),
        ("tau_beta", "Normal(0, 0.3)", "partial"),
        ("alpha", "Cauchy(0.3, 0.1)", "independent"),
    ],
)
def test_prior_outside_support_raises(key, prior, hierarchy, data3):
    with pytest.raises(PriorError, match="support"):
        inf.build_spec("chinchilla", data3, hierarchy=hierarchy, priors={key: prior})


@pytest.mark.parametrize("dataset", ["chinchilla", "datablations", "gadre"])
def test_every_default_prior_puts_its_mass_on_the_support(dataset):
    """build_spec checks only the priors a user gives; the package's own defaults (which
    depend on the data's reference scales) are checked here, for every law."""
    import bayescale as bs
    from bayescale.models import law_names
    from bayescale.models.likelihood import SIGMA_PRIOR

    ctx = inf.context(validate(bs.datasets.load(dataset)))
    for name in law_names():
        law = get_law(name)
        priors = dict(law.default_priors(ctx), sigma=SIGMA_PRIOR)
        priors.update({f"tau_{p.sampled_name}": hier.TAU_PRIOR[p.support] for p in law.params})
        inf._check_prior_supports(law, priors)


def test_the_support_check_catches_a_bad_default(data3):
    law = get_law("chinchilla")
    bad = dict(law.default_priors(inf.context(data3)), alpha=Prior.parse("Normal(0, 1)"))
    with pytest.raises(PriorError, match="alpha"):
        inf._check_prior_supports(law, bad)


def test_unparseable_prior_raises_prior_error(data3):
    with pytest.raises(PriorError):
        inf.build_spec("chinchilla", data3, priors={"alpha": "Normal(__import__('os'), 1)"})


def test_priors_never_depend_on_the_loss():
    a = inf.build_spec("kaplan", validate(make_frame(3, 4)))
    b = inf.build_spec("kaplan", validate(make_frame(3, 4, loss_shift=0.7)))
    assert a == b


# ----------------------------------------------------------------------------- fixed values


def test_fixed_removes_the_site_and_the_law_uses_the_value(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="complete", fixed={"E": 1.869})
    assert spec.fixed == {"E": 1.869} and "E" not in spec.pooling and "E" not in spec.priors
    tr = trace(spec, data3)
    assert "E" not in tr and "E_f" not in tr
    sites = {"A_ref": 0.5, "B_ref": 0.4, "alpha": 0.3, "beta": 0.25}
    vals = inf.law_params(spec, sites, data3.family_idx)
    assert float(vals["E"]) == pytest.approx(1.869, rel=1e-7)
    # at huge N and D the model's mean is log 1.869
    mu = spec.law_obj.log_loss(vals, np.float32(200.0), np.float32(200.0), np.float32(200.0))
    np.testing.assert_allclose(np.asarray(mu), math.log(1.869), rtol=1e-6)


def test_fixed_exponent_feeds_the_reference_mapping(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="complete", fixed={"alpha": 0.34})
    logN0 = np.mean(np.log(data3.N))
    vals = inf.law_params(spec, {"E": 1.8, "A_ref": 0.5, "B_ref": 0.4, "beta": 0.3}, data3.family_idx)
    np.testing.assert_allclose(np.asarray(vals["A"]), 0.5 * np.exp(0.34 * logN0), rtol=1e-5)
    post = {"E": np.array([1.8]), "A_ref": np.array([0.5]), "B_ref": np.array([0.4]), "beta": np.array([0.3])}
    np.testing.assert_allclose(inf.paper_draws(spec, post)["A"], 0.5 * np.exp(0.34 * logN0), rtol=1e-12)


@pytest.mark.parametrize(
    ("fixed", "match"),
    [({"A_ref": 1.0}, "paper"), ({"E": -1.0}, "support"), ({"Q": 1.0}, "Q"), ({"E": "abc"}, "number")],
)
def test_bad_fixed_values_raise(fixed, match, data3):
    with pytest.raises(PriorError, match=match):
        inf.build_spec("chinchilla", data3, fixed=fixed)


# ----------------------------------------------------------------------------- bad settings


def test_unknown_hierarchy_mode(data3):
    with pytest.raises(HierarchyError, match="nope"):
        inf.build_spec("chinchilla", data3, hierarchy="nope")


def test_unknown_parameter_in_hierarchy_dict(data3):
    with pytest.raises(HierarchyError) as info:
        inf.build_spec("chinchilla", data3, hierarchy={"gamma": "partial"})
    assert "gamma" in str(info.value) and "alpha" in str(info.value)


def test_unknown_pooling_in_hierarchy_dict(data3):
    with pytest.raises(HierarchyError, match="pool"):
        inf.build_spec("chinchilla", data3, hierarchy={"alpha": "pool"})


def test_hierarchy_error_is_value_error():
    assert issubclass(HierarchyError, ValueError)


def test_unknown_likelihood(data3):
    with pytest.raises(ValueError, match="student_t"):
        inf.build_spec("chinchilla", data3, likelihood="cauchy")


def test_unknown_law(data3):
    with pytest.raises(ValueError, match="chinchilla"):
        inf.build_spec("nope", data3)


@pytest.mark.parametrize(("name", "cls"), [("gaussian", nd.Normal), ("laplace", nd.Laplace)])
def test_other_likelihoods_in_the_model(name, cls, data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="complete", likelihood=name)
    assert isinstance(trace(spec, data3)["log_loss"]["fn"], cls)


# ----------------------------------------------------------------------------- reference scale


@pytest.fixture(scope="module")
def spec_complete(data3):
    return inf.build_spec("chinchilla", data3, hierarchy="complete")


def test_context_is_the_geometric_means(frame3, spec_complete):
    N, D = frame3["N"].to_numpy(), frame3["D"].to_numpy()
    ctx = spec_complete.ctx
    assert ctx.log_N0 == pytest.approx(np.mean(np.log(N)), rel=1e-12)
    assert ctx.log_D0 == pytest.approx(np.mean(np.log(D)), rel=1e-12)
    assert ctx.log_U0 == pytest.approx(np.mean(np.log(D)), rel=1e-12)  # U defaults to D
    assert ctx.log_C0 == pytest.approx(np.mean(np.log(6 * N * D)), rel=1e-12)


def test_law_params_shared(frame3, data3, spec_complete):
    logN0 = np.mean(np.log(frame3["N"].to_numpy()))
    logD0 = np.mean(np.log(frame3["D"].to_numpy()))
    sites = {"E": 1.8, "A_ref": 0.5, "B_ref": 0.4, "alpha": 0.34, "beta": 0.28}
    vals = inf.law_params(spec_complete, sites, data3.family_idx)
    assert np.asarray(vals["A"]).shape == (1,)  # broadcasts over rows
    np.testing.assert_allclose(np.asarray(vals["A"]), 0.5 * math.exp(0.34 * logN0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(vals["B"]), 0.4 * math.exp(0.28 * logD0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(vals["E"]), 1.8, rtol=1e-6)


def test_law_params_kaplan_scales(frame3, data3):
    spec = inf.build_spec("kaplan", data3, hierarchy="complete")
    N, D = frame3["N"].to_numpy(), frame3["D"].to_numpy()
    sites = {"N_c_ref": 3.0, "D_c_ref": 2.0, "alpha_N": 0.08, "alpha_D": 0.1}
    vals = inf.law_params(spec, sites, data3.family_idx)
    # N_c = N_c_ref * N0 (geometric mean), independent of the exponents
    np.testing.assert_allclose(np.asarray(vals["N_c"]), 3.0 * np.exp(np.mean(np.log(N))), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(vals["D_c"]), 2.0 * np.exp(np.mean(np.log(D))), rtol=1e-5)
    draws = inf.paper_draws(spec, {k: np.array([v]) for k, v in sites.items()})
    np.testing.assert_allclose(draws["N_c"], 3.0 * np.exp(np.mean(np.log(N))), rtol=1e-12)


def test_paper_draws_shared(data3, spec_complete):
    logN0, logD0 = spec_complete.ctx.log_N0, spec_complete.ctx.log_D0
    post = {
        "E": np.array([1.8, 1.9]), "A_ref": np.array([0.5, 0.6]), "B_ref": np.array([0.4, 0.3]),
        "alpha": np.array([0.34, 0.30]), "beta": np.array([0.28, 0.36]), "sigma": np.array([0.01, 0.02]),
    }
    out = inf.paper_draws(spec_complete, post)
    np.testing.assert_allclose(out["A"], [0.5 * math.exp(0.34 * logN0), 0.6 * math.exp(0.30 * logN0)], rtol=1e-12)
    np.testing.assert_allclose(out["B"], [0.4 * math.exp(0.28 * logD0), 0.3 * math.exp(0.36 * logD0)], rtol=1e-12)
    np.testing.assert_array_equal(out["A_ref"], post["A_ref"])  # reference values kept
    np.testing.assert_array_equal(out["E"], post["E"])
    assert "A_f" not in out


def _family_post(n_draws=2):
    return {
        "E": np.full(n_draws, 1.8),
        "A_ref": np.array([0.5, 0.6])[:n_draws],
        "B_ref": np.array([0.4, 0.3])[:n_draws],
        "alpha_f": np.array([[0.30, 0.34, 0.40], [0.31, 0.35, 0.39]])[:n_draws],
        "beta": np.array([0.28, 0.36])[:n_draws],
    }


def test_paper_draws_mixed_complete_amplitude_independent_exponent(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy={"alpha": "independent"})
    assert spec.pooling["A"] == "complete" and spec.pooling["alpha"] == "independent"
    logN0 = spec.ctx.log_N0
    post = _family_post()
    out = inf.paper_draws(spec, post)
    assert out["A_f"].shape == (2, 3)
    expected = post["A_ref"][:, None] * np.exp(post["alpha_f"] * logN0)
    np.testing.assert_allclose(out["A_f"], expected, rtol=1e-12)
    assert len(np.unique(np.round(out["A_f"][0], 6))) == 3  # A differs per family
    assert "A" not in out  # no shared exponent, so no shared A
    assert out["B"].shape == (2,)


def test_paper_draws_and_law_params_agree_per_family(data3):
    """Fitting (law_params) and reporting (paper_draws) map reference values the same way."""
    spec = inf.build_spec("chinchilla", data3, hierarchy={"alpha": "independent"})
    post = _family_post(1)
    per_row = inf.law_params(spec, {k: v[0] for k, v in post.items()}, data3.family_idx)
    per_family = inf.paper_draws(spec, post)["A_f"][0]
    np.testing.assert_allclose(np.asarray(per_row["A"]), per_family[data3.family_idx], rtol=1e-5)


def test_paper_draws_independent_amplitude_shared_exponent(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy={"A": "independent"})
    logN0 = spec.ctx.log_N0
    post = {"A_ref_f": np.array([[0.5, 0.6, 0.7]]), "alpha": np.array([0.33])}
    out = inf.paper_draws(spec, post)
    np.testing.assert_allclose(out["A_f"], [[v * math.exp(0.33 * logN0) for v in (0.5, 0.6, 0.7)]], rtol=1e-12)


def test_paper_draws_partial(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="partial")
    logN0 = spec.ctx.log_N0
    post = {
        "A_ref": np.array([0.5]), "A_ref_f": np.array([[0.45, 0.5, 0.55]]),
        "alpha": np.array([0.33]), "alpha_f": np.array([[0.31, 0.33, 0.36]]),
    }
    out = inf.paper_draws(spec, post)
    np.testing.assert_allclose(out["A"], [0.5 * math.exp(0.33 * logN0)], rtol=1e-12)
    np.testing.assert_allclose(
        out["A_f"], [[a * math.exp(k * logN0) for a, k in zip((0.45, 0.5, 0.55), (0.31, 0.33, 0.36), strict=True)]],
        rtol=1e-12,
    )


# ----------------------------------------------------------------------------- ModelSpec JSON


@pytest.mark.parametrize(
    ("law", "kwargs"),
    [
        ("chinchilla", {"hierarchy": "complete", "fixed": {"E": 1.869}}),
        ("chinchilla", {"hierarchy": "partial", "priors": {"alpha": "Normal(0.35, 0.05)"}}),
        ("chinchilla", {"hierarchy": {"alpha": "independent"}, "likelihood": "laplace"}),
        ("kaplan", {}),
        ("kaplan_e", {"priors": {"tau_E": "HalfNormal(0.1)"}}),
    ],
)
def test_model_spec_json_round_trip(law, kwargs, data3):
    spec = inf.build_spec(law, data3, **kwargs)
    text = spec.to_json()
    json.loads(text)  # plain JSON
    back = inf.ModelSpec.from_json(text)
    assert back == spec
    assert back.to_json() == text


def test_model_spec_json_rebuilds_the_same_model(data3):
    spec = inf.build_spec("chinchilla", data3, hierarchy="partial", priors={"beta": "Normal(0.3, 0.05)"})
    back = inf.ModelSpec.from_json(spec.to_json())
    a, b = trace(spec, data3), trace(back, data3)
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name]["value"]), np.asarray(b[name]["value"]))


# ----------------------------------------------------------------------------- likelihood module


def test_student_t_default_has_four_degrees_of_freedom():
    d = Likelihood("student_t").dist(0.0, 1.0)
    assert isinstance(d, nd.StudentT)
    assert float(d.df) == 4.0 and float(d.loc) == 0.0 and float(d.scale) == 1.0
    assert Likelihood().name == "student_t"


@pytest.mark.parametrize("nu", [4.0, 2.5, 30.0])
def test_student_t_constant_normaliser_matches_numpyro(nu):
    # the density with its normaliser computed in Python equals numpyro's own and scipy's
    import jax
    import scipy.stats

    x = np.array([-3.0, -0.2, 0.0, 0.7, 5.0])
    loc, scale = np.array([0.1, -0.4, 0.0, 1.0, 2.0]), 0.3
    ours = np.asarray(Likelihood("student_t", nu=nu).dist(loc, scale).log_prob(x))
    # numpyro's lgamma runs in float32 (rounding ~1e-6 on values of order 1); ours in float64
    np.testing.assert_allclose(ours, np.asarray(nd.StudentT(nu, loc, scale).log_prob(x)), rtol=1e-6, atol=5e-6)
    np.testing.assert_allclose(ours, scipy.stats.t(nu, loc, scale).logpdf(x), rtol=1e-5)
    # the same inside jit and vmap, where numpyro may flatten the distribution
    traced = jax.jit(jax.vmap(lambda m: Likelihood("student_t", nu=nu).dist(m, scale).log_prob(x[0])))(loc)
    np.testing.assert_allclose(np.asarray(traced), scipy.stats.t(nu, loc, scale).logpdf(x[0]), rtol=1e-5)


@pytest.mark.parametrize(("name", "cls"), [("gaussian", nd.Normal), ("laplace", nd.Laplace)])
def test_other_likelihoods(name, cls):
    d = Likelihood(name).dist(np.zeros(3), 0.5)
    assert isinstance(d, cls)
    assert d.batch_shape == (3,)
    np.testing.assert_array_equal(np.asarray(d.scale), 0.5)


@pytest.mark.parametrize("name", ["student_t", "gaussian", "laplace"])
def test_standard_noise_shape_and_distribution(name):
    lik = Likelihood(name)
    draws = lik.standard_noise(1, (200, 250))
    assert draws.shape == (200, 250)
    # the noise of predictive draws must follow the likelihood's standard form (scipy's
    # t(4), norm, laplace): Kolmogorov-Smirnov distance; t(4) vs normal differ by ~0.03
    x = np.asarray(draws, dtype=np.float64).ravel()
    reference = {"student_t": stats.t(4), "gaussian": stats.norm(), "laplace": stats.laplace()}[name]
    assert stats.kstest(x, reference.cdf).statistic < 0.012


def test_unknown_likelihood_name():
    with pytest.raises(ValueError, match="gaussian"):
        Likelihood("cauchy")


def test_auto_shares_what_the_families_cannot_pin():
    # every family at one N (Gemstones' shapes): the N term and the constant E are shared, the
    # D term stays partially pooled; with N varying inside families everything is partial
    frame = make_frame(3, 4)
    frame["N"] = frame.groupby("family")["N"].transform("first")
    data = validate(frame)
    assert inf.flat_axes(data) == frozenset({"N"})
    pooling = inf.build_spec("chinchilla", data).pooling
    assert pooling == {"E": "complete", "A": "complete", "B": "partial", "alpha": "complete", "beta": "partial"}
    assert set(inf.build_spec("chinchilla", validate(make_frame(3, 4))).pooling.values()) == {"partial"}
    assert hier.axis_of(get_law("chinchilla"), "alpha") == "N" and hier.axis_of(get_law("chinchilla"), "E") is None
