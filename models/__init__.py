"""Scaling laws and the model pieces around them (installed as ``bayescale.models``).

The registry maps a law's name to ``module:Class``; modules are imported only
when a law is asked for, so ``bayescale.data`` can validate a table before JAX
is imported. A new law is one file here plus one line in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib

if __name__ != "bayescale.models":
    # Imported as a top-level `models` (e.g. from the repository root): that would
    # create a second copy of every module and class. Refuse.
    raise ImportError("models/ is part of bayescale: import bayescale.models, not models")

from .base import Law, LawContext, ParamSpec
from .priors import Prior, PriorError

_REGISTRY: dict[str, str] = {
    "chinchilla": "chinchilla:Chinchilla",
    "kaplan": "kaplan:Kaplan",
    "kaplan_e": "kaplan:KaplanFloor",
    "data_constrained": "data_constrained:DataConstrained",
    "data_constrained_tied": "data_constrained:DataConstrainedTied",
    "practical": "practical:Practical",
    "overtrain": "overtrain:Overtrain",
    "broken_power": "broken_power:BrokenPower",
    "broken_power2": "broken_power:BrokenPower2",
}


def law_names() -> list[str]:
    """Names of the registered laws."""
    return list(_REGISTRY)


def get_law(name: str | Law) -> Law:
    """Return an instance of the law registered under ``name``."""
    if isinstance(name, Law):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown law {name!r}; registered laws: {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()


__all__ = ["Law", "LawContext", "ParamSpec", "Prior", "PriorError", "get_law", "law_names"]
