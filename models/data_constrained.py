"""Data-constrained law with repetition decay (Muennighoff et al. 2023).

Muennighoff, Rush, Barak, Le Scao, Piktus, Tazi, Pyysalo, Wolf, Raffel 2023,
"Scaling Data-Constrained Language Models", NeurIPS 2023, arXiv:2305.16264,
Eq. 5 and Appendix A; parameter values from huggingface/datablations,
utils/parametric_fit.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from .base import Law, LawContext, ParamSpec
from .chinchilla import Chinchilla
from .priors import Prior

#: Default prior on the repetition-decay constants R_D* and R_N* (epochs of
#: repetition after which a repeated token or excess parameter is worth 1/e of
#: a fresh one). Centred on an order of magnitude, 10, with a log-sd of 1.5: the
#: prior 90% range is 0.85-118, from "repetition is worthless after one pass" to
#: "a hundred passes are nearly as good as fresh data", and it covers every
#: published value (R_D* = 15.4, R_N* = 5.3, Muennighoff et al. 2023, Sec. 4).
R_STAR_PRIOR = Prior("LogNormal", loc=math.log(10.0), scale=1.5)


def effective(U: Any, R: Any, R_star: Any) -> Any:
    """``log(U + U R* (1 - exp(-R/R*)))`` for log U given as ``U`` (natural log).

    Written as ``log U + log1p(R* * -expm1(-R/R*))`` so it stays exact for
    R << R* (then it is ``log U + log1p(R)``) and for R >> R*.
    """
    return U + jnp.log1p(R_star * -jnp.expm1(-R / R_star))


class DataConstrained(Law):
    r"""Chinchilla's law with effective data D' and effective parameters N'.

    .. math::
        L = E + A / N'^{\alpha} + B / D'^{\beta}

        D' = U_D + U_D R_D^* (1 - e^{-R_D / R_D^*}),\quad U_D = \min(U, D),\quad
        R_D = \max(D / U_D - 1, 0)

        N' = U_N + U_N R_N^* (1 - e^{-R_N / R_N^*}),\quad U_N = \min(N, N_{opt}(U_D)),\quad
        R_N = \max(N / U_N - 1, 0)

        N_{opt}(U) = G (U G)^{\beta/\alpha},\quad G = (\alpha A / (\beta B))^{1/(\alpha+\beta)}

    N parameters, D tokens seen, U unique tokens, L nats/token (Muennighoff et
    al. 2023, Eq. 5). ``N_opt`` is Chinchilla's compute-optimal size for
    ``U_D`` tokens, from the same draw's base parameters.

    The ``min`` leaves a kink: the loss is continuous in every parameter but its
    gradient jumps where ``N = N_opt(U_D)`` for some run. NUTS needs only a
    continuous density; the kink costs some leapfrog accuracy near it, which the
    Metropolis correction absorbs (divergences are reported by ``diagnose()``).
    A smooth min would change the paper's law, so it is not used.

    Default priors: the Chinchilla law's for E, A_ref, B_ref, alpha, beta and
    ``R_D_star, R_N_star ~ LogNormal(log 10, 1.5)`` (see ``R_STAR_PRIOR``).
    """

    name = "data_constrained"
    uses_unique_tokens = True
    description = "E + A/N'^alpha + B/D'^beta with repetition decay R_D*, R_N* (Muennighoff et al. 2023)"
    citation = "Muennighoff et al. 2023, Scaling Data-Constrained Language Models, arXiv:2305.16264"
    # smaller leapfrog steps across the min kink: on datablations, seeds 0-3, 0.8 gave 1, 0, 2
    # and 1 divergent transitions, 0.9 none, at about the same wall time (README, Speed)
    target_accept = 0.9
    params = (
        *Chinchilla.params,
        ParamSpec("R_D_star", "positive", "repetitions at which repeated data keeps 1/e of its value", "epochs"),
        ParamSpec("R_N_star", "positive", "excess-parameter decay constant", "multiples of N_opt(U)"),
    )

    def default_priors(self, ctx: LawContext) -> dict[str, Prior]:
        return {**Chinchilla().default_priors(ctx), "R_D_star": R_STAR_PRIOR, "R_N_star": R_STAR_PRIOR}

    def log_loss(self, p: Mapping[str, Any], logN: Any, logD: Any, logU: Any) -> Any:
        alpha, beta = p["alpha"], p["beta"]
        logA, logB = jnp.log(p["A"]), jnp.log(p["B"])
        log_UD = jnp.minimum(logU, logD)
        R_D = jnp.maximum(jnp.exp(logD - log_UD) - 1.0, 0.0)
        log_Dp = effective(log_UD, R_D, p["R_D_star"])
        log_G = (jnp.log(alpha) + logA - jnp.log(beta) - logB) / (alpha + beta)
        log_Nopt = log_G + (beta / alpha) * (log_UD + log_G)
        log_UN = jnp.minimum(logN, log_Nopt)
        R_N = jnp.maximum(jnp.exp(logN - log_UN) - 1.0, 0.0)
        log_Np = effective(log_UN, R_N, p["R_N_star"])
        return jnp.logaddexp(jnp.logaddexp(jnp.log(p["E"]), logA - alpha * log_Np), logB - beta * log_Dp)


class DataConstrainedTied(DataConstrained):
    r"""The data-constrained law with the paper's tie ``alpha = beta``.

    Muennighoff et al. (2023) fit their base law with a single exponent; here
    ``beta`` is not a parameter and equals ``alpha``.
    """

    name = "data_constrained_tied"
    description = "data_constrained with alpha = beta, as Muennighoff et al. 2023 fit it"
    params = tuple(p for p in DataConstrained.params if p.name != "beta")
    params = tuple(
        ParamSpec(p.name, p.support, p.meaning, p.units, ref=("alpha", "D")) if p.name == "B" else p for p in params
    )

    def default_priors(self, ctx: LawContext) -> dict[str, Prior]:
        priors = super().default_priors(ctx)
        del priors["beta"]
        return priors

    def log_loss(self, p: Mapping[str, Any], logN: Any, logD: Any, logU: Any) -> Any:
        return super().log_loss({**p, "beta": p["alpha"]}, logN, logD, logU)
