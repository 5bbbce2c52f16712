"""Declarative priors.

A prior is written as a string such as ``"Normal(0.35, 0.1)"`` or as
``Prior("Normal", loc=0.35, scale=0.1)``. Both forms round-trip through ``str()``,
so a saved fit stores its priors as text and rebuilds the same numpyro
distributions on load. Only literal numbers are accepted as arguments (parsed with
``ast``, never ``eval``).
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, field
from typing import Any

# Distributions a prior may name. A whitelist keeps saved files portable and the
# error for a typo short.
ALLOWED = (
    "Normal",
    "LogNormal",
    "HalfNormal",
    "HalfCauchy",
    "TruncatedNormal",
    "Exponential",
    "Gamma",
    "InverseGamma",
    "Uniform",
    "LogUniform",
    "Beta",
    "StudentT",
    "Cauchy",
    "Laplace",
)


class PriorError(ValueError):
    """A prior that cannot be parsed, names an unknown distribution or has bad arguments."""


@dataclass(frozen=True)
class Prior:
    """A named numpyro distribution with keyword parameters.

    Parameters
    ----------
    dist : str
        Name of a distribution in ``numpyro.distributions`` (one of ``ALLOWED``).
    **params : float
        Its parameters by keyword (``loc``, ``scale``, ``low``, ...). Positional
        arguments in the string form are bound to the distribution's signature.
    """

    dist: str
    params: tuple[tuple[str, float], ...] = field(default=())

    def __init__(self, dist: str, /, **params: float) -> None:
        if dist not in ALLOWED:
            raise PriorError(f"unknown prior distribution {dist!r}; use one of {', '.join(ALLOWED)}")
        bad = {k: v for k, v in params.items() if not isinstance(v, int | float) or isinstance(v, bool)}
        if bad:
            raise PriorError(f"prior {dist} parameters must be numbers, got {bad}")
        object.__setattr__(self, "dist", dist)
        # sorted, so equality does not depend on the order the keywords were given in
        object.__setattr__(self, "params", tuple(sorted((k, float(v)) for k, v in params.items())))

    @property
    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.dist}({inner})"

    @classmethod
    def parse(cls, spec: str | Prior) -> Prior:
        """Parse ``"LogNormal(-1.2, 0.5)"`` or ``"Normal(loc=0.35, scale=0.1)"``."""
        if isinstance(spec, Prior):
            return spec
        if not isinstance(spec, str):
            raise PriorError(f"a prior is a string like 'Normal(0.35, 0.1)' or a bs.Prior, got {spec!r}")
        try:
            node = ast.parse(spec.strip(), mode="eval").body
        except SyntaxError as exc:
            raise PriorError(f"cannot parse prior {spec!r}: {exc.msg}") from None
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            raise PriorError(f"cannot parse prior {spec!r}: expected Name(args)")
        name = node.func.id
        if name not in ALLOWED:
            raise PriorError(f"unknown prior distribution {name!r} in {spec!r}; use one of {', '.join(ALLOWED)}")
        names = [k.arg for k in node.keywords]
        if None in names:
            raise PriorError(f"prior {spec!r}: ** arguments are not allowed")
        if len(names) != len(set(names)):
            raise PriorError(f"prior {spec!r}: a keyword is given twice")
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError:
            raise PriorError(f"prior {spec!r}: arguments must be literal numbers") from None
        if args:
            names = _positional_names(name)
            if len(args) > len(names):
                raise PriorError(f"prior {spec!r}: too many arguments for {name}{tuple(names)}")
            for k, v in zip(names, args, strict=False):
                if k in kwargs:
                    raise PriorError(f"prior {spec!r}: {k} given twice")
                kwargs[k] = v
        return cls(name, **kwargs)

    def to_numpyro(self) -> Any:
        """Build the numpyro distribution (imports numpyro lazily)."""
        import numpyro.distributions as nd

        try:
            return getattr(nd, self.dist)(**self.kwargs)
        except (TypeError, ValueError, AttributeError) as exc:
            raise PriorError(f"prior {self}: {exc}") from None


def _positional_names(dist: str) -> list[str]:
    import numpyro.distributions as nd

    target = getattr(nd, dist)  # TruncatedNormal is a factory function, the rest are classes
    sig = inspect.signature(target if inspect.isfunction(target) else target.__init__)
    return [
        p.name
        for p in sig.parameters.values()
        if p.name not in ("self", "validate_args") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)
    ]
