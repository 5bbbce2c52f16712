r"""Risk measures over loss samples: lower loss is better, so risk looks at the upper tail.

Each factory returns a closure ``f(losses, axis=0)`` that maps samples of loss
(nats/token; posterior draws along ``axis``) to one number per column, smaller
being preferred; the closure carries its canonical name in ``f.name``
(``"cvar:0.9"``), which :func:`risk_measure` parses back. The planner evaluates
every candidate allocation on the same posterior draws and picks the candidate
with the smallest risk value.

=========================  ============================================================
name                       value for samples :math:`x_1..x_n`
=========================  ============================================================
``mean``                   :math:`\bar x = \frac1n \sum_i x_i` (risk-neutral)
``q:p``                    the p-quantile (linear interpolation between order statistics)
``cvar:a``                 mean of the worst (highest) :math:`(1-a)` fraction of losses
``meansd:l``               :math:`\bar x + \lambda\, \mathrm{sd}(x)`
``cara:g``                 certainty equivalent :math:`\frac1\gamma \log \frac1n \sum_i e^{\gamma x_i}`
=========================  ============================================================

References: Rockafellar & Uryasev 2000, "Optimization of conditional value-at-risk"
(CVaR); Markowitz 1952 (mean-variance); Pratt 1964, Arrow 1965 (constant absolute
risk aversion, exponential utility).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class RiskMeasure(Protocol):
    """A function of loss samples with a canonical ``name`` (``"cvar:0.9"``)."""

    name: str

    def __call__(self, losses: Any, axis: int = 0) -> np.ndarray: ...


def _named(fn: Callable[..., np.ndarray], name: str, doc: str) -> RiskMeasure:
    fn.name = name  # type: ignore[attr-defined]
    fn.__name__ = fn.__qualname__ = name.replace(":", "_").replace(".", "_")
    fn.__doc__ = doc
    return fn  # type: ignore[return-value]


def _samples(losses: Any, axis: int) -> np.ndarray:
    x = np.asarray(losses)
    if x.ndim == 0 or x.shape[axis] == 0:
        raise ValueError("a risk measure needs at least one loss sample along its axis")
    return x


def mean() -> RiskMeasure:
    r"""Expected loss (risk-neutral): :math:`\rho(x) = \frac1n \sum_i x_i`.

    Returns
    -------
    callable
        ``f(losses, axis=0)`` with ``f.name == "mean"``.
    """

    def f(losses: Any, axis: int = 0) -> np.ndarray:
        return np.mean(_samples(losses, axis), axis=axis, dtype=np.float64)

    return _named(f, "mean", "Mean loss over samples (risk-neutral).")


def quantile(p: float, method: str = "linear") -> RiskMeasure:
    r"""The p-quantile of loss (value-at-risk at level p): :math:`\rho(x) = Q_p(x)`.

    ``method`` is numpy's: "linear" (default) interpolates between order
    statistics, so for samples 1..5 ``quantile(0.9)`` is 4.6;
    "inverted_cdf" is the smallest sample x with :math:`\hat F(x) \ge p`
    (5 there), for which :math:`Q_p \le t` exactly when
    :math:`\hat P(x \le t) \ge p` (``budget_for`` uses it). ``quantile(0.9)``
    is the loss the run stays below with probability 0.9.

    Parameters
    ----------
    p : float in [0, 1]
    method : str
        A ``numpy.quantile`` method; the name becomes ``"q:p:method"`` unless linear.
    """
    p = _level("quantile", p, closed=True)
    if method not in _QUANTILE_METHODS:
        raise ValueError(f"quantile method must be one of {', '.join(_QUANTILE_METHODS)}, got {method!r}")

    def f(losses: Any, axis: int = 0) -> np.ndarray:
        return np.quantile(_samples(losses, axis), p, axis=axis, method=method)

    name = f"q:{p:g}" if method == "linear" else f"q:{p:g}:{method}"
    return _named(f, name, f"The {p:g}-quantile of loss ({method}).")


_QUANTILE_METHODS = ("linear", "inverted_cdf", "lower", "higher", "nearest", "midpoint")


def cvar(level: float) -> RiskMeasure:
    r"""Conditional value-at-risk: the mean of the worst (highest) ``1 - level`` of losses.

    For n equally likely samples with order statistics
    :math:`x_{(1)} \ge x_{(2)} \ge \dots` (largest first) and
    :math:`m = (1 - a) n`, :math:`k = \lfloor m \rfloor`,

    .. math:: \mathrm{CVaR}_a(x) = \frac1m \Big( \sum_{i \le k} x_{(i)} + (m - k)\, x_{(k+1)} \Big),

    the exact CVaR of the empirical distribution (Rockafellar & Uryasev 2000,
    :math:`\min_t\, t + E[(x - t)^+]/(1-a)`). Samples 1..10: ``cvar(0.9)`` is
    10, ``cvar(0.8)`` is 9.5, ``cvar(0.75)`` is (10 + 9 + 0.5 * 8)/2.5 = 9.2;
    ``cvar(0)`` is the mean.

    Parameters
    ----------
    level : float in [0, 1)
    """
    a = _level("cvar", level, closed=False)

    def f(losses: Any, axis: int = 0) -> np.ndarray:
        x = _samples(losses, axis)
        n = x.shape[axis]
        m = (1.0 - a) * n
        k = min(int(np.floor(m + 1e-9)), n)
        if k >= n:
            return np.mean(x, axis=axis, dtype=np.float64)
        part = np.partition(x, n - k - 1, axis=axis)
        top = np.take(part, np.arange(n - k, n), axis=axis).sum(axis=axis, dtype=np.float64)
        edge = np.take(part, n - k - 1, axis=axis).astype(np.float64)
        return (top + (m - k) * edge) / m

    return _named(f, f"cvar:{a:g}", f"Mean of the worst {1 - a:.3g} fraction of losses (CVaR at {a:g}).")


def mean_sd(lam: float) -> RiskMeasure:
    r"""Mean plus lambda standard deviations: :math:`\rho(x) = \bar x + \lambda\, \sigma(x)`.

    :math:`\sigma` is the population standard deviation (ddof 0): samples
    (1, 3) with lambda 1 give 2 + 1 = 3 (Markowitz 1952, in loss units).

    Parameters
    ----------
    lam : float >= 0
        Standard deviations of loss charged per nat of expected loss.
    """
    lam = float(lam)
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"meansd needs lambda >= 0, got {lam!r}")

    def f(losses: Any, axis: int = 0) -> np.ndarray:
        x = _samples(losses, axis).astype(np.float64, copy=False)
        return np.mean(x, axis=axis) + lam * np.std(x, axis=axis)

    return _named(f, f"meansd:{lam:g}", f"Mean loss plus {lam:g} standard deviations.")


def cara(gamma: float) -> RiskMeasure:
    r"""Certainty equivalent under exponential (CARA) utility :math:`u(x) = -e^{\gamma x}`.

    .. math:: \rho(x) = \frac1\gamma \log \frac1n \sum_i e^{\gamma x_i}

    the sure loss as bad as the gamble (Pratt 1964; Arrow 1965), computed with
    log-sum-exp. It is the mean for gamma -> 0 and approaches
    :math:`\bar x + \frac\gamma2 \mathrm{var}(x)` for small spreads; larger
    gamma (units 1/nat) weighs bad outcomes more. Samples (0, ln 3) with
    gamma 1 give log 2.

    Parameters
    ----------
    gamma : float > 0
        Absolute risk aversion, per nat/token.
    """
    g = float(gamma)
    if not np.isfinite(g) or g <= 0:
        raise ValueError(f"cara needs gamma > 0, got {gamma!r}")

    def f(losses: Any, axis: int = 0) -> np.ndarray:
        x = g * _samples(losses, axis).astype(np.float64, copy=False)
        top = np.max(x, axis=axis, keepdims=True)
        lse = np.log(np.mean(np.exp(x - top), axis=axis)) + np.squeeze(top, axis=axis)
        return lse / g

    return _named(f, f"cara:{g:g}", f"Certainty equivalent of loss under exponential utility, gamma {g:g}/nat.")


def _level(kind: str, value: float, closed: bool) -> float:
    v = float(value)
    ok = 0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0
    if not (np.isfinite(v) and ok):
        raise ValueError(f"{kind} level must be in [0, 1{']' if closed else ')'}, got {value!r}")
    return v


_FACTORIES: dict[str, Callable[[float], RiskMeasure]] = {
    "q": quantile, "quantile": quantile, "cvar": cvar, "meansd": mean_sd, "mean_sd": mean_sd, "cara": cara,
}
FORMS = "mean, median, q:P, cvar:A, meansd:LAMBDA, cara:GAMMA (e.g. 'cvar:0.9')"


def risk_measure(spec: str | RiskMeasure) -> RiskMeasure:
    """Parse ``"mean"``, ``"median"``, ``"q:0.9"``, ``"cvar:0.9"``, ``"meansd:1.0"`` or ``"cara:5"``.

    A callable with a ``name`` attribute (one of the factories' closures, or
    your own ``f(losses, axis=0)``) is returned unchanged.

    Raises
    ------
    ValueError
        An unknown name or a bad level, naming the valid forms.
    """
    if callable(spec):
        if not isinstance(getattr(spec, "name", None), str):
            raise ValueError("a custom risk measure needs a 'name' attribute (str)")
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"risk must be a string like 'cvar:0.9' or a risk function, got {spec!r}")
    text = spec.strip().lower()
    if text == "mean":
        return mean()
    if text == "median":
        return quantile(0.5)
    kind, sep, arg = text.partition(":")
    if not sep or kind not in _FACTORIES:
        raise ValueError(f"unknown risk measure {spec!r}; valid forms: {FORMS}")
    arg, _, method = arg.partition(":")
    if method and kind not in ("q", "quantile"):
        raise ValueError(f"risk measure {spec!r}: only quantiles take a method; valid forms: {FORMS}")
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(f"risk measure {spec!r}: {arg!r} is not a number; valid forms: {FORMS}") from None
    return quantile(value, method) if method else _FACTORIES[kind](value)
