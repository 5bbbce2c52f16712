"""Fast tier: pure law functions, the law registry and declarative priors.

Reference values are computed here in float64 numpy from the papers' formulas (power
form, not the log-space form the laws use), so a slip in either shows up.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

from bayescale.models import Law, LawContext, Prior, PriorError, get_law, law_names
from bayescale.models.priors import ALLOWED

try:  # older JAX
    from jax.experimental import enable_x64 as _enable_x64

    def x64():
        return _enable_x64()

except ImportError:  # JAX >= 0.8: jax.enable_x64 is the scoped context manager

    def x64():
        return jax.enable_x64(True)


# Epoch AI's refit of Chinchilla (Besiroglu et al. 2024, arXiv:2404.10102).
EPOCH = {"E": 1.8169, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
# Kaplan et al. 2020, Table 2.
KAPLAN = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}

CTX = LawContext(log_N0=math.log(1e9), log_D0=math.log(2e10), log_U0=math.log(2e10), log_C0=math.log(1.2e20))


def chinchilla_np(N, D, E, A, B, alpha, beta):
    return E + A / N**alpha + B / D**beta


def kaplan_np(N, D, N_c, D_c, alpha_N, alpha_D, E=0.0):
    return E + ((N_c / N) ** (alpha_N / alpha_D) + D_c / D) ** alpha_D


def law_loss(name, params, N, D, U=None):
    """The law's loss (not log loss) in float64."""
    law = get_law(name)
    N, D = np.asarray(N, dtype=np.float64), np.asarray(D, dtype=np.float64)
    U = D if U is None else np.asarray(U, dtype=np.float64)
    with x64():
        p = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}
        out = law.log_loss(p, jnp.log(N), jnp.log(D), jnp.log(U))
        assert out.dtype == jnp.float64
        return np.exp(np.asarray(out))


# ----------------------------------------------------------------------------- chinchilla


def test_chinchilla_epoch_fit_at_chinchilla_70b():
    # 1.8169 + 482.01 / 7e10**0.3478 + 2085.43 / 1.4e12**0.3658, by hand: 0.0815 + 0.0752
    expected = 1.8169 + 482.01 / 7e10**0.3478 + 2085.43 / 1.4e12**0.3658
    assert expected == pytest.approx(1.97358186, abs=1e-8)
    assert law_loss("chinchilla", EPOCH, 7e10, 1.4e12) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    ("N", "D"), [(7e7, 1.4e9), (4e8, 8e9), (1e10, 2e11), (2.8e11, 5.6e12), (1e3, 1e15)]
)
def test_chinchilla_matches_power_form(N, D):
    expected = chinchilla_np(N, D, **EPOCH)
    assert law_loss("chinchilla", EPOCH, N, D) == pytest.approx(expected, rel=1e-10)


def test_chinchilla_vectorised_over_rows():
    N = np.array([7e7, 4e8, 1e10])
    D = np.array([1.4e9, 8e9, 2e11])
    np.testing.assert_allclose(law_loss("chinchilla", EPOCH, N, D), chinchilla_np(N, D, **EPOCH), rtol=1e-10)


def test_chinchilla_ignores_unique_tokens():
    a = law_loss("chinchilla", EPOCH, 1e9, 2e10, U=2e10)
    b = law_loss("chinchilla", EPOCH, 1e9, 2e10, U=1e8)
    assert a == b


# ----------------------------------------------------------------------------- kaplan


def test_kaplan_table2_at_1b_params_20b_tokens():
    # ((6.4e13/1e9)**(0.076/0.103) + 1.8e13/2e10)**0.103
    expected = ((6.4e13 / 1e9) ** (0.076 / 0.103) + 1.8e13 / 2e10) ** 0.103
    assert expected == pytest.approx(2.37388245, abs=1e-8)
    assert law_loss("kaplan", KAPLAN, 1e9, 2e10) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("N", "D"), [(1e6, 1e8), (1e9, 2e10), (1e12, 1e13), (1e3, 1e15)])
def test_kaplan_matches_power_form(N, D):
    assert law_loss("kaplan", KAPLAN, N, D) == pytest.approx(kaplan_np(N, D, **KAPLAN), rel=1e-10)


@pytest.mark.parametrize(("N", "D"), [(1e6, 1e8), (1e9, 2e10), (1e12, 1e13)])
def test_kaplan_e_adds_the_floor(N, D):
    params = {"E": 1.5, **KAPLAN}
    expected = kaplan_np(N, D, E=1.5, **KAPLAN)
    assert law_loss("kaplan_e", params, N, D) == pytest.approx(expected, rel=1e-10)
    assert law_loss("kaplan_e", params, N, D) - law_loss("kaplan", KAPLAN, N, D) == pytest.approx(1.5, rel=1e-9)


def test_kaplan_limits_are_the_single_variable_laws():
    # D -> inf: L = (N_c/N)**alpha_N (Kaplan Eq. 1.1); N -> inf: L = (D_c/D)**alpha_D (Eq. 1.2)
    big = 1e200
    assert law_loss("kaplan", KAPLAN, 1e9, big) == pytest.approx((6.4e13 / 1e9) ** 0.076, rel=1e-9)
    assert law_loss("kaplan", KAPLAN, big, 2e10) == pytest.approx((1.8e13 / 2e10) ** 0.103, rel=1e-9)


# ----------------------------------------------------------------------------- log-space stability


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chinchilla_tends_to_log_E_for_huge_N_and_D(dtype):
    law = get_law("chinchilla")
    logN = np.log(np.array([1e30, 1e100, 1e300])).astype(dtype)
    with x64():
        p = {k: jnp.asarray(v, dtype=dtype) for k, v in EPOCH.items()}
        out = np.asarray(law.log_loss(p, jnp.asarray(logN), jnp.asarray(logN), jnp.asarray(logN)))
    assert np.all(np.isfinite(out))
    N = np.array([1e30, 1e100, 1e300])
    np.testing.assert_allclose(out, np.log(chinchilla_np(N, N, **EPOCH)), rtol=10 * np.finfo(dtype).eps)
    np.testing.assert_allclose(out, math.log(1.8169), rtol=1e-7)


EXTREME_CASES = {
    "chinchilla": (EPOCH, lambda N, D: chinchilla_np(N, D, **EPOCH)),
    "kaplan": (KAPLAN, lambda N, D: kaplan_np(N, D, **KAPLAN)),
    "kaplan_e": ({"E": 1.8, **KAPLAN}, lambda N, D: kaplan_np(N, D, E=1.8, **KAPLAN)),
}


@pytest.mark.parametrize("name", sorted(EXTREME_CASES))
@pytest.mark.parametrize(("N", "D"), [(1e15, 1e15), (1e3, 1e3), (1e3, 1e15), (1e15, 1e3)])
def test_laws_finite_at_extremes_in_float32(name, N, D):
    params, by_hand = EXTREME_CASES[name]
    law = get_law(name)
    p = {k: jnp.float32(v) for k, v in params.items()}
    logN, logD = jnp.log(jnp.float32(N)), jnp.log(jnp.float32(D))
    out = law.log_loss(p, logN, logD, logD)
    assert out.dtype == jnp.float32
    assert np.isfinite(float(out))
    assert float(out) == pytest.approx(math.log(by_hand(N, D)), rel=1e-5)


def test_chinchilla_no_overflow_where_the_power_form_overflows_float32():
    # alpha = beta = 15: N**-alpha at N = 1e-3 is 1e45 and N**alpha at N = 1e3 is 1e45, both
    # beyond float32's 3.4e38, so the power form overflows; the log-space form must not
    law = get_law("chinchilla")
    p = {"E": jnp.float32(1.8), "A": jnp.float32(482.0), "B": jnp.float32(2085.0),
         "alpha": jnp.float32(15.0), "beta": jnp.float32(15.0)}
    small = law.log_loss(p, jnp.log(jnp.float32(1e-3)), jnp.log(jnp.float32(1e15)), jnp.float32(0.0))
    # reducible term 482 * 1e45 dominates: log L = log 482 + 45 log 10 (+ log1p of a tiny rest)
    assert float(small) == pytest.approx(math.log(482.0) + 45 * math.log(10.0), rel=1e-6)
    large = law.log_loss(p, jnp.log(jnp.float32(1e3)), jnp.log(jnp.float32(1e3)), jnp.float32(0.0))
    assert float(large) == pytest.approx(math.log(1.8), rel=1e-6)


# ----------------------------------------------------------------------------- registry


def test_registry_names():
    names = law_names()
    assert {"chinchilla", "kaplan", "kaplan_e"} <= set(names)
    assert len(names) == len(set(names))


def test_get_law_unknown_lists_names():
    with pytest.raises(ValueError, match="nope") as info:
        get_law("nope")
    for name in ("chinchilla", "kaplan", "kaplan_e"):
        assert name in str(info.value)


def test_get_law_returns_instance_and_passes_instances_through():
    law = get_law("chinchilla")
    assert isinstance(law, Law)
    assert law.name == "chinchilla"
    assert get_law(law) is law


@pytest.mark.parametrize("name", law_names())
def test_law_is_registered_under_its_own_name(name):
    assert get_law(name).name == name


@pytest.mark.parametrize("name", law_names())
def test_default_priors_cover_exactly_the_sampled_names(name):
    law = get_law(name)
    priors = law.default_priors(CTX)
    # parameters the user must fix (e.g. practical's L0) have no prior
    assert set(priors) == {p.sampled_name for p in law.params if p.name not in law.required_fixed}
    assert all(isinstance(v, Prior) for v in priors.values())


@pytest.mark.parametrize("name", law_names())
def test_default_priors_respect_supports(name):
    law = get_law(name)
    for s, prior in law.default_priors(CTX).items():
        draws = np.asarray(prior.to_numpyro().sample(jax.random.PRNGKey(1), (500,)))
        assert np.all(np.isfinite(draws)), s
        if law.spec(s).support == "positive":
            assert np.all(draws > 0), s


@pytest.mark.parametrize("name", law_names())
def test_law_is_documented(name):
    law = get_law(name)
    cls = type(law)
    assert cls.__doc__ and len(cls.__doc__.strip()) > 40
    assert law.description.strip() and law.citation.strip()
    assert "arXiv" in law.citation or "20" in law.citation
    for p in law.params:
        assert p.meaning.strip() and p.units.strip(), p.name
        assert p.support in ("real", "positive", "unit"), p.name


@pytest.mark.parametrize("name", law_names())
def test_param_names_unique_and_refs_valid(name):
    law = get_law(name)
    assert len(set(law.param_names)) == len(law.param_names)
    assert len(set(law.sampled_names)) == len(law.sampled_names)
    for p in law.params:
        if p.ref is not None:
            assert p.ref_terms, p.name
            for exponent, axis, coef in p.ref_terms:
                assert exponent is None or exponent in law.param_names, p.name
                assert axis in ("N", "D", "U", "C") or isinstance(axis, float), p.name
                assert isinstance(coef, int | float), p.name
            assert p.sampled_name == f"{p.name}_ref"
        else:
            assert p.sampled_name == p.name


def test_param_specs_in_paper_convention():
    assert get_law("chinchilla").param_names == ("E", "A", "B", "alpha", "beta")
    assert set(get_law("kaplan").param_names) == {"N_c", "D_c", "alpha_N", "alpha_D"}
    assert set(get_law("kaplan_e").param_names) == {"E", "N_c", "D_c", "alpha_N", "alpha_D"}
    assert get_law("chinchilla").spec("A").ref == ("alpha", "N")
    assert get_law("chinchilla").spec("B_ref").name == "B"
    with pytest.raises(KeyError):
        get_law("chinchilla").spec("gamma")


def test_kaplan_prior_centred_on_table2_in_paper_units():
    priors = get_law("kaplan").default_priors(CTX)
    # N_c = N_c_ref * N0: the prior median of N_c is Kaplan's 6.4e13 whatever N0 is
    assert math.exp(priors["N_c_ref"].kwargs["loc"] + CTX.log_N0) == pytest.approx(6.4e13, rel=1e-9)
    assert math.exp(priors["D_c_ref"].kwargs["loc"] + CTX.log_D0) == pytest.approx(1.8e13, rel=1e-9)
    assert math.exp(priors["alpha_N"].kwargs["loc"]) == pytest.approx(0.076, rel=1e-9)


def test_chinchilla_prior_locations_are_exact_logs():
    priors = get_law("chinchilla").default_priors(CTX)
    assert priors["E"].kwargs["loc"] == pytest.approx(math.log(1.7), rel=1e-12)
    assert priors["A_ref"].kwargs["loc"] == pytest.approx(math.log(0.5), rel=1e-12)
    assert priors["alpha"].kwargs["loc"] == pytest.approx(math.log(0.3), rel=1e-12)


# ----------------------------------------------------------------------------- priors


def test_prior_parse_positional_equals_keyword_object():
    assert Prior.parse("Normal(0.35, 0.1)") == Prior("Normal", loc=0.35, scale=0.1)
    assert Prior.parse("Normal(loc=0.35, scale=0.1)") == Prior("Normal", loc=0.35, scale=0.1)
    assert Prior.parse("Normal(0.35, 0.1)") != Prior("Normal", loc=0.35, scale=0.2)


def test_prior_equality_ignores_keyword_order():
    assert Prior("Normal", scale=0.1, loc=0.35) == Prior("Normal", loc=0.35, scale=0.1)
    assert Prior.parse("Normal(0.35, scale=0.1)") == Prior.parse("Normal(0.35, 0.1)")


def test_prior_parse_negative_and_integer_literals():
    p = Prior.parse("LogNormal(-1.2, 1)")
    assert p.kwargs == {"loc": -1.2, "scale": 1.0}
    assert all(isinstance(v, float) for v in p.kwargs.values())


def test_prior_parse_passes_prior_objects_through():
    p = Prior("HalfNormal", scale=0.3)
    assert Prior.parse(p) is p


def test_prior_str_form():
    assert str(Prior("Normal", loc=0.35, scale=0.1)) == "Normal(loc=0.35, scale=0.1)"


@pytest.mark.parametrize(
    "prior",
    [
        Prior("Normal", loc=0.35, scale=0.1),
        Prior("LogNormal", loc=math.log(1.7), scale=0.5),
        Prior("HalfNormal", scale=0.3),
        Prior("Uniform", low=-2.5e-7, high=1e12),
        Prior("StudentT", df=3, loc=0, scale=1),
        Prior("TruncatedNormal", loc=0.35, scale=0.1, low=0.0),
    ],
    ids=str,
)
def test_prior_str_round_trip(prior):
    assert Prior.parse(str(prior)) == prior


def test_prior_builds_numpyro_distribution():
    d = Prior.parse("Normal(0.35, 0.1)").to_numpyro()
    assert isinstance(d, nd.Normal)
    assert float(d.loc) == pytest.approx(0.35)
    assert float(d.scale) == pytest.approx(0.1)
    g = Prior.parse("Gamma(2, 3)").to_numpyro()
    assert float(g.concentration) == 2.0 and float(g.rate) == 3.0


def test_prior_error_is_value_error():
    assert issubclass(PriorError, ValueError)


@pytest.mark.parametrize(
    "spec",
    [
        "normal(0, 1)",  # names are case-sensitive
        "Foo(1)",
        "Dirichlet(1)",  # a numpyro distribution, not whitelisted
        "Normal(__import__('os'), 1)",
        "Normal(x, 1)",
        "Normal(nan, 1)",
        "Normal(1 + x, 1)",
        "Normal(*a)",
        "Normal(1, 2, 3)",
        "HalfNormal(1, 2)",
        "Normal(1, loc=2)",
        "Normal('a', 1)",
        "Normal(True, 1)",
        "Normal([0.3], 1)",
        "Normal(0.35, 0.1) + 1",
        "Normal",
        "np.random.Normal(0, 1)",
        "Normal(0.35, 0.1",
        "",
    ],
)
def test_prior_parse_rejects(spec):
    with pytest.raises(PriorError):
        Prior.parse(spec)


@pytest.mark.parametrize("spec", [3.5, None, {"dist": "Normal"}])
def test_prior_parse_rejects_non_strings(spec):
    with pytest.raises(PriorError, match="Normal"):
        Prior.parse(spec)


def test_prior_unknown_distribution_lists_allowed():
    with pytest.raises(PriorError) as info:
        Prior("Foo")
    assert "Normal" in str(info.value) and "LogNormal" in str(info.value)


@pytest.mark.parametrize("spec", ["Normal(0, -1)", "Normal(foo=1)", "HalfNormal(scale=0)"])
def test_prior_bad_parameters_raise_on_build(spec):
    with pytest.raises(PriorError):
        Prior.parse(spec).to_numpyro()


# One positional example per whitelisted distribution; keys must match ALLOWED so a new entry
# gets a test.
EXAMPLES = {
    "Normal": "Normal(0, 1)",
    "LogNormal": "LogNormal(0, 1)",
    "HalfNormal": "HalfNormal(1)",
    "HalfCauchy": "HalfCauchy(1)",
    "TruncatedNormal": "TruncatedNormal(0.35, 0.1, low=0.0)",
    "Exponential": "Exponential(2)",
    "Gamma": "Gamma(2, 1)",
    "InverseGamma": "InverseGamma(3, 1)",
    "Uniform": "Uniform(0, 1)",
    "LogUniform": "LogUniform(0.1, 1)",
    "Beta": "Beta(2, 2)",
    "StudentT": "StudentT(3, 0, 1)",
    "Cauchy": "Cauchy(0, 1)",
    "Laplace": "Laplace(0, 1)",
}


def test_examples_cover_the_whitelist():
    assert set(EXAMPLES) == set(ALLOWED)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in ALLOWED
    ],
)
def test_every_whitelisted_prior_parses_and_samples(name):
    prior = Prior.parse(EXAMPLES[name])
    assert prior.dist == name
    assert Prior.parse(str(prior)) == prior
    dist = prior.to_numpyro()
    assert isinstance(dist, nd.Distribution)
    assert dist.batch_shape == () and dist.event_shape == ()


def test_prior_parse_rejects_double_star():
    with pytest.raises(PriorError):
        Prior.parse("Normal(**{'loc': 1.0})")


def test_prior_parse_rejects_repeated_keyword():
    with pytest.raises(PriorError):
        Prior.parse("Normal(loc=1, loc=2)")
