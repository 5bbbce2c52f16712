"""bayescale: Bayesian scaling laws for language-model training runs.

Public API (DESIGN.md)::

    import bayescale as bs
    df = bs.datasets.load("chinchilla")
    fit = bs.fit(df, law="chinchilla")
    fit.summary(); fit.diagnose(); fit.predict(new_df, interval=0.9)
    fit.save("fit.nc"); bs.load_fit("fit.nc")

Importing bayescale does not import JAX or change its global state; the heavy
modules load on first use, so a bad table is rejected before JAX starts.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .data import DataError, DataWarning, ScalingData, validate  # noqa: E402  (no JAX)
from .models import Prior, PriorError, get_law, law_names  # noqa: E402  (no JAX)

_LAZY = {
    "fit": ("bayescale.fitting", "fit"),
    "Fit": ("bayescale.fitting", "Fit"),
    "load_fit": ("bayescale.fitting", "load_fit"),
    "Diagnostics": ("bayescale.fitting", "Diagnostics"),
    "DiagnosticsWarning": ("bayescale.fitting", "DiagnosticsWarning"),
    "DiagnosticsError": ("bayescale.fitting", "DiagnosticsError"),
    "FitFileError": ("bayescale.fitting", "FitFileError"),
    "datasets": ("bayescale.datasets", None),
    "backtest": ("bayescale.backtesting", "backtest"),
    "BacktestResult": ("bayescale.backtesting", "BacktestResult"),
    "baselines": ("bayescale.baselines", None),
    "evidence": ("bayescale.bridge", "evidence"),
    "bayes_factor": ("bayescale.bridge", "bayes_factor"),
    "Evidence": ("bayescale.bridge", "Evidence"),
    "BayesFactor": ("bayescale.bridge", "BayesFactor"),
    "plan": ("bayescale.decide.planner", "plan"),
    "frontier": ("bayescale.decide.planner", "frontier"),
    "budget_for": ("bayescale.decide.planner", "budget_for"),
    "Plan": ("bayescale.decide.results", "Plan"),
    "compare": ("bayescale.comparison", "compare"),
    "average": ("bayescale.comparison", "average"),
    "ModelAverage": ("bayescale.comparison", "ModelAverage"),
    "plots": ("bayescale.plots", None),
    "write_report": ("bayescale.report", "write_report"),
    "Report": ("bayescale.report", "Report"),
    "sweep": ("bayescale.sweeping", "sweep"),
    "SweepResult": ("bayescale.sweeping", "SweepResult"),
}

__all__ = [
    "BacktestResult",
    "BayesFactor",
    "DataError",
    "DataWarning",
    "Diagnostics",
    "DiagnosticsError",
    "DiagnosticsWarning",
    "Evidence",
    "Fit",
    "FitFileError",
    "Plan",
    "Prior",
    "Report",
    "PriorError",
    "ScalingData",
    "SweepResult",
    "ModelAverage",
    "__version__",
    "average",
    "backtest",
    "bayes_factor",
    "budget_for",
    "compare",
    "datasets",
    "evidence",
    "fit",
    "frontier",
    "get_law",
    "law_names",
    "load_fit",
    "plan",
    "plots",
    "sweep",
    "validate",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayescale' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
