"""Chinchilla law: L(N, D) = E + A / N**alpha + B / D**beta.

Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models",
arXiv:2203.15556, Eq. 2 (their "Approach 3"); refit by Besiroglu et al. 2024,
arXiv:2404.10102.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from .base import Law, LawContext, ParamSpec
from .priors import Prior


class Chinchilla(Law):
    r"""Loss as irreducible entropy plus a model-size and a data term.

    .. math:: L(N, D) = E + A N^{-\alpha} + B D^{-\beta}

    with N parameters, D training tokens seen and L in nats/token
    (Hoffmann et al. 2022, Eq. 2). Computed as
    ``logsumexp(log E, log A - alpha log N, log B - beta log D)``.

    Default priors (weakly informative, fixed before looking at any loss):

    - ``E ~ LogNormal(log 1.7, 0.5)``: published E for web text with BPE
      tokenizers is 1.69 (Hoffmann 2022), 1.82 (Besiroglu 2024), 1.87
      (Muennighoff 2023); the prior's 90% range is 0.75-3.9 nats.
    - ``alpha, beta ~ LogNormal(log 0.3, 0.5)``: published exponents of this
      form are 0.28-0.37 (same papers); 90% range 0.13-0.68.
    - ``A_ref, B_ref ~ LogNormal(log 0.5, 1.0)``: each reducible term at the
      data's geometric-mean N and D. LM losses of 2-5 nats with E near 1.7 leave
      a reducible part of a tenth of a nat to a few nats; 90% range 0.1-2.6.
    """

    name = "chinchilla"
    description = "E + A/N^alpha + B/D^beta (Hoffmann et al. 2022)"
    citation = "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, arXiv:2203.15556"
    params = (
        ParamSpec("E", "positive", "irreducible loss", "nats/token"),
        ParamSpec("A", "positive", "model-size amplitude", "nats/token * params^alpha", ref=("alpha", "N")),
        ParamSpec("B", "positive", "data amplitude", "nats/token * tokens^beta", ref=("beta", "D")),
        ParamSpec("alpha", "positive", "model-size exponent", "1"),
        ParamSpec("beta", "positive", "data exponent", "1"),
    )

    def default_priors(self, ctx: LawContext) -> dict[str, Prior]:
        return {
            "E": Prior("LogNormal", loc=math.log(1.7), scale=0.5),
            "A_ref": Prior("LogNormal", loc=math.log(0.5), scale=1.0),
            "B_ref": Prior("LogNormal", loc=math.log(0.5), scale=1.0),
            "alpha": Prior("LogNormal", loc=math.log(0.3), scale=0.5),
            "beta": Prior("LogNormal", loc=math.log(0.3), scale=0.5),
        }

    def log_loss(self, p: Mapping[str, Any], logN: Any, logD: Any, logU: Any) -> Any:
        terms = jnp.stack(
            jnp.broadcast_arrays(
                jnp.log(p["E"]),
                jnp.log(p["A"]) - p["alpha"] * logN,
                jnp.log(p["B"]) - p["beta"] * logD,
            )
        )
        return jnp.logaddexp(jnp.logaddexp(terms[0], terms[1]), terms[2])
