r"""Plan a training budget from a posterior: ``plan``, ``frontier``, ``budget_for``.

For a budget C, a model of N parameters trains on :math:`D = C / (6N)` tokens
(``CostModel``; with serving, :math:`D = (C - 2NT)/(6N)`). With U unique tokens
it sees :math:`U_{eff} = \min(U, D)` of them, :math:`D / U_{eff}` times. The
planner searches N over a log-spaced grid, evaluates the law's loss for every
candidate on the *same* posterior draws (an array of S draws x K candidates),
scores each candidate with a risk measure (``risk.py``) and refines the best
one on finer grids. Because every candidate sees the same draws, comparisons
between plans are paired: P(plan A beats plan B) and the regret are computed
draw by draw.

The law is evaluated by the fit's own machinery (``inference.law_params`` and
the law's ``log_loss``, jitted once per model), the coarse grid in float32 and
the refinement in float64 (loss differences near the optimum are ~1e-6 nats,
near float32 resolution).

References: Hoffmann et al. 2022 (closed-form optimum, their Approach 3);
Muennighoff et al. 2023 (data-constrained allocation, their Figure 1 and the
``optimal_allocation`` grid search in huggingface/datablations); Sardana et al.
2023 (serving cost).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..data import DataError, parse_quantity
from .cost import CostModel
from .results import ALTERNATIVE_COLUMNS, CANDIDATE_COLUMNS, LOSS_QUANTILES, BudgetResult, Plan
from .risk import RiskMeasure, quantile, risk_measure

#: tokens per parameter spanned by the default search over N (widened when the optimum sits at an edge)
TOKENS_PER_PARAM_RANGE = (1e-2, 1e5)
#: widenings of the search window, 1.5 decades of N each, before giving up with a note
MAX_WIDENINGS = 4
#: laws with Hoffmann et al.'s closed-form optimum N* = G (C/6)^(beta/(alpha+beta)) for their base law
CLOSED_FORM_LAWS = ("chinchilla", "data_constrained", "data_constrained_tied")
#: the rule of thumb compared against (Hoffmann et al. 2022, Table 3)
CHINCHILLA_TOKENS_PER_PARAM = 20.0

#: a risk curve over N flatter than this (relative) has no preferred size
FLAT_RTOL = 1e-6
#: loss differences below this relative size count as ties (float64 rounding, not a real difference)
TIE_RTOL = 1e-9

_LAW_FNS: dict[str, Any] = {}


def _x64():
    import jax

    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # JAX < 0.8

    return enable_x64()


def _law_fn(spec) -> Any:
    """The jitted ``(sites, noise, logN, logD, logU, idx) -> loss``, shape (K, S), for one model.

    ``noise`` (S,) is added to the log loss of every candidate (zeros for the law's mean).
    """
    key = spec.to_json()
    if key not in _LAW_FNS:
        import jax

        from ..inference import law_params

        law = spec.law_obj

        def f(sites, noise, logN, logD, logU, idx):
            import jax.numpy as jnp

            return jnp.exp(law.log_loss(law_params(spec, sites, idx), logN, logD, logU) + noise[:, None]).T

        if len(_LAW_FNS) >= 8:
            _LAW_FNS.pop(next(iter(_LAW_FNS)))
        _LAW_FNS[key] = jax.jit(f)
    return _LAW_FNS[key]


class _Evaluator:
    """Loss of candidate allocations on a fit's posterior draws, for one family and cap."""

    def __init__(self, fit, family: str | None, unique_tokens: Any, cost: CostModel | None,
                 noise: bool, seed: int) -> None:
        self.fit = fit
        self.law = fit.law
        self.cost = cost if cost is not None else CostModel()
        if not isinstance(self.cost, CostModel):
            raise TypeError(f"cost must be a CostModel, got {type(cost).__name__}")
        self.family = _family(fit, family)
        self.U = None if unique_tokens is None else _quantity("unique_tokens", unique_tokens)
        self.kind = "observation" if noise else "mean"
        sites, idx = fit._site_draws_for([self.family], seed)
        self.sites32 = {k: np.asarray(v, np.float32) for k, v in sites.items()}
        self.sites64 = {k: np.asarray(v, np.float64) for k, v in sites.items()}
        self.idx = np.asarray(idx, np.int32)
        self.S = next(iter(sites.values())).shape[0]
        self.fn = _law_fn(fit.spec)
        self.noise = np.zeros(self.S)
        self._check_allocates()
        if noise:

            z = np.asarray(fit.spec.lik.standard_noise(seed, (self.S,)), np.float64)
            # one noise value per draw, common to every candidate: comparisons stay paired
            self.noise = self.sites64["sigma"] * z
        # the learned discrepancy (bayescale.discrepancy): kappa_s z_s per draw, scaled by each
        # candidate's distance in compute; one z per draw, common to every candidate, so a draw
        # is one consistent law error and comparisons stay paired
        self.discrepancy = fit.discrepancy
        self.disc_unit = None
        if self.discrepancy is not None:
            self.disc_unit = self.discrepancy.unit_draws(self.S, seed + 31)

    def tokens(self, N: np.ndarray, budget: float) -> np.ndarray:
        return self.cost.tokens(N, budget)

    def _eval(self, N: np.ndarray, D: np.ndarray, U: np.ndarray, precise: bool) -> np.ndarray:
        if precise:
            with _x64():
                return np.asarray(self.fn(self.sites64, self.noise, np.log(N), np.log(D), np.log(U), self.idx))
        f32 = np.float32
        return np.asarray(self.fn(self.sites32, self.noise.astype(f32), np.log(N).astype(f32),
                                  np.log(D).astype(f32), np.log(U).astype(f32), self.idx))

    def loss(self, N: Any, budget: float, precise: bool = True) -> np.ndarray:
        """Loss (nats/token) of candidates N on every draw, shape (K, S): float64 when
        ``precise``, else float32 (the coarse grid: ~4x faster)."""
        N = np.atleast_1d(np.asarray(N, np.float64))
        D = self.tokens(N, budget)
        L = self._eval(N, D, D if self.U is None else np.minimum(self.U, D), precise)
        if self.disc_unit is not None:
            d = self.discrepancy.distance(np.log10(6.0 * N * D))
            L = L * np.exp(d[:, None] * self.disc_unit[None, :]).astype(L.dtype)
        return L

    def uses_unique_tokens(self, N: float, budget: float) -> bool:
        """Whether the law's loss depends on U at this allocation."""
        n = np.array([N])
        D = self.tokens(n, budget)
        a, b = self._eval(n, D, D, True), self._eval(n, D, D / 8.0, True)
        return not np.allclose(a, b, rtol=1e-12, atol=0)

    def _check_allocates(self) -> None:
        """Refuse laws whose loss does not depend on N and D separately (e.g. loss in compute alone)."""
        ctx = self.fit.spec.ctx
        n0, d0 = math.exp(ctx.log_N0), math.exp(ctx.log_D0)
        N, D = np.array([n0, 4 * n0]), np.array([d0, d0 / 4])
        L = self._eval(N, D, D, True)
        if np.allclose(L[0], L[1], rtol=1e-12, atol=0):
            raise DataError(
                f"law {self.fit.law!r} predicts the same loss for every split of a budget between parameters and "
                "tokens (it is a law in compute alone): it cannot choose an allocation; fit a law in N and D"
            )

    def closed_form_params(self) -> dict[str, float] | None:
        """Posterior medians of A, B, alpha, beta for laws of Chinchilla form."""
        spec = self.fit.spec
        if spec.law not in CLOSED_FORM_LAWS:
            return None
        from ..inference import law_params

        with _x64():
            p = law_params(spec, self.sites64, self.idx)
            vals = {k: np.broadcast_to(np.asarray(v, np.float64), (self.S, 1))[:, 0] for k, v in p.items()}
        vals.setdefault("beta", vals["alpha"])
        return {k: float(np.median(vals[k])) for k in ("A", "B", "alpha", "beta")}


class _MixtureEvaluator:
    """A model average's loss draws (``bayescale.average``): each draw comes from one fit,
    picked with that fit's weight, as ``ModelAverage.predictive_draws`` mixes predictions;
    the picks are fixed once, so every candidate sees the same mixture draw by draw."""

    def __init__(self, avg, family: str | None, unique_tokens: Any, cost: CostModel | None,
                 noise: bool, seed: int) -> None:
        names = [n for n, w in avg.weights.items() if w > 0]
        self.parts = [_Evaluator(avg.fits[n], family, unique_tokens, cost, noise, seed) for n in names]
        first = self.parts[0]
        self.fit = first.fit
        self.law = "average(" + ", ".join(f"{n} {avg.weights[n]:.2f}" for n in names) + ")"
        self.cost, self.family, self.U, self.kind = first.cost, first.family, first.U, first.kind
        self.S = max(ev.S for ev in self.parts)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xA7E]))
        w = np.array([avg.weights[n] for n in names])
        which = rng.choice(len(names), size=self.S, p=w / w.sum())
        # each fit's draws without replacement while it has enough: a fit of weight 1 keeps its own draws
        self.picks = []
        for j, ev in enumerate(self.parts):
            cols = np.flatnonzero(which == j)
            self.picks.append((cols, rng.choice(ev.S, size=cols.size, replace=cols.size > ev.S)))

    def tokens(self, N: np.ndarray, budget: float) -> np.ndarray:
        return self.parts[0].tokens(N, budget)

    def mix(self, per_part: Sequence[np.ndarray]) -> np.ndarray:
        """Assemble (K, S_part) arrays, one per fit, into the mixture's (K, S)."""
        out = np.empty((per_part[0].shape[0], self.S), dtype=per_part[0].dtype)
        for (cols, rows), L in zip(self.picks, per_part, strict=True):
            out[:, cols] = L[:, rows]
        return out

    def loss(self, N: Any, budget: float, precise: bool = True) -> np.ndarray:
        return self.mix([ev.loss(N, budget, precise) for ev in self.parts])

    def uses_unique_tokens(self, N: float, budget: float) -> bool:
        return any(ev.uses_unique_tokens(N, budget) for ev in self.parts)

    def closed_form_params(self) -> None:
        return None  # no closed-form optimum for a mixture of laws


def _evaluator(fit, family: str | None, unique_tokens: Any, cost: CostModel | None, noise: bool,
               seed: int) -> _Evaluator | _MixtureEvaluator:
    if hasattr(fit, "fits") and hasattr(fit, "weights"):  # a bayescale.ModelAverage
        return _MixtureEvaluator(fit, family, unique_tokens, cost, noise, seed)
    return _Evaluator(fit, family, unique_tokens, cost, noise, seed)


@dataclass(frozen=True)
class _Search:
    """Outcome of the search over N at one budget."""

    grid: np.ndarray          # coarse candidate N, (K,)
    grid_loss: np.ndarray     # float32 loss on the grid, (K, S)
    grid_risk: np.ndarray     # risk per grid candidate, (K,)
    N: float                  # refined optimum
    risk_value: float
    loss: np.ndarray          # float64 loss draws of the optimum, (S,)
    at_edge: bool
    flat: bool                # risk the same for every size on the grid


def _family(fit, family: str | None) -> str:
    if family is None:
        if len(fit.families) > 1:
            raise DataError(
                f"family is needed to plan from a fit with {len(fit.families)} families "
                f"({', '.join(fit.families)}); a name not among them plans for a new family"
            )
        return fit.families[0]
    return str(family)


def _quantity(name: str, value: Any) -> float:
    v = parse_quantity(value) if isinstance(value, str) else float(value)
    if not (math.isfinite(v) and v > 0):
        raise DataError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _bounds(ev: _Evaluator, budget: float, n_range: tuple[float, float] | None) -> tuple[float, float]:
    k = ev.cost.flops_per_param_token
    if n_range is not None:
        lo, hi = (_quantity("n_range", x) for x in n_range)
    else:
        lo = math.sqrt(budget / (k * TOKENS_PER_PARAM_RANGE[1]))
        hi = math.sqrt(budget / (k * TOKENS_PER_PARAM_RANGE[0]))
    hi = min(hi, ev.cost.max_params(budget) * (1 - 1e-6))
    if not lo < hi:
        raise DataError(
            f"no model size fits a budget of {budget:.3g} FLOPs under {ev.cost.describe()}"
            + (f" within n_range={n_range}" if n_range else "")
            + (": serving alone uses it up" if ev.cost.inference_tokens > 0 else "")
        )
    return lo, hi


def _refine(ev: _Evaluator, budget: float, risk: RiskMeasure, grid: np.ndarray, i: int,
            hi_cap: float) -> tuple[float, float, np.ndarray]:
    """Two float64 passes on finer grids around grid index i: (N, risk value, loss draws)."""
    K = grid.size
    lo, hi = grid[max(i - 3, 0)], min(grid[min(i + 3, K - 1)], hi_cap)
    for pts in (48, 24):
        N = np.geomspace(lo, hi, pts)
        L = ev.loss(N, budget)
        r = risk(L, axis=1)
        j = int(np.nanargmin(r))
        lo, hi = N[max(j - 1, 0)], N[min(j + 1, pts - 1)]
    return float(N[j]), float(r[j]), L[j]


def _search(ev: _Evaluator, budget: float, risk: RiskMeasure, n_candidates: int,
            n_range: tuple[float, float] | None) -> _Search:
    lo, hi = _bounds(ev, budget, n_range)
    cap = ev.cost.max_params(budget) * (1 - 1e-6)
    widen = 10 ** 1.5
    for attempt in range(MAX_WIDENINGS + 1):
        grid = np.geomspace(lo, hi, n_candidates)
        L = ev.loss(grid, budget, precise=False)
        r = risk(L, axis=1)
        if not np.isfinite(r).any():
            raise DataError(f"the law's loss is not finite for any model size at {budget:.3g} FLOPs")
        i = int(np.nanargmin(r))
        flat = not np.nanmax(r) - r[i] > FLAT_RTOL * abs(r[i])
        if flat:  # saturated (e.g. few unique tokens, huge budget): the smallest model is as good as any
            i = int(np.flatnonzero(r <= r[i] + FLAT_RTOL * abs(r[i]))[0])
            break
        low_edge = i == 0
        high_edge = i == n_candidates - 1 and hi < cap
        if not (low_edge or high_edge) or n_range is not None or attempt == MAX_WIDENINGS:
            break
        if low_edge:
            lo /= widen
        else:
            hi = min(hi * widen, cap)
    if flat:
        loss = ev.loss(grid[i], budget)[0]
        return _Search(grid, L, r, float(grid[i]), float(risk(loss[None, :], axis=1)[0]), loss, False, True)
    N, rv, loss = _refine(ev, budget, risk, grid, i, hi)
    return _Search(grid, L, r, N, rv, loss, low_edge or high_edge, False)


def _check_budget(budget: Any, money: Any, cost: CostModel) -> float:
    if (budget is None) == (money is None):
        raise DataError("give exactly one of budget (FLOPs) and money")
    if money is not None:
        return cost.flops_for(_quantity("money", money))
    return _quantity("budget", budget)


def _check_n(n_candidates: int) -> int:
    if isinstance(n_candidates, bool) or not isinstance(n_candidates, int | np.integer) or n_candidates < 16:
        raise DataError(f"n_candidates must be an integer >= 16, got {n_candidates!r}")
    return int(n_candidates)


def _per_draw_optimum(grid: np.ndarray, L: np.ndarray) -> np.ndarray:
    """Each draw's loss-minimising N on the grid, refined by a parabola in log N."""
    K = grid.size
    i = np.argmin(L, axis=0)
    j = np.clip(i, 1, K - 2)
    cols = np.arange(L.shape[1])
    y0, y1, y2 = (L[j + d, cols].astype(np.float64) for d in (-1, 0, 1))
    curv = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(curv > 0, 0.5 * (y0 - y2) / curv, 0.0)
    off = np.where((i == 0) | (i == K - 1), 0.0, np.clip(off, -0.5, 0.5))
    step = math.log(grid[1] / grid[0])
    return np.exp(np.log(grid[i]) + off * step)


def _alternatives(ev: _Evaluator, budget: float, risk: RiskMeasure, s: _Search,
                  neutral: tuple[float, np.ndarray]) -> pd.DataFrame:
    rows: dict[str, tuple[float, np.ndarray]] = {"plan": (s.N, s.loss), "risk_neutral": neutral}
    extra: dict[str, float] = {}
    cf = ev.closed_form_params() if ev.cost.inference_tokens == 0 else None
    if cf is not None:
        a, b = cf["alpha"], cf["beta"]
        G = (a * cf["A"] / (b * cf["B"])) ** (1.0 / (a + b))
        extra["closed_form_median"] = G * (budget / ev.cost.flops_per_param_token) ** (b / (a + b))
    extra["tokens_per_param_20"] = ev.cost.params_for_ratio(budget, CHINCHILLA_TOKENS_PER_PARAM)
    Ls = ev.loss(np.array(list(extra.values())), budget)
    rows.update({name: (N, Ls[k]) for k, (name, N) in enumerate(extra.items())})
    best = np.minimum.reduce([s.grid_loss.min(axis=0).astype(np.float64)] + [L for _, L in rows.values()])
    mine = s.loss
    out = []
    for _name, (N, L) in rows.items():
        D = float(ev.tokens(np.array([N]), budget)[0])
        U = D if ev.U is None else min(ev.U, D)
        q = np.quantile(L, LOSS_QUANTILES)
        diff = mine - L
        diff = np.where(np.abs(diff) <= TIE_RTOL * np.abs(L), 0.0, diff)
        out.append([N, D, D / U, D / N, float(L.mean()), *map(float, q), float(risk(L[None, :], axis=1)[0]),
                    float(np.mean(diff < 0) + 0.5 * np.mean(diff == 0)), float(np.mean(np.maximum(diff, 0.0))),
                    float(np.mean(L - mine)), float(np.mean(L - best))])
    frame = pd.DataFrame(out, index=pd.Index(list(rows), name="alternative"), columns=list(ALTERNATIVE_COLUMNS))
    return frame


def _make_plan(ev: _Evaluator, budget: float, risk: RiskMeasure, s: _Search) -> Plan:
    from .risk import mean as mean_risk

    grid_mean = s.grid_loss.mean(axis=1, dtype=np.float64)
    if risk.name == "mean":
        neutral = (s.N, s.loss)
    else:
        i = int(np.nanargmin(grid_mean))
        n, _, loss = _refine(ev, budget, mean_risk(), s.grid, i, s.grid[-1])
        neutral = (n, loss)
    alternatives = _alternatives(ev, budget, risk, s, neutral)
    D = float(ev.tokens(np.array([s.N]), budget)[0])
    U = D if ev.U is None else min(ev.U, D)
    gD = ev.tokens(s.grid, budget)
    gU = gD if ev.U is None else np.minimum(ev.U, gD)
    candidates = pd.DataFrame(
        {"N": s.grid, "D": gD, "epochs": gD / gU, "tokens_per_param": gD / s.grid,
         "loss_mean": grid_mean, "risk_value": s.grid_risk},
        columns=list(CANDIDATE_COLUMNS),
    )
    extrapolation = float(ev.fit.extrapolation(np.array([s.N]), np.array([D]))[0])
    notes = []
    if s.flat:
        notes.append(f"the loss hardly depends on model size at this budget (risk within {FLAT_RTOL:g} relative "
                     f"across {s.grid[0]:.3g}-{s.grid[-1]:.3g} parameters): the smallest such model was chosen")
    if s.at_edge:
        notes.append(f"the best model size lies at the edge of the searched range ({s.grid[0]:.3g}-{s.grid[-1]:.3g} "
                     "parameters): the risk keeps falling beyond it; widen n_range")
    if ev.U is not None and D / U > 1 + 1e-9 and not ev.uses_unique_tokens(s.N, budget):
        notes.append(f"law {ev.law!r} ignores unique tokens: it treats {D / U:.3g} epochs of repeated data as "
                     "fresh; plan with a data-constrained law (data_constrained) to price repetition")
    disc = getattr(ev, "discrepancy", None)
    if disc is not None:
        notes.append(f"loss draws include the law's own error (discrepancy {disc.design}, sd "
                     f"{disc.sd([math.log10(6.0 * s.N * D)])[0]:.4f} in log loss here); "
                     "fit.with_discrepancy(None) plans on the plain model")
    if extrapolation > 1:
        notes.append(f"the plan lies {extrapolation:.2f} decades of compute beyond the fitted runs: it rests on the "
                     "law's form holding that far")
    loss = s.loss
    return Plan(
        N=s.N, D=D, epochs=D / U, unique_tokens=ev.U, budget=budget, risk=risk.name, risk_value=s.risk_value,
        loss_mean=float(loss.mean()), loss_quantiles=dict(zip(LOSS_QUANTILES, np.quantile(loss, LOSS_QUANTILES),
                                                              strict=True)),
        alternatives=alternatives, candidates=candidates, law=ev.law, family=ev.family, kind=ev.kind,
        cost=ev.cost, extrapolation=extrapolation, loss_draws=loss,
        optimum_draws=_per_draw_optimum(s.grid, s.grid_loss), notes=tuple(notes),
    )


# --------------------------------------------------------------------------- public


def plan(
    fit,
    budget: float | str | None = None,
    unique_tokens: float | str | None = None,
    risk: str | RiskMeasure = "mean",
    family: str | None = None,
    n_candidates: int = 1000,
    noise: bool = False,
    cost: CostModel | None = None,
    money: float | None = None,
    n_range: tuple[float, float] | None = None,
    seed: int = 0,
) -> Plan:
    r"""Choose model size and tokens for a compute budget under a risk measure.

    For each candidate N (log-spaced; the best one refined on finer grids) the
    run trains on :math:`D = C/(6N)` tokens, sees :math:`U_{eff} = \min(U, D)`
    unique tokens over :math:`D/U_{eff}` epochs, and its loss is evaluated on
    every posterior draw; the candidate with the smallest risk value wins.

    Parameters
    ----------
    fit : Fit
        A fitted (or loaded, or ``Fit.from_draws``) scaling law.
    budget : float or str
        Compute in FLOPs (``1e23`` or ``"1e23"``), training plus serving under
        ``cost``. Give ``money`` instead with a priced ``cost``.
    unique_tokens : float or str, optional
        Unique tokens available (``4e11``, ``"400B"``); None: fresh data for
        every token (one epoch). Only laws that model repetition
        (``data_constrained``) price epochs; the plan notes when a law ignores U.
    risk : str or callable
        ``"mean"`` (default), ``"q:0.9"``, ``"cvar:0.9"``, ``"meansd:1.0"``,
        ``"cara:5"`` (``bayescale.decide.risk``), or a named ``f(losses, axis)``.
    family : str, optional
        Needed for fits with several families; an unseen name plans for a new
        family from the population distribution.
    n_candidates : int
        Model sizes on the coarse grid (>= 16).
    noise : bool
        Add run-to-run noise from the likelihood (``kind="observation"``), one
        draw per posterior draw, common to all candidates.
    cost : CostModel, optional
        FLOPs per parameter per token (default 6), serving tokens, price.
    money : float, optional
        Budget in money instead of FLOPs (needs ``cost.price_per_flop``).
    n_range : (float, float), optional
        Smallest and largest N to consider; default: 0.01 to 1e5 tokens per
        parameter, widened while the optimum sits at an edge.
    seed : int
        For noise and for an unseen family's population draws.

    Returns
    -------
    Plan
        N, D, epochs, loss quantiles, the risk value, the alternatives table
        (risk-neutral plan, closed-form optimum at the posterior median,
        20 tokens per parameter; P(this plan beats each) and expected regret)
        and the candidate grid.

    Examples
    --------
    >>> p = bs.plan(fit, budget=1e23, unique_tokens=4e11, risk="cvar:0.9")  # doctest: +SKIP
    >>> p.N, p.D, p.epochs, p.alternatives  # doctest: +SKIP
    """
    ev = _evaluator(fit, family, unique_tokens, cost, noise, seed)
    rm = risk_measure(risk)
    C = _check_budget(budget, money, ev.cost)
    n = _check_n(n_candidates)
    s = _search(ev, C, rm, n, n_range)
    return _make_plan(ev, C, rm, s)


FRONTIER_COLUMNS = (
    "budget", "N", "D", "epochs", "tokens_per_param", "loss_mean", "loss_median", "loss_lower", "loss_upper",
    "risk_value", "N_opt_lower", "N_opt_median", "N_opt_upper", "D_opt_lower", "D_opt_median", "D_opt_upper",
    "training_flops", "inference_flops", "extrapolation",
)


def frontier(
    fit,
    budgets: Sequence[float],
    unique_tokens: float | str | None = None,
    risk: str | RiskMeasure = "mean",
    family: str | None = None,
    interval: float = 0.9,
    n_candidates: int = 1000,
    noise: bool = False,
    cost: CostModel | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Plans for a list of budgets, with posterior bands on N*, D* and loss.

    Parameters
    ----------
    fit : Fit
    budgets : sequence of float
        FLOPs (training plus serving under ``cost``).
    unique_tokens, risk, family, n_candidates, noise, cost, seed
        As in :func:`plan`.
    interval : float
        Central mass of the bands.

    Returns
    -------
    DataFrame
        One row per budget, columns ``FRONTIER_COLUMNS``: the plan (``N``,
        ``D``, ``epochs``, ``tokens_per_param``, ``risk_value``), its loss
        (``loss_mean``, ``loss_median``, ``loss_lower``, ``loss_upper``: the
        interval of the plan's loss over draws), and bands on the optimum:
        ``N_opt_*`` and ``D_opt_*`` are quantiles over draws of each draw's own
        loss-minimising allocation (how sure the posterior is about N*, D*).
        ``inference_flops`` is the serving term :math:`2 N T` of
        ``cost.inference_tokens`` T: with many tokens to serve, smaller
        over-trained models win (Sardana et al. 2023). Loss in nats/token.
    """
    if not 0 < float(interval) < 1:
        raise DataError(f"interval must be in (0, 1), got {interval!r}")
    values = [_quantity("budget", b) for b in np.atleast_1d(np.asarray(budgets, dtype=object))]
    if not values:
        raise DataError("frontier needs at least one budget")
    ev = _evaluator(fit, family, unique_tokens, cost, noise, seed)
    rm = risk_measure(risk)
    n = _check_n(n_candidates)
    lo_q, hi_q = (1 - interval) / 2, (1 + interval) / 2
    rows = []
    notes: list[str] = []
    for C in values:
        p = _make_plan(ev, C, rm, _search(ev, C, rm, n, None))
        nq = np.quantile(p.optimum_draws, [lo_q, 0.5, hi_q])
        dq = ev.tokens(nq[::-1], C)
        lq = np.quantile(p.loss_draws, [lo_q, 0.5, hi_q])
        rows.append([C, p.N, p.D, p.epochs, p.tokens_per_param, p.loss_mean, lq[1], lq[0], lq[2], p.risk_value,
                     *nq, *dq, p.training_flops, p.inference_flops, p.extrapolation])
        notes += [f"{C:.3g} FLOPs: {x}" for x in p.notes]
    frame = pd.DataFrame(rows, columns=list(FRONTIER_COLUMNS))
    frame.attrs.update({"law": ev.law, "family": ev.family, "risk": rm.name, "interval": float(interval),
                        "cost_model": ev.cost.describe(), "unique_tokens": ev.U, "kind": ev.kind,
                        "units": {"loss": "nats/token", "budget": "FLOPs"}, "notes": notes})
    return frame


def budget_for(
    fit,
    target_loss: float,
    probability: float = 0.9,
    unique_tokens: float | str | None = None,
    family: str | None = None,
    noise: bool = False,
    cost: CostModel | None = None,
    max_budget: float = 1e30,
    rtol: float = 0.01,
    n_candidates: int = 256,
    seed: int = 0,
) -> BudgetResult:
    r"""The least compute for which P(loss <= target_loss) >= probability.

    At each budget C the planner picks the N that minimises the
    ``probability``-quantile of loss (which maximises P(loss <= target)); that
    quantile only falls as C grows (more tokens at the same N never raise the
    loss), so a bisection over log C finds the least budget, to relative
    tolerance ``rtol``.

    Infeasible, with the reason, when the target is below the posterior of the
    irreducible loss E (P(E <= target) < probability: no compute gets there),
    or when even ``max_budget`` FLOPs fall short (with few unique tokens,
    repetition caps how low the loss can go).

    Parameters
    ----------
    fit : Fit
    target_loss : float
        nats/token.
    probability : float in (0, 1)
    unique_tokens, family, noise, cost, n_candidates, seed
        As in :func:`plan`.
    max_budget : float
        Largest budget searched, FLOPs.
    rtol : float
        Relative tolerance on the budget.

    Returns
    -------
    BudgetResult
        ``feasible``, ``budget`` (FLOPs), the ``plan`` there and the
        ``achieved_probability``; or ``feasible=False`` and ``reason``.
    """
    target = float(target_loss)
    if not (math.isfinite(target) and target > 0):
        raise DataError(f"target_loss must be a positive number (nats/token), got {target_loss!r}")
    p = float(probability)
    if not 0 < p < 1:
        raise DataError(f"probability must be in (0, 1), got {probability!r}")
    if not (0 < rtol < 1):
        raise DataError(f"rtol must be in (0, 1), got {rtol!r}")
    ev = _evaluator(fit, family, unique_tokens, cost, noise, seed)
    C_max = _quantity("max_budget", max_budget)
    n = _check_n(n_candidates)
    rm = quantile(p, method="inverted_cdf")  # Q_p <= target exactly when P(loss <= target) >= p

    def infeasible(reason: str, achieved: float = math.nan) -> BudgetResult:
        return BudgetResult(False, target, p, None, None, achieved, reason, C_max)

    e_draws = _irreducible(ev)
    if e_draws is not None and np.mean(e_draws <= target) < p:
        return infeasible(
            f"the target is below the posterior of the irreducible loss E: P(E <= {target:g}) = "
            f"{np.mean(e_draws <= target):.3f} < {p:g} ({p:g}-quantile of E: {np.quantile(e_draws, p):.4f} nats/token);"
            " no amount of compute reaches it", float(np.mean(e_draws <= target)))

    def q_at(C: float) -> _Search:
        return _search(ev, C, rm, n, None)

    top = q_at(C_max)
    if top.risk_value > target:
        cap = f" with {ev.U:.3g} unique tokens (repetition limits the loss)" if ev.U is not None else ""
        return infeasible(
            f"even {C_max:.3g} FLOPs{cap} reach only P(loss <= {target:g}) = {np.mean(top.loss <= target):.3f} "
            f"< {p:g} (best {p:g}-quantile of loss there: {top.risk_value:.4f}); raise max_budget if more is possible",
            float(np.mean(top.loss <= target)))
    lo, hi, best = None, C_max, top
    C = fit.data.compute_range[0]
    while C > 1e6:
        s = q_at(C)
        if s.risk_value > target:
            lo = C
            break
        hi, best = C, s
        C /= 1e3
    if lo is None:
        lo = 0.0
    while lo > 0 and hi / lo > 1 + rtol:
        mid = math.sqrt(lo * hi)
        s = q_at(mid)
        if s.risk_value <= target:
            hi, best = mid, s
        else:
            lo = mid
    result = _make_plan(ev, hi, rm, best)
    return BudgetResult(True, target, p, hi, result, result.p_below(target), "", C_max)


def _irreducible(ev: _Evaluator) -> np.ndarray | None:
    """Posterior draws of E for the planned family, for laws with an irreducible loss E."""
    if isinstance(ev, _MixtureEvaluator):
        parts = [_irreducible(p) for p in ev.parts]
        return None if any(x is None for x in parts) else ev.mix([x[None, :] for x in parts])[0]
    if "E" not in ev.fit.spec.law_obj.param_names:
        return None
    from ..inference import law_params

    with _x64():
        vals = law_params(ev.fit.spec, ev.sites64, ev.idx)
        return np.broadcast_to(np.asarray(vals["E"], np.float64), (ev.S, 1))[:, 0].copy()
