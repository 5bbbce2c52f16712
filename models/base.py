"""The Law base class: what every scaling law in models/ declares.

A law is a small class with a registry name, parameter specifications (name,
support, meaning, units), default priors and a pure function ``log_loss`` written
in ``jax.numpy`` and evaluated in log space.

Reference-scale sampling
------------------------
An amplitude such as ``A`` in ``A / N**alpha`` is almost perfectly correlated
with its exponent when sampled directly, because the data sit far from ``N = 1``.
Sampling ``A_ref = A / N0**alpha`` (the size of the term at the data's geometric
mean ``N0``) removes most of that correlation: on Chinchilla-shaped data it cut
NUTS leapfrog steps per draw from ~300 to ~52 (DESIGN.md, speed notes). A
parameter with ``ref=("alpha", "N")`` is sampled as ``<name>_ref`` and mapped back
with ``log A = log A_ref + alpha * log N0``; ``ref=(None, "N")`` means a scale in
the units of ``N`` itself (``log N_c = log N_c_ref + log N0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .priors import Prior

Support = Literal["real", "positive", "unit"]
Axis = Literal["N", "D", "U", "C"]
#: one term of a reference-scale shift: (exponent name or None, axis or a constant log, coefficient)
RefTerm = tuple[str | None, Axis | float, float]


@dataclass(frozen=True)
class ParamSpec:
    """One law parameter in the paper's convention.

    Parameters
    ----------
    name : str
        Name as in the paper (``E``, ``A``, ``alpha``, ``R_D_star``).
    support : {"real", "positive", "unit"}
        Where the parameter lives; partial pooling works on log / logit scale for
        positive / unit parameters.
    meaning, units : str
        Human description, shown in summaries and reports.
    ref : tuple or None
        How the parameter is sampled at the data's reference scale (module
        docstring): ``(exponent_or_None, axis)`` for one term, or a tuple of
        ``(exponent_or_None, axis_or_constant_log, coefficient)`` terms, giving
        ``log theta = log theta_ref + sum(coef * exponent * log X0)``.
    per_family : bool
        Whether the hierarchy may give each family its own value.
    """

    name: str
    support: Support
    meaning: str
    units: str
    ref: tuple | None = None
    per_family: bool = True

    @property
    def sampled_name(self) -> str:
        return f"{self.name}_ref" if self.ref is not None else self.name

    @property
    def ref_terms(self) -> tuple[RefTerm, ...]:
        if self.ref is None:
            return ()
        if len(self.ref) == 2 and not isinstance(self.ref[0], tuple):
            return ((self.ref[0], self.ref[1], 1.0),)
        return tuple(self.ref)

    @property
    def ref_exponents(self) -> tuple[str, ...]:
        return tuple(e for e, _, _ in self.ref_terms if e is not None)


@dataclass(frozen=True)
class LawContext:
    """Loss-free facts about the data that priors and reference scales may use.

    Natural logs of the geometric means of N (parameters), D (tokens seen),
    U (unique tokens) and C = 6ND (FLOPs). Priors may depend on these, never on
    the observed loss.
    """

    log_N0: float
    log_D0: float
    log_U0: float
    log_C0: float

    def log_ref(self, axis: Axis | float) -> float:
        if not isinstance(axis, str):
            return float(axis)
        return {"N": self.log_N0, "D": self.log_D0, "U": self.log_U0, "C": self.log_C0}[axis]


class Law:
    """Base class of a scaling law.

    Subclasses set ``name``, ``description``, ``citation``, ``params`` and
    implement ``default_priors`` and ``log_loss``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    citation: ClassVar[str]
    params: ClassVar[tuple[ParamSpec, ...]]
    #: parameters that must be supplied through ``fixed=`` (never sampled)
    required_fixed: ClassVar[tuple[str, ...]] = ()
    #: what each required fixed parameter is, for the error when it is missing
    fixed_help: ClassVar[dict[str, str]] = {}
    #: whether the loss depends on unique tokens U (repeated data), not only on N and D
    uses_unique_tokens: ClassVar[bool] = False
    #: NUTS' target acceptance this law's posterior needs at complete pooling (``bs.fit``'s
    #: default; partial pooling raises it to ``fitting.PARTIAL_TARGET_ACCEPT``)
    target_accept: ClassVar[float] = 0.8

    def spec(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name or p.sampled_name == name:
                return p
        raise KeyError(name)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def sampled_names(self) -> tuple[str, ...]:
        return tuple(p.sampled_name for p in self.params)

    def default_priors(self, ctx: LawContext) -> dict[str, Prior]:
        """Priors keyed by sampled name (``A_ref`` for a reference-scale amplitude)."""
        raise NotImplementedError

    def log_loss(self, p: Mapping[str, Any], logN: Any, logD: Any, logU: Any) -> Any:
        """Natural log of the predicted loss (nats/token) in ``jax.numpy``.

        ``p`` maps paper-convention names to arrays that broadcast against
        ``logN``, ``logD`` and ``logU`` (natural logs of parameters, tokens seen
        and unique tokens).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Law {self.name}: {', '.join(self.param_names)}>"
