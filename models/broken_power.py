"""Broken neural scaling law in compute (Caballero et al. 2022).

Caballero, Gupta, Rish, Krueger 2022, "Broken Neural Scaling Laws",
arXiv:2210.14891 (ICLR 2023), Eq. 1, here with the compute C = 6ND as the
quantity x that is scaled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .base import Law, LawContext, ParamSpec
from .priors import Prior

LOG6 = math.log(6.0)


def _break_params(i: int) -> tuple[ParamSpec, ...]:
    return (
        ParamSpec(f"c_{i}", "real", f"change of the log-log slope at break {i}", "1"),
        ParamSpec(f"d_{i}", "positive", f"location of break {i}", "FLOPs", ref=(None, "C")),
        ParamSpec(f"f_{i}", "positive", f"sharpness of break {i} (smaller is sharper)", "1"),
    )


class BrokenPower(Law):
    r"""Smoothly broken power law in compute with one break (Caballero et al. 2022, Eq. 1).

    .. math:: y = a + b\, x^{-c_0} \prod_{i=1}^{n}
              \left(1 + (x / d_i)^{1/f_i}\right)^{-c_i f_i},\qquad x = C = 6 N D

    with ``n = 1`` here and ``n = 2`` in :class:`BrokenPower2`. y is the loss
    in nats/token, x the training compute in FLOPs. Far below a break the
    log-log slope is ``-c0``; far above break i it has fallen by ``c_i``
    more, and ``f_i`` sets how many e-folds of x the transition spans. The law
    depends on N and D only through their product and ignores the unique
    tokens U, so it cannot separate model-size from data limits: an
    iso-FLOP set of runs is one point of the curve plus scatter.

    Parameters: ``a`` (floor, nats/token), ``b`` (amplitude, sampled as
    ``b_ref = b C0^-c0``, the power-law term at the data's geometric-mean
    compute C0), ``c0`` (initial exponent), and per break ``c_i`` (change of
    slope, either sign: a negative value is a slow-down), ``d_i`` (location in
    FLOPs, sampled as ``d_i_ref = d_i / C0``), ``f_i`` (sharpness).

    Computed in log space:
    ``log y = logaddexp(log a, log b - c0 log x - sum_i c_i f_i softplus((log x - log d_i) / f_i))``.

    Default priors (weakly informative, fixed before looking at any loss):

    - ``a ~ LogNormal(log 1.7, 0.5)``: the floor plays the role of the
      Chinchilla law's E (published 1.69-1.87 nats for web text).
    - ``b_ref ~ LogNormal(log 0.7, 1.0)``: the reducible loss at the data's
      centre, a tenth of a nat to a few nats (90% range 0.13-3.6); a little
      above Chinchilla's per-term 0.5 because it carries both terms.
    - ``c0 ~ LogNormal(log 0.1, 0.7)``: along the compute-optimal frontier the
      Chinchilla law's reducible loss falls roughly as ``C^-0.15`` (half its
      exponents, 0.28-0.37, since N and D each grow as ~C^0.5); 90% range
      0.03-0.32.
    - ``c_i ~ Normal(0, 0.1)``: a change of slope of the same order as the
      slope itself, of either sign, centred on "no break".
    - ``d_i_ref ~ LogNormal(0, 2.5)``: the break within a few decades of the
      data's geometric-mean compute (90% range a factor 60 either side of
      C0). With two breaks the first is centred below and the second above C0,
      ``LogNormal(-2, 2.5)`` and ``LogNormal(2, 2.5)``, which breaks the
      labelling symmetry between them.
    - ``f_i ~ LogNormal(0, 1)``: transitions over a fraction of an e-fold to a
      few e-folds of compute (90% range 0.19-5.2).
    """

    name = "broken_power"
    description = "a + b C^-c0 (1 + (C/d1)^(1/f1))^(-c1 f1), C = 6ND (Caballero et al. 2022, one break)"
    citation = "Caballero et al. 2022, Broken Neural Scaling Laws, arXiv:2210.14891"
    n_breaks: ClassVar[int] = 1
    #: prior location of log d_i_ref, one per break
    _d_locs: ClassVar[tuple[float, ...]] = (0.0,)
    params = (
        ParamSpec("a", "positive", "loss floor", "nats/token"),
        ParamSpec("b", "positive", "power-law amplitude", "nats/token * FLOPs^c0", ref=("c0", "C")),
        ParamSpec("c0", "positive", "initial compute exponent", "1"),
        *_break_params(1),
    )

    def default_priors(self, ctx: LawContext) -> dict[str, Prior]:
        priors = {
            "a": Prior("LogNormal", loc=math.log(1.7), scale=0.5),
            "b_ref": Prior("LogNormal", loc=math.log(0.7), scale=1.0),
            "c0": Prior("LogNormal", loc=math.log(0.1), scale=0.7),
        }
        for i, loc in enumerate(self._d_locs, start=1):
            priors[f"c_{i}"] = Prior("Normal", loc=0.0, scale=0.1)
            priors[f"d_{i}_ref"] = Prior("LogNormal", loc=loc, scale=2.5)
            priors[f"f_{i}"] = Prior("LogNormal", loc=0.0, scale=1.0)
        return priors

    def log_loss(self, p: Mapping[str, Any], logN: Any, logD: Any, logU: Any) -> Any:
        logx = LOG6 + logN + logD
        log_power = jnp.log(p["b"]) - p["c0"] * logx
        for i in range(1, self.n_breaks + 1):
            c, f = p[f"c_{i}"], p[f"f_{i}"]
            log_power = log_power - c * f * jax.nn.softplus((logx - jnp.log(p[f"d_{i}"])) / f)
        return jnp.logaddexp(jnp.log(p["a"]), log_power)


class BrokenPower2(BrokenPower):
    r"""Broken power law in compute with two breaks (Caballero et al. 2022, Eq. 1, n = 2).

    .. math:: y = a + b\, x^{-c_0} \left(1 + (x/d_1)^{1/f_1}\right)^{-c_1 f_1}
              \left(1 + (x/d_2)^{1/f_2}\right)^{-c_2 f_2},\qquad x = 6 N D

    Priors as :class:`BrokenPower`, with ``d_1_ref ~ LogNormal(-2, 2.5)`` and
    ``d_2_ref ~ LogNormal(2, 2.5)`` (first break centred a factor e^2 below
    the data's geometric-mean compute, second above). The order is only a
    prior preference, not a constraint: the law is symmetric under swapping
    the two breaks, so a posterior can still be bimodal when the data do not
    place them.
    """

    name = "broken_power2"
    description = "a + b C^-c0 prod_{i=1,2} (1 + (C/d_i)^(1/f_i))^(-c_i f_i), C = 6ND (Caballero et al. 2022)"
    n_breaks = 2
    _d_locs = (-2.0, 2.0)
    params = (*BrokenPower.params, *_break_params(2))
