"""Decisions from a posterior: risk measures, a cost model and the budget planner.

``plan`` allocates a compute budget (model size, tokens, epochs) under a risk
measure; ``frontier`` does it for several budgets with posterior bands;
``budget_for`` answers the inverse question. See ``planner.py``.
"""

from __future__ import annotations

from .cost import CostModel
from .planner import FRONTIER_COLUMNS, budget_for, frontier, plan
from .results import ALTERNATIVE_COLUMNS, CANDIDATE_COLUMNS, BudgetResult, Plan
from .risk import RiskMeasure, cara, cvar, mean, mean_sd, quantile, risk_measure

__all__ = [
    "ALTERNATIVE_COLUMNS",
    "CANDIDATE_COLUMNS",
    "FRONTIER_COLUMNS",
    "BudgetResult",
    "CostModel",
    "Plan",
    "RiskMeasure",
    "budget_for",
    "cara",
    "cvar",
    "frontier",
    "mean",
    "mean_sd",
    "plan",
    "quantile",
    "risk_measure",
]
