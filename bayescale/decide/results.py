"""Results of planning: ``Plan`` (one allocation of a budget) and ``BudgetResult``.

Both are frozen dataclasses validated in ``__post_init__``; their tables are
DataFrames with fixed columns (``ALTERNATIVE_COLUMNS``, ``CANDIDATE_COLUMNS``).
Units: N parameters, D tokens seen, U unique tokens, budgets in FLOPs, loss in
nats/token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .cost import CostModel

#: quantiles of loss reported for a plan and its alternatives
LOSS_QUANTILES = (0.05, 0.5, 0.95)

#: columns of ``Plan.alternatives`` (index: the alternative's name; first row "plan")
ALTERNATIVE_COLUMNS = (
    "N", "D", "epochs", "tokens_per_param", "loss_mean", "loss_q05", "loss_q50", "loss_q95",
    "risk_value", "p_plan_beats", "expected_regret", "mean_gain", "oracle_regret",
)

#: columns of ``Plan.candidates`` (the searched grid, one row per model size)
CANDIDATE_COLUMNS = ("N", "D", "epochs", "tokens_per_param", "loss_mean", "risk_value")


def _positive(name: str, value: Any) -> None:
    if not (isinstance(value, int | float | np.floating) and math.isfinite(value) and value > 0):
        raise ValueError(f"Plan.{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True, eq=False)
class Plan:
    """An allocation of a compute budget chosen under a risk measure.

    Attributes
    ----------
    N, D : float
        Parameters and training tokens of the chosen run.
    epochs : float
        Passes over the unique data, ``D / min(U, D)`` (1 without a cap).
    unique_tokens : float or None
        The cap U on unique tokens given to the planner (None: fresh data).
    budget : float
        The compute budget in FLOPs (training plus serving under ``cost``).
    risk : str
        The risk measure's name (``"cvar:0.9"``); the plan minimises it.
    risk_value : float
        Its value for the chosen run, nats/token.
    loss_mean : float
        Expected loss of the chosen run, nats/token.
    loss_quantiles : mapping
        ``{0.05: ..., 0.5: ..., 0.95: ...}``: posterior quantiles of its loss.
    alternatives : DataFrame
        Rows ``plan`` (this plan), ``risk_neutral`` (the plan minimising
        expected loss), ``closed_form_median`` (Hoffmann et al.'s closed-form
        optimum at the posterior-median parameters, for laws of Chinchilla form
        without serving cost) and ``tokens_per_param_20``; columns
        ``ALTERNATIVE_COLUMNS``: ``p_plan_beats`` = P(loss of this plan < loss
        of the row's), ties counted half; ``expected_regret`` =
        E[max(L_plan - L_row, 0)], what choosing this plan gives up where the
        row does better; ``mean_gain`` = E[L_row - L_plan] (differences below 1e-9 relative
        count as ties); ``oracle_regret`` =
        E[L_row - min over sizes of L], the row's loss above each draw's own
        optimum. Expectations are over the same posterior draws for every row.
    candidates : DataFrame
        The searched grid (``CANDIDATE_COLUMNS``), for plotting risk against N.
    law, family : str
    kind : {"mean", "observation"}
        "mean": the law's loss per draw; "observation": with run-to-run noise.
    cost : CostModel
    extrapolation : float
        Decades of training compute (6ND) beyond the fitted runs; 0 inside.
    loss_draws : ndarray
        Loss of the chosen run per posterior draw, shape (S,).
    optimum_draws : ndarray
        Each draw's own loss-minimising N for this budget (grid resolution).
    notes : tuple of str
        Caveats: search boundary, a law that ignores U, far extrapolation.
    """

    N: float
    D: float
    epochs: float
    unique_tokens: float | None
    budget: float
    risk: str
    risk_value: float
    loss_mean: float
    loss_quantiles: Mapping[float, float]
    alternatives: pd.DataFrame
    candidates: pd.DataFrame
    law: str
    family: str
    kind: str
    cost: CostModel = field(default_factory=CostModel)
    extrapolation: float = 0.0
    loss_draws: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    optimum_draws: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("N", "D", "budget", "epochs"):
            _positive(name, getattr(self, name))
        if self.epochs < 1 - 1e-9:
            raise ValueError(f"Plan.epochs must be >= 1, got {self.epochs}")
        if self.unique_tokens is not None:
            _positive("unique_tokens", self.unique_tokens)
        spent = float(self.cost.total_flops(self.N, self.D))
        if spent > self.budget * (1 + 1e-6):
            raise ValueError(f"Plan spends {spent:.4g} FLOPs, more than its budget {self.budget:.4g}")
        for name in ("risk_value", "loss_mean", "extrapolation"):
            v = getattr(self, name)
            if not (isinstance(v, int | float | np.floating) and math.isfinite(v)):
                raise ValueError(f"Plan.{name} must be finite, got {v!r}")
        qs = dict(self.loss_quantiles)
        values = [qs[q] for q in sorted(qs)]
        if not qs or any(b < a for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(f"Plan.loss_quantiles must be non-empty and non-decreasing, got {qs}")
        object.__setattr__(self, "loss_quantiles", {float(k): float(v) for k, v in sorted(qs.items())})
        if self.kind not in ("mean", "observation"):
            raise ValueError(f"Plan.kind must be 'mean' or 'observation', got {self.kind!r}")
        if not isinstance(self.risk, str) or not self.risk:
            raise ValueError("Plan.risk must be the risk measure's name")
        for name, frame, cols in (("alternatives", self.alternatives, ALTERNATIVE_COLUMNS),
                                  ("candidates", self.candidates, CANDIDATE_COLUMNS)):
            if not isinstance(frame, pd.DataFrame) or tuple(frame.columns) != cols:
                raise ValueError(f"Plan.{name} must be a DataFrame with columns {cols}")
        if "plan" not in self.alternatives.index:
            raise ValueError("Plan.alternatives needs a row 'plan'")
        for name in ("loss_draws", "optimum_draws"):
            arr = np.array(getattr(self, name), dtype=np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "notes", tuple(self.notes))

    # ------------------------------------------------------------ derived
    @property
    def tokens_per_param(self) -> float:
        """D / N."""
        return self.D / self.N

    @property
    def unique_tokens_used(self) -> float:
        """``min(U, D)``: distinct tokens the run sees."""
        return self.D if self.unique_tokens is None else min(self.unique_tokens, self.D)

    @property
    def training_flops(self) -> float:
        """k N D FLOPs."""
        return float(self.cost.training_flops(self.N, self.D))

    @property
    def inference_flops(self) -> float:
        """2 N T FLOPs of serving (0 without serving)."""
        return float(self.cost.inference_flops(self.N))

    @property
    def money(self) -> float | None:
        """The budget in money, when the cost model has a price."""
        return self.cost.price(self.budget)

    def p_below(self, target: float) -> float:
        """Posterior probability that the run's loss is at most ``target`` (nats/token)."""
        return float(np.mean(self.loss_draws <= target))

    # ------------------------------------------------------------ output
    def to_dict(self, candidates: bool = False) -> dict[str, Any]:
        """JSON-ready dict (NaN as None); the candidate grid only on request."""
        alt = [{"name": str(name), **{k: _clean(v) for k, v in row.items()}}
               for name, row in self.alternatives.iterrows()]
        out: dict[str, Any] = {
            "N": self.N, "D": self.D, "epochs": self.epochs, "tokens_per_param": self.tokens_per_param,
            "unique_tokens": self.unique_tokens, "budget": self.budget, "money": self.money,
            "training_flops": self.training_flops, "inference_flops": self.inference_flops,
            "cost_model": self.cost.describe(), "law": self.law, "family": self.family, "kind": self.kind,
            "risk": self.risk, "risk_value": self.risk_value, "loss_mean": self.loss_mean,
            "loss_quantiles": {f"{q:g}": v for q, v in self.loss_quantiles.items()},
            "extrapolation": self.extrapolation, "n_draws": int(self.loss_draws.size),
            "alternatives": alt, "notes": list(self.notes), "units": {"loss": "nats/token", "budget": "FLOPs"},
        }
        if candidates:
            out["candidates"] = [{k: _clean(v) for k, v in r.items()} for r in self.candidates.to_dict("records")]
        return out

    def __str__(self) -> str:
        q = self.loss_quantiles
        lo, med, hi = q.get(0.05, math.nan), q.get(0.5, math.nan), q.get(0.95, math.nan)
        lines = [
            f"plan for {self.budget:.3g} FLOPs ({self.cost.describe()}); law {self.law}, family {self.family}",
            f"  N = {self.N:.4g} parameters, D = {self.D:.4g} tokens ({self.tokens_per_param:.3g} tokens/parameter)"
            + (f", {self.epochs:.3g} epochs over {self.unique_tokens:.3g} unique tokens"
               if self.unique_tokens is not None else ""),
            f"  loss ({'with run-to-run noise' if self.kind == 'observation' else 'law mean'}): mean {self.loss_mean:.4f},"
            f" median {med:.4f}, 90% interval [{lo:.4f}, {hi:.4f}] nats/token; {self.risk} = {self.risk_value:.4f}",
        ]
        if self.money is not None:
            lines.append(f"  cost: {self.money:.4g} (at {self.cost.price_per_flop:.3g} per FLOP)")
        cols = ["N", "D", "epochs", "loss_mean", "risk_value", "p_plan_beats", "expected_regret"]
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            table = self.alternatives[cols].to_string(float_format=lambda v: f"{v:.4g}")
        lines += ["alternatives (p_plan_beats = P(this plan's loss is lower); expected_regret = "
                  "E[max(L_plan - L_alt, 0)], nats/token):", table]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class BudgetResult:
    """The least compute that reaches a target loss with a given probability.

    Attributes
    ----------
    feasible : bool
    target_loss : float
        nats/token.
    probability : float
        Required P(loss <= target_loss).
    budget : float or None
        Least FLOPs found (within the search tolerance); None when infeasible.
    plan : Plan or None
        The plan at that budget (chosen to minimise the ``probability``-quantile
        of loss, which maximises P(loss <= target)); None when infeasible.
    achieved_probability : float
        P(loss <= target) of that plan; when infeasible, the best reached at the
        largest budget searched (NaN if the search did not get that far).
    reason : str
        Why the target is out of reach (empty when feasible).
    max_budget : float
        The largest budget searched, FLOPs.
    """

    feasible: bool
    target_loss: float
    probability: float
    budget: float | None
    plan: Plan | None
    achieved_probability: float
    reason: str = ""
    max_budget: float = math.inf

    def __post_init__(self) -> None:
        if not 0 < self.probability < 1:
            raise ValueError(f"BudgetResult.probability must be in (0, 1), got {self.probability}")
        if self.feasible:
            if self.budget is None or self.plan is None or not self.budget > 0:
                raise ValueError("a feasible BudgetResult needs a positive budget and its plan")
            if self.achieved_probability < self.probability - 1e-12:
                raise ValueError("a feasible BudgetResult must reach the required probability")
        else:
            if self.budget is not None or self.plan is not None:
                raise ValueError("an infeasible BudgetResult has no budget or plan")
            if not self.reason:
                raise ValueError("an infeasible BudgetResult needs a reason")

    @property
    def money(self) -> float | None:
        """The budget in money, when the plan's cost model has a price."""
        return None if self.plan is None else self.plan.money

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "feasible": self.feasible, "target_loss": self.target_loss, "probability": self.probability,
            "budget": self.budget, "money": self.money, "achieved_probability": _clean(self.achieved_probability),
            "reason": self.reason, "max_budget": _clean(self.max_budget),
            "plan": None if self.plan is None else self.plan.to_dict(),
        }

    def __str__(self) -> str:
        if not self.feasible:
            return f"infeasible: loss <= {self.target_loss:g} with probability {self.probability:g}: {self.reason}"
        assert self.plan is not None
        return (f"{self.budget:.4g} FLOPs reach loss <= {self.target_loss:g} nats/token with probability "
                f"{self.achieved_probability:.3f} (required {self.probability:g}): N = {self.plan.N:.4g}, "
                f"D = {self.plan.D:.4g}, epochs {self.plan.epochs:.3g}")


def _clean(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
