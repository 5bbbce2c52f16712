"""Kaplan law: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (+ E).

Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361,
Eq. 1.5 and Table 2. The variant ``kaplan_e`` adds an irreducible floor E, which
Kaplan et al. omit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from .base import Law, LawContext, ParamSpec
from .priors import Prior


class Kaplan(Law):
    r"""Joint size-data law of Kaplan et al. (2020, Eq. 1.5).

    .. math:: L(N, D) = \left[(N_c/N)^{\alpha_N/\alpha_D} + D_c/D\right]^{\alpha_D}

    N in parameters, D in tokens, L in nats/token. ``N_c`` and ``D_c`` are
    sampled relative to the data's geometric means (``N_c_ref = N_c/N0``).
    Computed in log space:
    ``alpha_D * logaddexp((alpha_N/alpha_D)(log N_c - log N), log D_c - log D)``.

    Default priors, centred on Kaplan et al.'s Table 2 (alpha_N = 0.076,
    alpha_D = 0.103, N_c = 6.4e13, D_c = 1.8e13) and wide because their
    tokenizer, data and parameter count (non-embedding) differ from most users':
    ``alpha_N ~ LogNormal(log 0.076, 0.7)``, ``alpha_D ~ LogNormal(log 0.103, 0.7)``,
    ``N_c_ref ~ LogNormal(log(6.4e13) - log N0, 3)``,
    ``D_c_ref ~ LogNormal(log(1.8e13) - log D0, 3)``.
    """

    name = "kaplan"
    description = "[(N_c/N)^(aN/aD) + D_c/D]^aD (Kaplan et al. 2020), no floor"
    citation = "Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv:2001.08361"
    params = (
        ParamSpec("N_c", "positive", "critical model size", "params", ref=(None, "N")),
        ParamSpec("D_c", "positive", "critical data size", "tokens", ref=(None, "D")),
        ParamSpec("alpha_N", "positive", "model-size exponent", "1"),
        ParamSpec("alpha_D", "positive", "data exponent", "1"),
    )

    def default_priors(self, ctx: LawContext) -> dict[str, Prior]:
        return {
            "N_c_ref": Prior("LogNormal", loc=math.log(6.4e13) - ctx.log_N0, scale=3.0),
            "D_c_ref": Prior("LogNormal", loc=math.log(1.8e13) - ctx.log_D0, scale=3.0),
            "alpha_N": Prior("LogNormal", loc=math.log(0.076), scale=0.7),
            "alpha_D": Prior("LogNormal", loc=math.log(0.103), scale=0.7),
        }

    def _log_reducible(self, p: Mapping[str, Any], logN: Any, logD: Any) -> Any:
        ratio = p["alpha_N"] / p["alpha_D"]
        inner = jnp.logaddexp(ratio * (jnp.log(p["N_c"]) - logN), jnp.log(p["D_c"]) - logD)
        return p["alpha_D"] * inner

    def log_loss(self, p: Mapping[str, Any], logN: Any, logD: Any, logU: Any) -> Any:
        return self._log_reducible(p, logN, logD)


class KaplanFloor(Kaplan):
    r"""Kaplan et al. (2020) with an irreducible floor.

    .. math:: L(N, D) = E + \left[(N_c/N)^{\alpha_N/\alpha_D} + D_c/D\right]^{\alpha_D}

    ``E ~ LogNormal(log 1.7, 0.5)`` as for the Chinchilla law.
    """

    name = "kaplan_e"
    description = "E + [(N_c/N)^(aN/aD) + D_c/D]^aD (Kaplan et al. 2020 with a floor)"
    params = (ParamSpec("E", "positive", "irreducible loss", "nats/token"), *Kaplan.params)

    def default_priors(self, ctx: LawContext) -> dict[str, Prior]:
        return {"E": Prior("LogNormal", loc=math.log(1.7), scale=0.5), **super().default_priors(ctx)}

    def log_loss(self, p: Mapping[str, Any], logN: Any, logD: Any, logU: Any) -> Any:
        return jnp.logaddexp(jnp.log(p["E"]), self._log_reducible(p, logN, logD))
