"""Over-training law: L(C, M) = E + (a M^eta + b M^-eta) C^-eta (Gadre et al. 2024).

Gadre, Smyrnis, Shankar, Gururangan, Wortsman, Shao, Mercat, Fang, Li, Keh, Xin,
Nezhurina, Vasiljevic, Jitsev, Dimakis, Ilharco, Song, Kollar, Carmon, Dave,
Heckel, Muennighoff, Schmidt 2024, "Language models scale reliably with
over-training and on downstream tasks", arXiv:2403.08540, Eq. 4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from .base import Law, LawContext, ParamSpec
from .priors import Prior

LOG6 = math.log(6.0)


class Overtrain(Law):
    r"""Loss in compute C and token multiplier M (Gadre et al. 2024, Eq. 4).

    .. math:: L(C, M) = E + \left(a M^{\eta} + b M^{-\eta}\right) C^{-\eta},
              \quad C = 6 N D,\quad M = D / N

    N parameters, D training tokens seen, C in FLOPs, M in tokens per
    parameter, L in nats/token. Unique tokens U are ignored (the law assumes
    fresh data).

    Relation to the Chinchilla law. Gadre et al. obtain Eq. 4 from
    ``E + A N^-alpha + B D^-beta`` with a single exponent ``alpha = beta``.
    Since ``N = sqrt(C / (6 M))`` and ``D = sqrt(C M / 6)``,

    .. math::
        A N^{-\alpha} = A\, 6^{\alpha/2} M^{\alpha/2} C^{-\alpha/2},\qquad
        B D^{-\alpha} = B\, 6^{\alpha/2} M^{-\alpha/2} C^{-\alpha/2},

    so with ``eta = alpha / 2``: ``a = A 6^eta`` and ``b = B 6^eta``. Read the
    other way, this law *is* the Chinchilla law with
    ``alpha = beta = 2 eta``, ``A = a 6^-eta`` and ``B = b 6^-eta``
    (``tests/test_laws_more.py`` checks the identity).

    Reference scale. ``a`` and ``b`` are sampled as ``a_ref`` and ``b_ref``,
    chosen to equal the Chinchilla law's ``A_ref = A / N0^alpha`` and
    ``B_ref = B / D0^beta`` (the size of each reducible term at the data's
    geometric-mean N0 and D0):

    .. math:: \log a = \log a_{ref} + \eta \log 6 + 2\eta \log N_0,\qquad
              \log b = \log b_{ref} + \eta \log 6 + 2\eta \log D_0.

    Computed as ``logaddexp(log E, logaddexp(log a + eta log M, log b - eta log M) - eta log C)``.

    Default priors (weakly informative, fixed before looking at any loss):

    - ``E ~ LogNormal(log 1.7, 0.5)``, as for the Chinchilla law (published E
      for web text with BPE tokenizers: 1.69-1.87 nats).
    - ``eta ~ LogNormal(log 0.15, 0.5)``: ``2 eta`` is the Chinchilla
      exponent, published at 0.28-0.37 (Hoffmann 2022, Besiroglu 2024,
      Muennighoff 2023); 90% range of eta 0.066-0.34.
    - ``a_ref, b_ref ~ LogNormal(log 0.5, 1.0)``: Chinchilla's ``A_ref``
      and ``B_ref`` prior (a reducible term of a tenth of a nat to a few nats
      at the data's centre); 90% range 0.1-2.6.
    """

    name = "overtrain"
    description = "E + (a M^eta + b M^-eta) C^-eta, C = 6ND, M = D/N (Gadre et al. 2024)"
    citation = (
        "Gadre et al. 2024, Language models scale reliably with over-training and on downstream tasks, "
        "arXiv:2403.08540"
    )
    params = (
        ParamSpec("E", "positive", "irreducible loss", "nats/token"),
        ParamSpec(
            "a", "positive", "amplitude of the parameter-limited term", "nats/token * FLOPs^eta",
            ref=(("eta", LOG6, 1.0), ("eta", "N", 2.0)),
        ),
        ParamSpec(
            "b", "positive", "amplitude of the data-limited term", "nats/token * FLOPs^eta",
            ref=(("eta", LOG6, 1.0), ("eta", "D", 2.0)),
        ),
        ParamSpec("eta", "positive", "compute exponent (half the Chinchilla exponent)", "1"),
    )

    def default_priors(self, ctx: LawContext) -> dict[str, Prior]:
        return {
            "E": Prior("LogNormal", loc=math.log(1.7), scale=0.5),
            "a_ref": Prior("LogNormal", loc=math.log(0.5), scale=1.0),
            "b_ref": Prior("LogNormal", loc=math.log(0.5), scale=1.0),
            "eta": Prior("LogNormal", loc=math.log(0.15), scale=0.5),
        }

    def log_loss(self, p: Mapping[str, Any], logN: Any, logD: Any, logU: Any) -> Any:
        eta = p["eta"]
        logC = LOG6 + logN + logD
        logM = logD - logN
        reducible = jnp.logaddexp(jnp.log(p["a"]) + eta * logM, jnp.log(p["b"]) - eta * logM) - eta * logC
        return jnp.logaddexp(jnp.log(p["E"]), reducible)
