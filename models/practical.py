"""Practical law: a bounded loss between a floor E and an uninformed baseline L0.

arXiv:2605.09189, written in this package's notation: the paper's T (tokens
seen) is our D and its D (unique tokens) is our U. The form implemented is the
one in DESIGN.md ("Laws"); the paper itself was not available when this module
was written, so any detail it adds beyond that formula (fitting procedure,
published parameter values, a different treatment of U > D) is not reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .base import Law, LawContext, ParamSpec
from .priors import Prior


class Practical(Law):
    r"""Loss that saturates at the uninformed baseline for tiny models or data.

    .. math::
        L = E + (L_0 - E)\,\frac{h}{1 + h},\qquad
        h = \frac{a}{N^{\alpha}} + \frac{b}{D^{\beta}} + c\,\frac{N^{\gamma}}{U^{\delta}}

    N parameters, D tokens seen, U unique tokens (``U_eff = min(U, D)``, passed
    in as ``logU`` by the package), L in nats/token. As ``h -> 0`` (large N, D
    and U) the loss tends to the floor E; as ``h -> inf`` (a tiny model, or a
    model far too large for its unique data) it tends to L0, the loss of a
    model that has learnt nothing. For small h it is Chinchilla-like:
    ``L ~ E + (L0 - E)(a N^-alpha + b D^-beta + ...)``. The third term is an
    over-fitting penalty that grows with model size and shrinks with unique
    data.

    ``L0`` is the uninformed baseline, ``ln V`` nats/token for a vocabulary
    of V tokens (the cross-entropy of a uniform prediction): it is *supplied
    by the user* through ``fixed={"L0": math.log(V)}`` and never sampled; a fit
    without it is refused (``required_fixed``).

    Computed in log space:
    ``log h = logsumexp(log a - alpha log N, log b - beta log D, log c + gamma log N - delta log U)``,
    ``log(h / (1 + h)) = -softplus(-log h)``,
    ``log L = logaddexp(log E, log(L0 - E) - softplus(-log h))``.
    The formula needs ``E < L0``; a draw with ``E >= L0`` (possible only
    under a prior that puts E above ln V, about 10.8 nats for a 50k
    vocabulary) has no meaning, and the gap ``L0 - E`` is clamped to the
    smallest positive float so that the loss stays finite (it is then E).

    Amplitudes are sampled at the data's reference scale (N0, D0, U0 the
    geometric means): ``a_ref = a N0^-alpha``, ``b_ref = b D0^-beta``,
    ``c_ref = c N0^gamma U0^-delta``, each the size of its term in h at the
    data's centre.

    Default priors (weakly informative, fixed before looking at any loss):

    - ``E ~ LogNormal(log 1.7, 0.5)``, as for the Chinchilla law.
    - ``a_ref, b_ref ~ LogNormal(log 0.05, 1.5)``: with ``L0 - E`` about 9
      nats (ln 50257 = 10.8 minus 1.7), a term of 0.05-0.1 in h adds half a
      nat of reducible loss, the size of Chinchilla's terms at the centre of
      typical ladders; 90% range 0.004-0.6.
    - ``c_ref ~ LogNormal(log 0.01, 2.0)``: the over-fitting term is usually
      small where data are fresh; wide, 90% range 0.0004-0.27.
    - ``alpha, beta ~ LogNormal(log 0.3, 0.5)``: as the Chinchilla law's
      exponents (0.28-0.37 published).
    - ``gamma, delta ~ LogNormal(log 0.3, 0.7)``: same centre, wider, since
      no published value constrains them here.
    """

    name = "practical"
    description = "E + (L0 - E) h/(1+h), h = a/N^alpha + b/D^beta + c N^gamma/U^delta (arXiv:2605.09189)"
    citation = "arXiv:2605.09189 (practical scaling law with an uninformed baseline L0 = ln V)"
    required_fixed = ("L0",)
    #: what each required fixed value means, for error messages
    fixed_help: ClassVar[dict[str, str]] = {
        "L0": "the uninformed-baseline loss ln V in nats/token for a vocabulary of V tokens, "
        "e.g. fixed={'L0': math.log(50257)} for the GPT-2 tokenizer",
    }
    params = (
        ParamSpec("L0", "positive", "uninformed baseline loss, ln V (user-supplied, fixed)", "nats/token",
                  per_family=False),
        ParamSpec("E", "positive", "irreducible loss", "nats/token"),
        ParamSpec("a", "positive", "model-size amplitude in h", "params^alpha", ref=("alpha", "N")),
        ParamSpec("b", "positive", "data amplitude in h", "tokens^beta", ref=("beta", "D")),
        ParamSpec(
            "c", "positive", "over-fitting amplitude in h", "tokens^delta / params^gamma",
            ref=(("gamma", "N", -1.0), ("delta", "U", 1.0)),
        ),
        ParamSpec("alpha", "positive", "model-size exponent", "1"),
        ParamSpec("beta", "positive", "data exponent", "1"),
        ParamSpec("gamma", "positive", "over-fitting exponent in model size", "1"),
        ParamSpec("delta", "positive", "over-fitting exponent in unique tokens", "1"),
    )

    def default_priors(self, ctx: LawContext) -> dict[str, Prior]:
        return {
            "E": Prior("LogNormal", loc=math.log(1.7), scale=0.5),
            "a_ref": Prior("LogNormal", loc=math.log(0.05), scale=1.5),
            "b_ref": Prior("LogNormal", loc=math.log(0.05), scale=1.5),
            "c_ref": Prior("LogNormal", loc=math.log(0.01), scale=2.0),
            "alpha": Prior("LogNormal", loc=math.log(0.3), scale=0.5),
            "beta": Prior("LogNormal", loc=math.log(0.3), scale=0.5),
            "gamma": Prior("LogNormal", loc=math.log(0.3), scale=0.7),
            "delta": Prior("LogNormal", loc=math.log(0.3), scale=0.7),
        }

    def log_loss(self, p: Mapping[str, Any], logN: Any, logD: Any, logU: Any) -> Any:
        log_h = jnp.logaddexp(
            jnp.logaddexp(jnp.log(p["a"]) - p["alpha"] * logN, jnp.log(p["b"]) - p["beta"] * logD),
            jnp.log(p["c"]) + p["gamma"] * logN - p["delta"] * logU,
        )
        gap = jnp.asarray(p["L0"]) - p["E"]
        gap = jnp.maximum(gap, jnp.finfo(jnp.result_type(gap)).tiny)
        return jnp.logaddexp(jnp.log(p["E"]), jnp.log(gap) - jax.nn.softplus(-log_h))
