"""Figures of fits, plans, comparisons and backtests (matplotlib).

Every function returns a ``matplotlib.figure.Figure`` and never calls
``plt.show``; save it with ``bayescale.io.atomic_savefig``. Units on every axis:
N parameters, D tokens seen, U unique tokens, compute C = 6ND FLOPs, loss in
nats/token. Bands are central posterior (predictive) intervals.

- :func:`loss_vs_compute`: runs and the compute-optimal loss with 50% / 90%
  predictive bands, one colour per family; held-out runs with their intervals.
- :func:`loss_surface`: median loss over (N, D), or over (N, epochs) at fixed
  unique data, with isoFLOP lines and the optimal allocation path and its band.
- :func:`forest`: per-family and population parameter intervals, one panel
  per parameter (exponents side by side).
- :func:`plan_figure`, :func:`frontier_figure`: a plan's loss distribution
  against its alternatives; allocations and loss across budgets.
- :func:`comparison_figure`, :func:`backtest_figure`: LOO / evidence scores;
  interval coverage and errors on held-out runs.
- :func:`calibration_figure`: nominal against observed coverage of central
  predictive intervals, one line per method (a fit's own internal
  leave-future-out runs via :func:`fit_calibration`, or a backtest's).

The forest is drawn here rather than with ``arviz_plots.plot_forest`` because
it shows the paper-convention values (``A``, not the sampler's ``A_ref``),
groups families under each parameter and adds the population's predictive
for a new family, which that function does not do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter

__all__ = [
    "backtest_figure", "comparison_figure", "forest", "frontier_figure", "loss_surface", "loss_vs_compute",
    "plan_figure",
]

LOSS_LABEL = "loss (nats/token)"
FLOPS_LABEL = "training compute C = 6ND (FLOPs)"
_BAND_ALPHA = {0.5: 0.35, 0.9: 0.15}


def family_colours(families: Sequence[str]) -> dict[str, Any]:
    """One colour per family, stable across a report's figures."""
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    return {f: cmap(i % cmap.N) for i, f in enumerate(families)}


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Figure, Any]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _log_loss_axis(ax: Any, values: np.ndarray) -> None:
    """Log y axis with plain-number ticks: losses span less than a decade."""
    ax.set_yscale("log")
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    ticks = _nice_ticks(lo, hi)
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])


def _nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    for step in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0):
        t = np.arange(np.ceil(lo / step) * step, hi + 1e-12, step)
        if len(t) <= n:
            return t if len(t) >= 2 else np.array([lo, hi]).round(3)
    return np.geomspace(lo, hi, n).round(2)


def _bands(interval: float | Sequence[float]) -> list[float]:
    levels = sorted({float(x) for x in np.atleast_1d(interval)}, reverse=True)
    if not all(0 < x < 1 for x in levels):
        raise ValueError(f"interval masses must lie in (0, 1), got {levels}")
    return levels


def _runs(fit) -> pd.DataFrame:
    frame = fit.data.frame.copy()
    frame["C"] = 6.0 * frame["N"] * frame["D"]
    return frame


# ------------------------------------------------------------ loss vs compute
def loss_vs_compute(
    fit,
    heldout: Any = None,
    interval: float | Sequence[float] = (0.5, 0.9),
    n_budgets: int = 24,
    n_candidates: int = 200,
    seed: int = 0,
    ax: Any = None,
) -> Figure:
    """Observed loss against compute, with the compute-optimal predictive band.

    For each family the curve is the loss of the risk-neutral compute-optimal
    run at each budget (``bs.frontier`` with fresh data and run-to-run noise),
    so runs off the optimal allocation lie above it. Held-out runs are drawn as
    open diamonds with their own predictive intervals at their (N, D, U).

    Parameters
    ----------
    fit : Fit
    heldout : DataFrame, optional
        Runs not used in the fit (columns as for ``bs.fit``), e.g. a backtest's
        test set.
    interval : float or sequence of float
        Band masses (default 50% and 90%).
    n_budgets, n_candidates : int
        Resolution of the frontier (budgets on the x axis, model sizes searched).
    """
    from .data import DataError, new_points, validate
    from .decide import frontier

    levels = _bands(interval)
    runs = _runs(fit)
    held = None
    if heldout is not None:
        held = new_points(heldout)
        if "loss" not in held.columns:
            raise DataError("held-out runs need a 'loss' column: the observed losses to compare with")
        held["loss"] = validate(held[["N", "D", "U", "loss"]], check_duplicates=False).loss  # checked, named rows
        if "family" not in held.columns or held["family"].isna().all():
            held["family"] = fit.families[0]
    c_all = runs["C"].to_numpy() if held is None else np.r_[runs["C"].to_numpy(), 6 * held["N"] * held["D"]]
    budgets = np.geomspace(c_all.min(), c_all.max() * 10, n_budgets)
    colours = family_colours(fit.families)
    fig, ax = _axes(ax, (7.5, 4.8))
    y_all = [runs["loss"].to_numpy()]
    for fam in fit.families:
        col = colours[fam]
        median = None
        for level in levels:
            fr = frontier(fit, budgets, family=fam, interval=level, noise=True, n_candidates=n_candidates, seed=seed)
            ax.fill_between(budgets, fr["loss_lower"], fr["loss_upper"], color=col, lw=0,
                            alpha=_BAND_ALPHA.get(level, 0.2))
            median = fr["loss_median"].to_numpy()
            y_all += [fr["loss_lower"].to_numpy(), fr["loss_upper"].to_numpy()]
        label = fam if len(fit.families) > 1 else "compute-optimal run (median)"
        ax.plot(budgets, median, color=col, lw=1.8, label=label)
        mine = runs[runs["family"] == fam]
        ax.scatter(mine["C"], mine["loss"], s=14, color=col, alpha=0.75, edgecolor="none",
                   label=None if len(fit.families) > 1 else "fitted runs")
    if held is not None and len(held):
        top = max(levels)
        pred = fit.predict(held, interval=top)
        c = 6.0 * pred["N"] * pred["D"]
        for fam, grp in pred.groupby("family", sort=False):
            col = colours.get(fam, "black")
            obs = held.loc[grp.index, "loss"]
            ax.errorbar(c[grp.index], grp["median"], yerr=[grp["median"] - grp["lower"], grp["upper"] - grp["median"]],
                        fmt="none", ecolor=col, elinewidth=1, capsize=2, alpha=0.8)
            ax.scatter(c[grp.index], obs, marker="D", s=34, facecolor="white", edgecolor=col, linewidth=1.4, zorder=5)
        ax.scatter([], [], marker="D", s=34, facecolor="white", edgecolor="black",
                   label=f"held-out runs (bars: {top:.0%} predictive)")
        y_all.append(held["loss"].to_numpy())
    for level in levels:
        ax.fill_between([], [], [], color="0.3", lw=0, alpha=_BAND_ALPHA.get(level, 0.2),
                        label=f"{level:.0%} predictive band")
    ax.set_xscale("log")
    _log_loss_axis(ax, np.concatenate([np.asarray(v, float) for v in y_all]))
    ax.set_xlabel(FLOPS_LABEL)
    ax.set_ylabel(LOSS_LABEL)
    bands = " and ".join(f"{x:.0%}" for x in sorted(levels))
    ax.set_title(f"{fit.law}: loss against compute, {bands} predictive bands", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, ncol=1 if len(fit.families) <= 6 else 2)
    return fig


# ---------------------------------------------------------------- surface
def loss_surface(
    fit,
    over: str = "D",
    unique_tokens: float | None = None,
    family: str | None = None,
    n_grid: int = 60,
    n_budgets: int = 12,
    n_candidates: int = 200,
    interval: float = 0.9,
    seed: int = 0,
    ax: Any = None,
) -> Figure:
    """Median loss over model size and data, isoFLOP lines and the optimal path.

    ``over="D"``: axes N x D (fresh data, U = D). ``over="epochs"``: axes N x
    epochs at fixed unique data ``unique_tokens`` (default: the largest U among
    the runs), for data-constrained laws. The optimal path is the
    risk-neutral allocation at each budget (``bs.frontier``); the band spans
    the ``interval`` of each draw's own optimum along its isoFLOP line.
    """
    from .decide import frontier

    if over not in ("D", "epochs"):
        raise ValueError(f"over must be 'D' or 'epochs', got {over!r}")
    fam = family or fit.families[0]
    runs = _runs(fit)
    if over == "epochs":
        U = float(unique_tokens if unique_tokens is not None else _typical_unique_tokens(runs))
    n_lo, n_hi = runs["N"].min() / 3, runs["N"].max() * 30
    Ng = np.geomspace(n_lo, n_hi, n_grid)
    if over == "D":
        d_lo, d_hi = runs["D"].min() / 3, runs["D"].max() * 30
        Yg = np.geomspace(d_lo, d_hi, n_grid)
        surf = fit.surface(Ng, Yg, family=fam, quantiles=(0.5,), kind="mean", seed=seed)
    else:
        Yg = np.geomspace(1.0, max(100.0, float((runs["D"] / runs["U"]).max()) * 1.5), n_grid)
        surf = fit.surface(Ng, U * Yg, U=U, family=fam, quantiles=(0.5,), kind="mean", seed=seed)
    Z = surf["loss"].sel(quantile=0.5).values.T  # rows: y axis
    fig, ax = _axes(ax, (7.2, 5.4))
    levels = np.geomspace(Z.min(), np.percentile(Z, 97), 14)
    cs = ax.contourf(Ng, Yg, Z, levels=levels, cmap="viridis_r", norm=LogNorm(levels[0], levels[-1]), extend="max")
    lines = ax.contour(Ng, Yg, Z, levels=levels[::2], colors="white", linewidths=0.5, alpha=0.6)
    ax.clabel(lines, fmt=lambda v: f"{v:.2f}", fontsize=7)
    cbar = fig.colorbar(cs, ax=ax, pad=0.02)
    cbar.set_label("median " + LOSS_LABEL)
    cbar.ax.yaxis.set_minor_formatter(NullFormatter())
    ticks = _nice_ticks(levels[0], levels[-1])
    cbar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])

    def y_of(C: Any, N: Any) -> Any:
        D = C / (6.0 * N)
        return D if over == "D" else D / U

    # isoFLOP lines at whole decades inside the plotted window
    labels: list[tuple[float, float, float, float, str]] = []
    corner = [6 * n_lo * Yg[0] * (1 if over == "D" else U), 6 * n_hi * Yg[-1] * (1 if over == "D" else U)]
    for e in range(int(np.ceil(np.log10(corner[0]))), int(np.floor(np.log10(corner[1]))) + 1):
        C = 10.0**e
        y = y_of(C, Ng)
        inside = (y >= Yg[0]) & (y <= Yg[-1])
        if inside.sum() < 2:
            continue
        ax.plot(Ng[inside], y[inside], color="0.25", lw=0.7, ls="--", alpha=0.7)
        k = np.flatnonzero(inside)[int(inside.sum() * 0.15)]
        labels.append((Ng[k], y[k], Ng[min(k + 1, n_grid - 1)], y[min(k + 1, n_grid - 1)], f"1e{e}"))
    # optimal allocation with its band
    budgets = np.geomspace(corner[0] * 10, corner[1] / 10, n_budgets)
    fr = frontier(fit, budgets, family=fam, unique_tokens=U if over == "epochs" else None, interval=interval,
                  n_candidates=n_candidates, seed=seed)
    band_x = np.r_[fr["N_opt_lower"], fr["N_opt_upper"][::-1]]
    band_c = np.r_[budgets, budgets[::-1]]
    ax.fill(band_x, y_of(band_c, band_x), color="tab:red", alpha=0.22, lw=0,
            label=f"optimal N: {interval:.0%} posterior band")
    ax.plot(fr["N_opt_median"], y_of(budgets, fr["N_opt_median"].to_numpy()), color="tab:red", lw=2,
            label="optimal allocation (posterior median)")
    if over == "D":
        pts = runs[runs["family"] == fam]
        ax.scatter(pts["N"], pts["D"], s=12, color="white", edgecolor="black", lw=0.6, label="fitted runs", zorder=4)
    else:
        pts = runs[(runs["family"] == fam) & np.isclose(runs["U"], U, rtol=0.3)]
        if len(pts):
            ax.scatter(pts["N"], pts["D"] / pts["U"], s=14, color="white", edgecolor="black", lw=0.6,
                       label=f"runs with U near {U:.3g}", zorder=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(Ng[0], Ng[-1])
    ax.set_ylim(Yg[0], Yg[-1])
    fig.canvas.draw()  # settle the layout so that the labels' angles follow the drawn lines
    for x0, y0, x1, y1, text in labels:
        (u0, v0), (u1, v1) = ax.transData.transform([(x0, y0), (x1, y1)])
        ax.text(x0, y0, text, fontsize=7, color="0.15", ha="center", va="bottom", rotation_mode="anchor",
                rotation=float(np.degrees(np.arctan2(v1 - v0, u1 - u0))))
    ax.set_xlabel("parameters N")
    ax.set_ylabel("training tokens D" if over == "D" else f"epochs over U = {U:.3g} unique tokens")
    where = f" ({fam})" if len(fit.families) > 1 else ""
    what = "loss over model size and data" if over == "D" else "loss over model size and epochs"
    ax.set_title(f"{fit.law}{where}: {what}; dashed: isoFLOP lines (FLOPs)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left", framealpha=0.85)
    return fig


def _typical_unique_tokens(runs: pd.DataFrame) -> float:
    """The unique-data size shared by most repeated-data runs (the largest U without any)."""
    repeated = runs[runs["D"] > runs["U"] * 1.01]
    if repeated.empty:
        return float(runs["U"].max())
    rounded = repeated["U"].round(-int(np.floor(np.log10(repeated["U"].min()))) + 1)
    return float(repeated.loc[rounded == rounded.mode().iloc[0], "U"].median())


# ----------------------------------------------------------------- forest
def forest(fit, params: Sequence[str] | None = None, interval: tuple[float, float] = (0.5, 0.9),
           new_family: bool = True, seed: int = 0) -> Figure:
    """Posterior intervals per family and for the population, one panel per parameter.

    Thick bars: the inner ``interval`` mass; thin: the outer; dot: median. For a
    partially pooled parameter, "population" is the population location and
    "new family" the predictive for a family not in the data.
    """
    draws = fit.named_draws()
    law = fit.spec.law_obj
    # exponents (dimensionless) first, side by side, then the rest in the law's order
    names = list(params) if params is not None else sorted(law.param_names, key=lambda n: law.spec(n).units != "1")
    unknown = [n for n in names if n not in law.param_names]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; law {fit.law!r} has {', '.join(law.param_names)}")
    shown = [n for n in names if any(k == n or k.startswith(f"{n}[") for k in draws)]
    fresh = _new_family_draws(fit, seed) if new_family and len(fit.families) > 1 else {}
    lo_in, lo_out = ((1 - x) / 2 for x in sorted(interval))
    colours = family_colours(fit.families)
    ncol = min(len(shown), 3)
    nrow = int(np.ceil(len(shown) / ncol))
    height = max(1.6, 0.3 * (len(fit.families) + 3)) * nrow + 0.5
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.9 * ncol + 1.0, height), layout="constrained", squeeze=False)
    for ax in axes.ravel()[len(shown):]:
        ax.set_visible(False)
    for ax, name in zip(axes.ravel(), shown, strict=False):
        rows: list[tuple[str, np.ndarray, Any]] = []
        if name in draws:
            label = "population" if any(k.startswith(f"{name}[") for k in draws) else "all families"
            rows.append((label, draws[name], "black"))
        if name in fresh:
            rows.append(("new family", fresh[name], "0.45"))
        rows += [(f, draws[f"{name}[{f}]"], colours[f]) for f in fit.families if f"{name}[{f}]" in draws]
        for i, (_label, x, col) in enumerate(rows):
            x = np.asarray(x, float).ravel()
            if np.ptp(x) == 0:
                ax.plot(x[0], i, "x", color=col)
                continue
            q = np.quantile(x, [lo_out, lo_in, 0.5, 1 - lo_in, 1 - lo_out])
            ax.plot([q[0], q[4]], [i, i], color=col, lw=1.1)
            ax.plot([q[1], q[3]], [i, i], color=col, lw=3.2, solid_capstyle="butt")
            ax.plot(q[2], i, "o", color=col, ms=4.5, mec="white", mew=0.6)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_title(_param_title(law, name), fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
        spread = np.concatenate([np.asarray(r[1], float).ravel() for r in rows])
        if spread.min() > 0 and np.quantile(spread, 0.95) > 5 * np.quantile(spread, 0.05):  # spans decades
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=8)
    inner, outer = sorted(interval)
    fig.suptitle(f"{fit.law}: posterior medians with {inner:.0%} (thick) and {outer:.0%} (thin) intervals",
                 fontsize=10)
    return fig


def _param_title(law, name: str) -> str:
    units = law.spec(name).units
    return f"{name} ({units})" if units and units not in ("1", "dimensionless") else name


def _new_family_draws(fit, seed: int) -> dict[str, np.ndarray]:
    """Paper-convention draws for a family not in the data, from the population."""
    from .inference import paper_draws

    if not any(mode == "partial" for mode in fit.spec.pooling.values()):
        return {}
    sites, _ = fit._site_draws_for([*fit.families, "\x00new"], seed)
    paper = paper_draws(fit.spec, {k: v[None] for k, v in sites.items()})
    out = {}
    for p in fit.spec.law_obj.params:
        key = f"{p.name}_f"
        if fit.spec.pooling.get(p.name) == "partial" and key in paper:
            out[p.name] = np.asarray(paper[key])[0, :, -1]
    return out


# ------------------------------------------------------------------ plans
def plan_figure(plan) -> Figure:
    """A plan's loss distribution against its alternatives, and risk along model size.

    Left: risk value and expected loss of every searched model size, the
    chosen one and the alternatives marked. Right: histogram of the chosen run's
    loss over posterior draws, with the alternatives' 5-95% ranges beneath.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained",
                                      gridspec_kw={"width_ratios": [1.15, 1]})
    cand = plan.candidates.sort_values("N")
    left.plot(cand["N"], cand["loss_mean"], color="tab:blue", lw=1.5, label="expected loss")
    if plan.risk != "mean":
        left.plot(cand["N"], cand["risk_value"], color="tab:orange", lw=1.5, label=f"risk: {plan.risk}")
    alt = plan.alternatives
    styles = {"plan": ("tab:red", "-"), "risk_neutral": ("tab:blue", ":"), "closed_form_median": ("0.3", "--"),
              "tokens_per_param_20": ("tab:green", "-.")}
    for name, row in alt.iterrows():
        col, ls = styles.get(str(name), ("0.5", ":"))
        left.axvline(row["N"], color=col, ls=ls, lw=1.2, label=f"{_alt_label(name)}: N = {row['N']:.3g}")
    left.set_xscale("log")
    left.set_xlabel(f"parameters N (D = C/6N at C = {plan.budget:.3g} FLOPs)")
    left.set_ylabel(LOSS_LABEL)
    left.set_title("risk along the isoFLOP line", fontsize=10)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=7.5, framealpha=0.9, loc="upper center")

    x = np.asarray(plan.loss_draws, float)
    if x.size and np.ptp(x) > 0:
        right.hist(x, bins=50, color="tab:red", alpha=0.55, density=True, label="chosen plan: loss per draw")
    ymax = right.get_ylim()[1] if x.size else 1.0
    for i, (name, row) in enumerate(alt.iterrows()):
        col, _ = styles.get(str(name), ("0.5", ":"))
        y = -ymax * (0.08 + 0.09 * i)
        right.plot([row["loss_q05"], row["loss_q95"]], [y, y], color=col, lw=2.5, solid_capstyle="butt")
        right.plot(row["loss_q50"], y, "o", color=col, mec="white", ms=5)
        right.text(row["loss_q95"], y, f"  {_alt_label(name)}", va="center", fontsize=7.5, color=col)
    right.axvline(plan.risk_value, color="black", lw=1, ls="--", label=f"{plan.risk} = {plan.risk_value:.4f}")
    right.axhline(0, color="0.6", lw=0.6)
    right.set_ylim(-ymax * (0.12 + 0.09 * len(alt)), ymax * 1.05)
    right.set_yticks([])
    right.set_xlabel(LOSS_LABEL + (" (with run-to-run noise)" if plan.kind == "observation" else ""))
    right.set_title("loss distribution: plan and alternatives (bars: 5-95%)", fontsize=10)
    right.legend(fontsize=7.5, frameon=False, loc="upper right")
    lo = min(alt["loss_q05"].min(), np.quantile(x, 0.002) if x.size else np.inf)
    hi = max(alt["loss_q95"].max(), np.quantile(x, 0.998) if x.size else -np.inf)
    right.set_xlim(lo - 0.03 * (hi - lo), hi + 0.3 * (hi - lo))  # room for the alternatives' labels
    fig.suptitle(f"plan for {plan.budget:.3g} FLOPs ({plan.law}, {plan.family}): N = {plan.N:.3g}, "
                 f"D = {plan.D:.3g}, {plan.epochs:.3g} epoch{'' if plan.epochs == 1 else 's'}", fontsize=11)
    return fig


def _alt_label(name: Any) -> str:
    return {"plan": "plan", "risk_neutral": "risk-neutral", "closed_form_median": "closed form at median",
            "tokens_per_param_20": "20 tokens/param"}.get(str(name), str(name))


def frontier_figure(frame: pd.DataFrame) -> Figure:
    """Allocations and loss across budgets, from ``bs.frontier``."""
    b = frame["budget"].to_numpy()
    level = frame.attrs.get("interval", 0.9)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for stem, col, label in (("N", "tab:purple", "parameters N*"), ("D", "tab:green", "tokens D*")):
        left.fill_between(b, frame[f"{stem}_opt_lower"], frame[f"{stem}_opt_upper"], color=col, alpha=0.2, lw=0)
        left.plot(b, frame[stem], color=col, lw=1.8, label=f"{label} (plan; band: {level:.0%} of per-draw optima)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("compute budget (FLOPs)")
    left.set_ylabel("parameters / tokens")
    left.set_title("compute-optimal allocation", fontsize=10)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=7.5, frameon=False)
    right.fill_between(b, frame["loss_lower"], frame["loss_upper"], color="tab:red", alpha=0.2, lw=0,
                       label=f"{level:.0%} interval")
    right.plot(b, frame["loss_median"], color="tab:red", lw=1.8, label="median")
    right.set_xscale("log")
    _log_loss_axis(right, np.r_[frame["loss_lower"], frame["loss_upper"]])
    right.set_xlabel("compute budget (FLOPs)")
    right.set_ylabel(LOSS_LABEL)
    right.set_title("loss of the planned run", fontsize=10)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7.5, frameon=False)
    fig.suptitle(f"frontier: {frame.attrs.get('law', '')}, risk {frame.attrs.get('risk', 'mean')}", fontsize=11)
    return fig


# ------------------------------------------------------------- comparison
def comparison_figure(table: pd.DataFrame, method: str = "loo") -> Figure:
    """Scores of ``bs.compare`` relative to the best model, +-2 standard errors, with weights."""
    t = table.sort_values("rank")
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(t) + 1.6), layout="constrained")
    y = np.arange(len(t))
    diff = -t["diff"].to_numpy(float)
    se = t["diff_se"].to_numpy(float)
    ax.errorbar(diff, y, xerr=np.where(np.isfinite(se), 2 * se, 0), fmt="o", color="tab:blue", ecolor="tab:blue",
                capsize=3)
    ax.axvline(0, color="0.4", lw=0.8, ls="--")
    labels = [f"{name}  (weight {w:.2f})" for name, w in zip(t.index, t["weight"], strict=True)]
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_ylim(len(t) - 0.5, -0.5)
    what = {"loo": "elpd (PSIS-LOO)", "waic": "elpd (WAIC)", "evidence": "log marginal likelihood"}.get(method, method)
    ax.set_xlabel(f"{what} minus the best model's (nats); bars: 2 standard errors")
    ax.set_title(f"model comparison by {method}", fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def backtest_figure(result) -> Figure:
    """Coverage of the held-out runs' intervals, and errors against extrapolation distance."""
    scores = result.scores.reset_index()
    preds = result.predictions
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 1.3]})
    labels = [f"{m}\n({k})" for m, k in zip(scores["method"], scores["kind"], strict=True)]
    x = np.arange(len(scores))
    levels = sorted(result.levels)
    width = 0.8 / max(len(levels), 1)
    palette = plt.get_cmap("tab10")
    for i, lv in enumerate(levels):
        col = palette(i)
        left.bar(x + (i - (len(levels) - 1) / 2) * width, scores[f"coverage_{round(100 * lv)}"], width, color=col,
                 alpha=0.8, label=f"{lv:.0%} interval")
        left.axhline(lv, color=col, ls="--", lw=1)
    left.set_xticks(x, labels, fontsize=8)
    left.set_ylim(0, 1.05)
    left.set_ylabel("share of held-out runs inside")
    left.set_title("interval coverage (dashed: nominal)", fontsize=10)
    left.legend(fontsize=8, frameon=False, loc="lower right")
    markers = iter("osD^v<>")
    top = round(100 * levels[-1])
    # predictive intervals only ("observation"): credible intervals of the mean are not meant to hold runs
    shown = preds[preds["kind"] == "observation"] if (preds["kind"] == "observation").any() else preds
    groups = list(shown.groupby(["method", "kind"], sort=False))
    for j, ((method, kind), grp) in enumerate(groups):
        rel = grp["median"] / grp["loss"] - 1
        lo = grp[f"lower_{top}"] / grp["loss"] - 1
        hi = grp[f"upper_{top}"] / grp["loss"] - 1
        nudge = 10 ** (0.02 * (j - (len(groups) - 1) / 2))  # side by side, not on top of each other
        right.errorbar(grp["C"] * nudge, rel, yerr=[rel - lo, hi - rel], fmt=next(markers, "o"), ms=4, capsize=2,
                       lw=0.9, alpha=0.8, label=f"{method} ({kind})")
    right.axhline(0, color="0.3", lw=0.8)
    right.set_xscale("log")
    right.set_xlabel(FLOPS_LABEL)
    right.set_ylabel("predicted / observed loss - 1")
    right.set_title(f"held-out runs: median and {top}% predictive interval", fontsize=10)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7.5, frameon=False)
    fig.suptitle(f"backtest: {result.law}, runs with {result.by} >= {result.threshold:.3g} held out", fontsize=11)
    return fig


CALIBRATION_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def fit_calibration(fit, levels: Sequence[float] = CALIBRATION_LEVELS) -> pd.DataFrame:
    """Coverage of the fit's internal leave-future-out runs (``bayescale.discrepancy``) at
    nominal ``levels``: long table with columns method ("plain", "calibrated (in-sample)"),
    level, observed; empty for a fit without a learned discrepancy."""
    disc = fit.discrepancy
    if disc is None or not len(disc.lfo):
        return pd.DataFrame(columns=["method", "level", "observed"])
    cov = disc.lfo_coverage(levels)
    return pd.concat([
        pd.DataFrame({"method": "plain", "level": cov["level"], "observed": cov["plain"]}),
        pd.DataFrame({"method": f"with discrepancy ({disc.design}; in-sample)", "level": cov["level"],
                      "observed": cov["calibrated"]}),
    ], ignore_index=True)


def calibration_figure(table: pd.DataFrame, title: str | None = None, ax: Any = None) -> Figure:
    """Nominal against observed coverage of central predictive intervals.

    ``table``: columns ``method``, ``level`` (nominal mass) and ``observed`` (share of runs
    inside), e.g. from :func:`fit_calibration` or ``benchmarks/calibration.py``. On the
    diagonal a method is calibrated; below it, its intervals are too narrow.
    """
    fig, ax = _axes(ax, (5.2, 4.6))
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="calibrated")
    markers = iter("osD^v<>")
    for method, g in table.groupby("method", sort=False):
        g = g.sort_values("level")
        ax.plot(g["level"], g["observed"], marker=next(markers, "o"), ms=4, lw=1.4, label=str(method))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal coverage of the central predictive interval")
    ax.set_ylabel("observed share of held-out runs inside")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.set_title(title or "calibration on runs beyond the fitted ones", fontsize=10)
    return fig


def figure_set(fit, heldout: Any = None, seed: int = 0) -> Mapping[str, Figure]:
    """The figures a report shows for a fit, by name."""
    figs = {"loss_vs_compute": loss_vs_compute(fit, heldout=heldout, seed=seed),
            "surface": loss_surface(fit, seed=seed)}
    if fit.spec.law_obj.uses_unique_tokens:
        figs["surface_epochs"] = loss_surface(fit, over="epochs", seed=seed)
    figs["forest"] = forest(fit, seed=seed)
    cal = fit_calibration(fit)
    if len(cal):
        figs["calibration"] = calibration_figure(
            cal, title="internal leave-future-out runs: nominal against observed coverage")
    return figs
