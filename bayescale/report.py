"""A self-contained HTML report of a fit: one file to send to a colleague.

``write_report(fit, "report.html", plan_budget=1e23)`` writes a page with the
figures embedded as PNG data URIs (no external files, scripts or fonts), and
tables for the posterior summary, the diagnostics, compute-optimal predictions
and, when a budget is given, the plan with its alternatives. The data's
citation and license come from ``Fit.source``. The file is written atomically.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io import atomic_write_text

__all__ = ["Report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
main{max-width:1100px;margin:0 auto;padding:1.2rem 1.5rem 3rem}
h1{font-size:1.55rem;margin:.4rem 0 .2rem}h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:1px solid #dde2e8;
padding-bottom:.25rem}p,li{line-height:1.45}.meta{color:#56606b;font-size:.92rem}
figure{margin:1rem 0;background:#fff;border:1px solid #e3e7ec;border-radius:6px;padding:.6rem}
figure img{width:100%;max-width:920px;height:auto;display:block;margin:0 auto}figcaption{font-size:.88rem;color:#4a545e;margin-top:.4rem}
table{border-collapse:collapse;font-size:.86rem;background:#fff;margin:.5rem 0;display:block;overflow-x:auto}
th,td{padding:.28rem .6rem;border-bottom:1px solid #e8ebef;text-align:right;white-space:nowrap}
th.text,td.text{text-align:left}thead th{background:#f1f4f7}
.ok,.bad{padding:.6rem .9rem;border-radius:6px;margin:.6rem 0}.ok{background:#e8f6ec;border:1px solid #9fd5ae}
.bad{background:#fdecea;border:1px solid #f0a49c}.note{font-size:.88rem;color:#4a545e}
code{background:#eef1f4;padding:0 .25rem;border-radius:3px}
"""


@dataclass(frozen=True)
class Report:
    """What ``write_report`` wrote.

    Attributes
    ----------
    path : Path
        The HTML file.
    figures : tuple of str
        Names of the embedded figures, in page order.
    diagnostics_ok : bool
        Whether the fit passed its diagnostics (the page says so either way).
    n_bytes : int
        Size of the file.
    """

    path: Path
    figures: tuple[str, ...]
    diagnostics_ok: bool
    n_bytes: int


def _png(fig: Any, dpi: int = 110) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(frame: pd.DataFrame, digits: int = 4, index: bool = True) -> str:
    """An HTML table: numbers to ``digits`` significant figures and right-aligned, text left-aligned."""

    def cell(v: Any, tag: str = "td") -> str:
        if isinstance(v, float | np.floating):
            return f"<{tag}>{'' if np.isnan(v) else f'{v:.{digits}g}'}</{tag}>"
        if isinstance(v, int | np.integer) and not isinstance(v, bool):
            return f"<{tag}>{v}</{tag}>"
        return f'<{tag} class="text">{html.escape(str(v))}</{tag}>'

    head = ([f'<th class="text">{html.escape(str(frame.index.name or ""))}</th>'] if index else [])
    head += [f'<th{"" if pd.api.types.is_numeric_dtype(frame[c]) else " class=text"}>{html.escape(str(c))}</th>'
             for c in frame.columns]
    rows = []
    for key, row in frame.iterrows():
        first = [f'<th class="text">{html.escape(str(key))}</th>'] if index else []
        rows.append("<tr>" + "".join(first + [cell(v) for v in row.tolist()]) + "</tr>")
    return f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(name: str, b64: str, caption: str) -> str:
    return (f'<figure id="fig-{name}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


_CAPTIONS = {
    "loss_vs_compute": "Observed runs against training compute, and the loss of the compute-optimal run at each "
                       "budget with 50% and 90% posterior predictive bands (run-to-run noise included).",
    "surface": "Posterior median loss over parameters and tokens (fresh data); dashed lines are isoFLOP lines "
               "C = 6ND; the red line is the risk-neutral optimal allocation, its band the 90% range of each "
               "posterior draw's own optimum.",
    "surface_epochs": "The same over parameters and epochs at fixed unique data: how far repeating data pays.",
    "forest": "Posterior medians with 50% and 90% intervals, per family and for the population; "
              "'new family' is the predictive for a family not in the data.",
    "heldout": "Held-out runs against their predictive intervals.",
    "plan": "The plan's loss over posterior draws against the alternatives, and the risk along the isoFLOP line.",
    "frontier": "Compute-optimal allocation and loss across budgets, with posterior bands.",
    "calibration": "Coverage of central predictive intervals on the fit's internal leave-future-out runs (the "
                   "larger runs predicted by fits on the smaller ones): below the diagonal, intervals are too "
                   "narrow. The plain line is out of sample; the discrepancy's line is in sample (kappa was "
                   "learned on these runs). Out-of-sample checks on held-out runs: benchmarks/calibration.py.",
}


def write_report(
    fit,
    path: str | os.PathLike,
    plan_budget: float | str | None = None,
    unique_tokens: float | str | None = None,
    risk: str = "mean",
    family: str | None = None,
    heldout: Any = None,
    budgets: Sequence[float] | None = None,
    title: str | None = None,
    seed: int = 0,
) -> Report:
    """Write a self-contained HTML report of ``fit`` to ``path``.

    Parameters
    ----------
    fit : Fit
    path : path
        Output file (``.html``); written atomically.
    plan_budget : float or str, optional
        FLOPs: adds a plan (``bs.plan``) under ``risk`` with its figure and table.
    unique_tokens : float or str, optional
        Unique-data cap for the plan (data-constrained laws).
    risk : str
        Risk measure of the plan (``"mean"``, ``"cvar:0.9"``, ...).
    family : str, optional
        Family to plan and predict for (default: the first).
    heldout : DataFrame, optional
        Runs not in the fit, drawn against their predictive intervals.
    budgets : sequence of float, optional
        Budgets of the compute-optimal prediction table (default: three whole
        decades of FLOPs, the first at least 3x the largest fitted run's compute).
    title : str, optional
    seed : int

    Returns
    -------
    Report
    """
    from . import plots
    from .data import parse_quantity
    from .decide import frontier, plan

    fam = family or fit.families[0]
    diag = fit.diagnose()
    runs = fit.data.frame
    c_max = float((6 * runs["N"] * runs["D"]).max())
    first = np.ceil(np.log10(c_max)) + (np.ceil(np.log10(c_max)) - np.log10(c_max) < 0.5)  # next decade, >=3x away
    budget_list = [float(b) for b in budgets] if budgets is not None else [10.0 ** (first + k) for k in range(3)]
    figures: dict[str, str] = {}
    for name, fig in plots.figure_set(fit, heldout=heldout, seed=seed).items():
        figures[name] = _png(fig)
    pred_cols = ["family", "budget", "N", "D", "tokens_per_param", "loss_median", "loss_lower", "loss_upper",
                 "N_opt_lower", "N_opt_upper", "extrapolation"]
    pred = pd.concat([frontier(fit, budget_list, family=f, noise=True, seed=seed).assign(family=f)[pred_cols]
                      for f in fit.families], ignore_index=True)
    pred = pred.rename(columns={"loss_lower": "loss_q05", "loss_upper": "loss_q95"})
    sections = [_header(fit, title), _diagnostics_html(diag), _data_html(fit)]
    sections.append("<h2>Fit</h2>" + _figure("loss_vs_compute", figures["loss_vs_compute"],
                                                 _CAPTIONS["loss_vs_compute"]))
    if heldout is not None:
        sections.append(_heldout_html(fit, heldout, seed))
    sections.append("<h2>Posterior summary</h2>" + _table(fit.summary().drop(columns=["mcse_mean"], errors="ignore"))
                    + '<p class="note">Paper convention: L = E + A/N<sup>alpha</sup> + B/D<sup>beta</sup> in '
                    "nats/token (N parameters, D tokens); *_ref amplitudes are at the data's reference scale, "
                    "tau_* are population scales of partially pooled parameters; q5/q50/q95 are posterior "
                    "quantiles.</p>" + _figure("forest", figures["forest"], _CAPTIONS["forest"]))
    sections.append(
        "<h2>Predictions</h2><p>Loss of the compute-optimal run per family (fresh data) at budgets beyond the data, with 90% posterior predictive intervals; <code>extrapolation</code> is the distance in decades "
        "of compute beyond the largest fitted run.</p>" + _table(pred, index=False)
        + _figure("surface", figures["surface"], _CAPTIONS["surface"])
        + (_figure("surface_epochs", figures["surface_epochs"], _CAPTIONS["surface_epochs"])
           if "surface_epochs" in figures else "")
    )
    sections.append(_discrepancy_html(fit, pred, figures.get("calibration"), seed))
    if plan_budget is not None:
        budget = parse_quantity(plan_budget) if isinstance(plan_budget, str) else float(plan_budget)
        p = plan(fit, budget=budget, unique_tokens=unique_tokens, risk=risk, family=fam, seed=seed)
        figures["plan"] = _png(plots.plan_figure(p))
        grid = np.geomspace(budget / 1000, budget * 10, 14)
        figures["frontier"] = _png(plots.frontier_figure(frontier(fit, grid, unique_tokens=unique_tokens, risk=risk,
                                                                  family=fam, n_candidates=300, seed=seed)))
        sections.append(_plan_html(p) + _figure("plan", figures["plan"], _CAPTIONS["plan"])
                        + _figure("frontier", figures["frontier"], _CAPTIONS["frontier"]))
    sections.append(_sampler_html(fit))
    body = "\n".join(sections)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<link rel=\"icon\" href=\"data:,\">"
        f"<title>{html.escape(title or f'bayescale report: {fit.law}')}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
    out = atomic_write_text(path, page)
    return Report(path=Path(out), figures=tuple(figures), diagnostics_ok=diag.ok, n_bytes=len(page.encode()))


def _discrepancy_html(fit, pred: pd.DataFrame, calibration_png: str | None, seed: int) -> str:
    """Where the predictions' uncertainty comes from, and the learned discrepancy."""
    disc = fit.discrepancy
    head = "<h2>Extrapolation: where the uncertainty comes from</h2>"
    if disc is None:
        return head + ('<div class="bad">Plain model (fitted with <code>discrepancy=None</code>): intervals carry '
                       "parameter and noise uncertainty only, no allowance for the law's own error, which grows "
                       "with the distance extrapolated.</div>")
    q5, q50, q95 = disc.kappa_quantiles()
    cuts = "; ".join(f"{f['n_train']} runs fitted, {f['n_test']} predicted" for f in disc.fits) or "none possible"
    split = fit.uncertainty(pred[["N", "D", "family"]], seed=seed)
    table = pd.DataFrame({"family": pred["family"], "budget": pred["budget"], "N": pred["N"], "D": pred["D"],
                          "sd_parameter": split["sd_parameter"], "sd_noise": split["sd_noise"],
                          "sd_model": split["sd_model"], "share_model": split["share_model"]})
    text = (f"<p>Model discrepancy, design <code>{html.escape(disc.design)}</code>: the law's own error in log loss "
            f"has sd kappa &times; d, d the decades of compute from the fitted runs' "
            f"{'median' if disc.design == 'centre' else 'largest'} compute (10<sup>{disc.origin:.2f}</sup> FLOPs); "
            f"kappa = {q50:.4f} per decade (90%: {q5:.4f} to {q95:.4f}), learned by leave-future-out inside "
            f"the runs ({html.escape(cuts)}). The table splits each prediction's sd of log loss (about its "
            "relative error) into parameters, run-to-run noise and the law's own error.</p>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in disc.notes)
    fig = _figure("calibration", calibration_png, _CAPTIONS["calibration"]) if calibration_png else ""
    return head + text + (f"<ul>{notes}</ul>" if notes else "") + _table(table, index=False) + fig


def _header(fit, title: str | None) -> str:
    from . import __version__

    law = fit.spec.law_obj
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<h1>{html.escape(title or f'Scaling-law fit: {fit.law}')}</h1>"
        f"<p class=\"meta\">{html.escape(law.description)}<br>Law: {html.escape(law.citation)}<br>"
        f"{fit.data.n_rows} runs, {len(fit.families)} famil{'y' if len(fit.families) == 1 else 'ies'} "
        f"({html.escape(', '.join(fit.families))}); {fit.n_draws} posterior draws; "
        f"bayescale {html.escape(__version__)}; written {when}</p>"
    )


def _diagnostics_html(diag) -> str:
    stats = (f"divergences {diag.divergences}, max R-hat {diag.max_r_hat:.4f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
             f"min tail ESS {diag.min_ess_tail:.0f}")
    if diag.ok and any(m.startswith("APPROXIMATE") for m in diag.messages):
        return f'<div class="bad"><strong>{html.escape(diag.messages[0])}</strong></div>'
    if diag.ok:
        return f'<div class="ok"><strong>Diagnostics passed</strong>: {stats}.</div>'
    items = "".join(f"<li>{html.escape(m)}</li>" for m in diag.messages)
    return (f'<div class="bad"><strong>Diagnostics FAILED</strong>: {stats}. Intervals below may be wrong.'
            f"<ul>{items}</ul></div>")


def _data_html(fit) -> str:
    src = fit.source
    runs = fit.data.frame
    c = 6 * runs["N"] * runs["D"]
    parts = [f"<h2>Data</h2><p>{fit.data.n_rows} runs: N {runs['N'].min():.3g} to {runs['N'].max():.3g} parameters, "
             f"D {runs['D'].min():.3g} to {runs['D'].max():.3g} tokens, compute {c.min():.3g} to {c.max():.3g} "
             "FLOPs; loss in nats/token."]
    if src.get("name"):
        parts.append(f" Source: <code>{html.escape(src['name'])}</code>.")
    parts.append("</p>")
    if src.get("citation"):
        parts.append(f"<p class=\"note\">Cite: {html.escape(src['citation'])}</p>")
    if src.get("license"):
        parts.append(f"<p class=\"note\">License: {html.escape(src['license'])}</p>")
    return "".join(parts)


def _heldout_html(fit, heldout: Any, seed: int) -> str:
    from .data import new_points

    pts = new_points(heldout)
    if "family" not in pts.columns or pts["family"].isna().all():
        pts["family"] = fit.families[0]
    pred = fit.predict(pts, interval=0.9, seed=seed)
    pred["loss"] = pts["loss"].astype(float)
    pred["inside_90"] = (pred["loss"] >= pred["lower"]) & (pred["loss"] <= pred["upper"])
    cols = ["family", "N", "D", "loss", "median", "lower", "upper", "inside_90", "extrapolation"]
    k, n = int(pred["inside_90"].sum()), len(pred)
    return (f"<h2>Held-out runs</h2><p>{k} of {n} held-out runs lie inside their 90% posterior predictive "
            "interval (lower, upper; loss in nats/token).</p>" + _table(pred[cols], index=False))


def _plan_html(p) -> str:
    alt = p.alternatives[["N", "D", "epochs", "tokens_per_param", "loss_mean", "loss_q05", "loss_q50", "loss_q95",
                          "p_plan_beats", "expected_regret"]]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in p.notes)
    q = p.loss_quantiles
    return (
        f"<h2>Plan for {p.budget:.3g} FLOPs</h2><p>Under risk <code>{html.escape(p.risk)}</code>: "
        f"<strong>N = {p.N:.3g} parameters, D = {p.D:.3g} tokens</strong> ({p.epochs:.3g} epoch"
        f"{'' if p.epochs == 1 else 's'}, "
        f"{p.tokens_per_param:.3g} tokens per parameter); expected loss {p.loss_mean:.4f} nats/token, "
        f"90% interval [{q[0.05]:.4f}, {q[0.95]:.4f}]"
        + (f", {p.extrapolation:.2f} decades of compute beyond the data" if p.extrapolation > 0 else "")
        + ".</p>" + (f"<ul class=\"note\">{notes}</ul>" if notes else "")
        + "<p class=\"note\">Alternatives: p_plan_beats is the posterior probability that the plan's loss is lower; "
        "expected_regret what choosing the plan gives up where the alternative does better (nats/token).</p>"
        + _table(alt)
    )


def _sampler_html(fit) -> str:
    s = fit.sampler
    spec = fit.spec
    pooling = ", ".join(f"{k}: {v}" for k, v in spec.pooling.items())
    return (
        "<h2>Model and sampler</h2><p class=\"note\">"
        f"Likelihood {html.escape(spec.likelihood)} on log loss; pooling {html.escape(pooling)}; "
        f"NUTS {s.chains} chains x {s.draws} draws after {s.warmup} warmup, seed {s.seed}, "
        f"dense mass {s.dense_mass}, target accept {s.target_accept}.</p>"
    )
