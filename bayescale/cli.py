"""The ``bayescale`` command.

Verbs: ``datasets``, ``fit``, ``summary``, ``predict``, ``plan``, ``compare``,
``backtest``, ``sweep``, ``report``, ``demo``.
Exit codes: 0 ok; 2 bad input or usage (one line on stderr, never a traceback);
3 a fit that failed its diagnostics (the file is still written, so it can be
inspected), or for ``sweep`` some tasks that failed (their rows carry the error;
the results file is still complete); 1 only for an unexpected crash.

Only the standard library is imported at module level: a bad table is rejected
before pandas-heavy or JAX code loads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_DIAGNOSTICS = 0, 1, 2, 3


class UsageError(Exception):
    """Bad command-line usage, reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + exits; we want one line
        raise UsageError(f"{self.prog}: {message}")


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bayescale", description="Bayesian scaling laws for language-model training runs.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("datasets", help="list the bundled datasets")
    d.add_argument("--json", action="store_true")

    f = sub.add_parser("fit", help="fit a law to a CSV of runs (or a bundled dataset name)")
    f.add_argument("runs", help="CSV file with N, D (or C), loss [, U, family]; or dataset:<name>")
    _fit_options(f)
    f.add_argument("-o", "--output", default="fit.nc", help="where to write the fit (netCDF)")
    f.add_argument("--json", action="store_true", help="print the summary as JSON")

    s = sub.add_parser("summary", help="posterior summary and diagnostics of a saved fit")
    s.add_argument("fit")
    s.add_argument("--json", action="store_true")

    pr = sub.add_parser("predict", help="predicted loss with intervals")
    pr.add_argument("fit", nargs="+", help="a saved fit; several fits of the same runs are averaged "
                                           "(stacking weights, or --weights)")
    pr.add_argument("--weights", choices=["stacking", "waic", "evidence"], default="stacking",
                    help="how several fits are averaged (default stacking)")
    pr.add_argument("--N", nargs="+", help="parameters, e.g. 7e10 or 70B")
    pr.add_argument("--D", nargs="+", help="training tokens, e.g. 1.4e12 or 1.4T")
    pr.add_argument("--C", nargs="+", help="FLOPs instead of D (D = C/6N)")
    pr.add_argument("--U", nargs="+", help="unique tokens (default: D, one epoch)")
    pr.add_argument("--family", nargs="+")
    pr.add_argument("--csv", help="CSV of points instead of --N/--D")
    pr.add_argument("--interval", type=float, nargs="+", default=[0.9])
    pr.add_argument("--kind", choices=["observation", "mean"], default="observation")
    pr.add_argument("--json", action="store_true")

    pl = sub.add_parser("plan", help="allocate a compute budget: model size, tokens, epochs, under a risk measure")
    pl.add_argument("fit", nargs="+", help="a saved fit; several fits of the same runs are averaged "
                                           "(stacking weights, or --weights)")
    pl.add_argument("--weights", choices=["stacking", "waic", "evidence"], default="stacking",
                    help="how several fits are averaged (default stacking)")
    pl.add_argument("--budget", required=True, help="FLOPs, e.g. 1e23 (training, plus serving if given)")
    pl.add_argument("--unique-tokens", help="unique tokens available, e.g. 4e11 or 400B (default: fresh data)")
    pl.add_argument("--risk", default="mean", help="mean | q:0.9 | cvar:0.9 | meansd:1.0 | cara:5 (default mean)")
    pl.add_argument("--family", help="family to plan for (needed with several; a new name uses the population)")
    pl.add_argument("--noise", action="store_true", help="include run-to-run noise from the likelihood")
    pl.add_argument("--inference-tokens", help="tokens the model will serve (adds 2N FLOPs per token to the cost)")
    pl.add_argument("--flops-per-token", type=float, default=6.0, help="k in C = k N D (default 6)")
    pl.add_argument("--candidates", type=int, default=1000, help="model sizes on the search grid (default 1000)")
    pl.add_argument("--json", action="store_true")

    c = sub.add_parser("compare", help="rank fits of the same runs by LOO, WAIC or evidence")
    c.add_argument("fits", nargs="+", help="two or more saved fits (.nc) of the same runs")
    c.add_argument("--method", choices=["loo", "waic", "evidence"], default="loo")
    c.add_argument("--json", action="store_true")

    b = sub.add_parser("backtest", help="fit the smaller-compute runs, score predictions of the largest")
    b.add_argument("runs", help="CSV file of runs, or dataset:<name>")
    b.add_argument("--law", default="chinchilla")
    b.add_argument("--holdout", type=float, default=0.2, help="share of runs held out (largest compute)")
    b.add_argument("--by", choices=["compute", "N", "D"], default="compute")
    b.add_argument("--interval", type=float, default=0.9)
    b.add_argument("--hierarchy", default="auto")
    b.add_argument("--no-baseline", action="store_true", help="skip the Huber baseline")
    b.add_argument("--draws", type=int, default=1000)
    b.add_argument("--warmup", type=int, default=1000)
    b.add_argument("--chains", type=int, default=4)
    b.add_argument("--json", action="store_true")

    w = sub.add_parser(
        "sweep", help="many fits or backtests at once (laws x priors x hierarchies x splits), locally or on Ray",
        description="One task per combination of --laws, --priors, --hierarchy and --splits; results stream to "
                    "--output as JSON lines, and a rerun resumes where an interrupted sweep stopped.",
        epilog="exit codes: 0 every task ok; 2 bad input or usage (nothing runs); 3 some tasks failed (their rows "
               "carry the error; rerun with --retry-errors to run them again)")
    w.add_argument("runs", help="CSV file of runs, or dataset:<name>")
    w.add_argument("--laws", default="chinchilla", help="comma-separated law names (default chinchilla)")
    w.add_argument("--splits", default="none",
                   help="comma-separated holdout shares for leave-future-out backtests, 'none' for a plain fit "
                        "(e.g. 0.2,0.4,none; default none)")
    w.add_argument("--priors", action="append", metavar="SET",
                   help='a prior set, "default" or NAME=DIST pairs joined by ";", e.g. '
                        '"alpha=Normal(0.35, 0.1);beta=Normal(0.3, 0.1)" (repeatable; default: the law\'s own)')
    w.add_argument("--hierarchy", action="append", metavar="POOLING",
                   help="comma-separated auto|complete|independent|partial, or one per-parameter setting "
                        "alpha=partial,E=complete (repeatable; default auto)")
    w.add_argument("--by", choices=["compute", "N", "D"], default="compute", help="split variable (default compute)")
    w.add_argument("--baseline", action="store_true", help="also score the Huber baseline on each split")
    w.add_argument("--executor", choices=["local", "processes", "ray"], default="local",
                   help="local (in this process), processes (a pool over every core) or ray")
    w.add_argument("--address", help='Ray cluster address, e.g. "auto" or ray://head:10001 (with --executor ray)')
    w.add_argument("--workers", type=int, help="worker processes or local Ray CPUs (default: every core)")
    w.add_argument("-o", "--output", default="sweep.jsonl", help="results file (JSON lines; resumed if it exists)")
    w.add_argument("--csv", help="also write the table as CSV")
    w.add_argument("--save-fits", metavar="DIR", help="save each task's fit as DIR/<task_id>.nc")
    w.add_argument("--retry-errors", action="store_true", help="on resume, rerun the tasks recorded as failed")
    _sampler_options(w)
    w.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar over tasks on stderr (default: only on a terminal)")
    w.add_argument("--json", action="store_true", help="print the table as JSON")

    r = sub.add_parser("report", help="write a self-contained HTML report of a saved fit")
    r.add_argument("fit")
    r.add_argument("-o", "--output", default="report.html", help="the HTML file to write")
    r.add_argument("--plan-budget", help="add a plan for this many FLOPs, e.g. 1e23")
    r.add_argument("--unique-tokens", help="unique tokens available to the plan, e.g. 400B")
    r.add_argument("--risk", default="mean", help="risk measure of the plan (as for `plan`)")
    r.add_argument("--family", help="family to plan for (default: the first)")
    r.add_argument("--heldout", help="CSV of runs not in the fit, drawn against their predictive intervals")
    r.add_argument("--title")

    m = sub.add_parser("demo", help="the README's main job on the bundled Chinchilla data")
    m.add_argument("--out", default="out", help="folder for the result files")
    _sampler_options(m)
    return p


def _sampler_options(p: argparse.ArgumentParser) -> None:
    """NUTS settings shared by every command that fits (per chain, as in ``bs.fit``)."""
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)


def _fit_options(f: argparse.ArgumentParser) -> None:
    f.add_argument("--law", default="chinchilla")
    f.add_argument("--hierarchy", default="auto", help="auto | complete | independent | partial")
    f.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance (default 0.8; 0.95 with partial pooling); raise it on divergences")
    f.add_argument("--likelihood", default="student_t", choices=["student_t", "gaussian", "laplace"])
    f.add_argument("--prior", action="append", type=_key_value, default=[], metavar="NAME=DIST",
                   help='e.g. --prior "alpha=Normal(0.35, 0.1)" (repeatable)')
    f.add_argument("--fix", action="append", type=_key_value, default=[], metavar="NAME=VALUE",
                   help="hold a parameter fixed, e.g. --fix E=1.869 (repeatable)")
    f.add_argument("--column", action="append", type=_key_value, default=[], metavar="CANON=COLUMN",
                   help="map a column, e.g. --column N=params (repeatable)")
    _sampler_options(f)
    f.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only on a terminal)")
    f.add_argument("--approx", choices=["laplace"],
                   help="instant approximate posterior (normal at the mode) instead of NUTS; labelled approximate")
    f.add_argument("--strict", action="store_true",
                   help="a fit that fails its diagnostics is an error: no file is written (exit 3)")
    f.add_argument("--discrepancy", default="auto", choices=["auto", "centre", "edge", "constant", "none"],
                   help="model discrepancy learned by internal leave-future-out (default auto = centre); "
                        "none: the plain model")


# ----------------------------------------------------------------- commands


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=_json_default))


def _json_default(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and x != x:
        return None
    raise TypeError(type(x).__name__)


def _records(frame) -> list[dict[str, Any]]:
    import numpy as np

    out = []
    for idx, row in frame.iterrows():
        rec = {frame.index.name or "index": idx} if frame.index.name else {}
        for k, v in row.items():
            if isinstance(v, float | np.floating) and not np.isfinite(v):
                v = None
            rec[k] = v
        out.append(rec)
    return out


def cmd_datasets(args: argparse.Namespace) -> int:
    from . import datasets

    table = datasets.describe()
    if args.json:
        _print_json(_records(table))
    else:
        for _, row in table.iterrows():
            print(f"{row['name']:<22} {int(row['rows']):>5} runs  {row['description']}")
    return EXIT_OK


def _load_runs(spec: str):
    if spec.startswith("dataset:"):
        from . import datasets

        return datasets.load(spec.split(":", 1)[1])
    return spec  # a path: bayescale.data reads and validates it


def _summary_text(fit) -> str:
    import pandas as pd

    s = fit.summary()
    cols = ["mean", "sd", "q5", "q50", "q95", "ess_bulk", "ess_tail", "r_hat", "note"]
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        table = s[cols].to_string(float_format=lambda v: f"{v:.4g}")
    d = fit.diagnose()
    lines = [
        f"law {fit.law}: {fit.data.n_rows} runs, {len(fit.families)} famil{'y' if len(fit.families) == 1 else 'ies'}"
        f" ({', '.join(fit.families)}); pooling {_pooling_text(fit)}; likelihood {fit.spec.likelihood}",
        (f"APPROXIMATE posterior ({fit.approximate}): {fit.sampler.draws} independent draws, no MCMC"
         if fit.approximate else f"{fit.sampler.chains} chains x {fit.sampler.draws} draws (+{fit.sampler.warmup} warmup), "
                              f"target accept {fit.sampler.target_accept:g}"),
        table,
        f"diagnostics: {'ok' if d.ok else 'FAILED'} (max R-hat {d.max_r_hat:.3f}, min ESS bulk {d.min_ess_bulk:.0f}, "
        f"tail {d.min_ess_tail:.0f}, {d.divergences} divergences)",
    ]
    lines += [f"  - {m}" for m in d.messages]
    if d.remedy:
        lines.append(f"  - {d.remedy}")
    lines.append(_discrepancy_text(fit))
    return "\n".join(lines)


def _discrepancy_text(fit) -> str:
    disc = fit.discrepancy
    if disc is None:
        return "discrepancy: none (plain model: parameter and noise uncertainty only)"
    q5, q50, q95 = disc.kappa_quantiles()
    cuts = ", ".join(f"{f['n_train']}->{f['n_test']} runs" for f in disc.fits) or "none possible"
    text = (f"discrepancy ({disc.design}): law error sd kappa = {q50:.4f} per decade of compute "
            f"[90%: {q5:.4f}, {q95:.4f}] (log loss), learned by leave-future-out inside the runs ({cuts})")
    return text + "".join(f"\n  - {n}" for n in disc.notes)


def _pooling_text(fit) -> str:
    modes = set(fit.spec.pooling.values())
    return modes.pop() if len(modes) == 1 else ", ".join(f"{k}:{v}" for k, v in fit.spec.pooling.items())


def _fit_exit(fit) -> int:
    return EXIT_OK if fit.diagnose().ok else EXIT_DIAGNOSTICS


def cmd_fit(args: argparse.Namespace) -> int:
    import bayescale as bs

    fixed = {}
    for k, v in args.fix:
        try:
            fixed[k] = float(v)
        except ValueError:
            raise UsageError(f"--fix {k}={v}: value must be a number") from None
    hierarchy: Any = args.hierarchy
    if "=" in hierarchy:  # per-parameter: alpha=partial,E=complete
        hierarchy = dict(_key_value(x) for x in hierarchy.split(","))
    fit = bs.fit(
        _load_runs(args.runs), law=args.law, hierarchy=hierarchy, priors=dict(args.prior) or None,
        fixed=fixed or None, likelihood=args.likelihood, draws=args.draws, warmup=args.warmup,
        chains=args.chains, seed=args.seed, progress="auto" if args.progress is None else args.progress,
        columns=dict(args.column) or None, warn=False, strict=args.strict, approx=args.approx,
        target_accept=args.target_accept,
        discrepancy=None if args.discrepancy == "none" else args.discrepancy,
    )
    path = fit.save(args.output)
    if args.json:
        _print_json({"file": str(path), "summary": _records(fit.summary()), "diagnostics": _diag_dict(fit)})
    else:
        print(_summary_text(fit))
        print(f"fit written to {path}")
    return _fit_exit(fit)


def _diag_dict(fit) -> dict[str, Any]:
    d = fit.diagnose()
    return {"ok": d.ok, "divergences": d.divergences, "max_r_hat": d.max_r_hat, "min_ess_bulk": d.min_ess_bulk,
            "min_ess_tail": d.min_ess_tail, "messages": list(d.messages), "remedy": d.remedy}


def cmd_summary(args: argparse.Namespace) -> int:
    import bayescale as bs

    fit = bs.load_fit(args.fit)
    if args.json:
        _print_json({"law": fit.law, "summary": _records(fit.summary()), "diagnostics": _diag_dict(fit)})
    else:
        print(_summary_text(fit))
    return _fit_exit(fit)


def _points_frame(args: argparse.Namespace):
    import pandas as pd

    if args.csv:
        return args.csv
    if not args.N or not (args.D or args.C):
        raise UsageError("predict needs --N and --D (or --C), or --csv")
    cols = {"N": args.N, "D": args.D, "C": args.C, "U": args.U, "family": args.family}
    cols = {k: v for k, v in cols.items() if v}
    n = max(len(v) for v in cols.values())
    for k, v in cols.items():
        if len(v) not in (1, n):
            raise UsageError(f"--{k} has {len(v)} values; give 1 or {n}")
    return pd.DataFrame({k: (v * n if len(v) == 1 else v) for k, v in cols.items()})


def _fit_or_average(paths: Sequence[str], weights: str):
    """One saved fit, or the model average of several (``bs.average``), said on stderr."""
    import bayescale as bs

    if len(paths) == 1:
        return bs.load_fit(paths[0])
    names = [Path(f).stem for f in paths]
    if len(set(names)) != len(names):
        names = [str(f) for f in paths]
    avg = bs.average({n: bs.load_fit(f) for n, f in zip(names, paths, strict=True)}, weights=weights)
    print(f"model average ({weights}): " + ", ".join(f"{k} {w:.3f}" for k, w in avg.weights.items()), file=sys.stderr)
    return avg


def cmd_predict(args: argparse.Namespace) -> int:
    fit = _fit_or_average(args.fit, args.weights)
    pred = fit.predict(_points_frame(args), interval=args.interval if len(args.interval) > 1 else args.interval[0],
                       kind=args.kind)
    far = pred["extrapolation"] > 0
    if args.json:
        _print_json({"law": fit.law, "kind": args.kind, "units": "nats/token", "predictions": _records(pred)})
    else:
        print(_prediction_text(pred, args.interval, args.kind))
    if far.any():
        print(f"note: {int(far.sum())} point(s) lie outside the compute range of the fitted runs, up to "
              f"{pred['extrapolation'].max():.2f} decades beyond it; intervals there rest on the law's form holding",
              file=sys.stderr)
    return EXIT_OK


def _prediction_text(pred, intervals: Sequence[float], kind: str) -> str:
    lines = []
    for _, r in pred.iterrows():
        parts = [f"N={r['N']:.3g} D={r['D']:.3g}"]
        if r["U"] != r["D"]:
            parts.append(f"U={r['U']:.3g}")
        if "family" in r:
            parts.append(f"family={r['family']}")
        head = " ".join(parts) + f": loss {r['median']:.4f} (median), mean {r['mean']:.4f} nats/token"
        if len(intervals) == 1:
            head += f"; {round(100 * intervals[0])}% {kind} interval [{r['lower']:.4f}, {r['upper']:.4f}]"
        else:
            for lev in intervals:
                k = round(100 * lev)
                head += f"; {k}% [{r[f'lower_{k}']:.4f}, {r[f'upper_{k}']:.4f}]"
        if r["extrapolation"] > 0:
            head += f"; {r['extrapolation']:.2f} decades of compute beyond the data"
        if "sd_model" in r:
            head += (f"\n  uncertainty (sd of log loss): parameters {r['sd_parameter']:.4f}, noise {r['sd_noise']:.4f}, "
                     f"model discrepancy {r['sd_model']:.4f}")
        lines.append(head)
    if pred.attrs.get("discrepancy", "").startswith("none"):
        lines.append("plain model (fitted with discrepancy=None): no allowance for the law's own error")
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    import bayescale as bs

    from .data import parse_quantity
    from .decide import CostModel

    fit = _fit_or_average(args.fit, args.weights)
    try:
        cost = CostModel(flops_per_param_token=args.flops_per_token,
                         inference_tokens=parse_quantity(args.inference_tokens) if args.inference_tokens else 0.0)
    except ValueError as exc:
        raise UsageError(f"plan: {exc}") from None
    result = bs.plan(fit, budget=args.budget, unique_tokens=args.unique_tokens, risk=args.risk, family=args.family,
                     n_candidates=args.candidates, noise=args.noise, cost=cost)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    import bayescale as bs

    if len(args.fits) < 2:
        raise UsageError("compare needs at least two fit files")
    names = [Path(f).stem for f in args.fits]
    if len(set(names)) != len(names):
        names = [str(f) for f in args.fits]
    table = bs.compare({n: bs.load_fit(f) for n, f in zip(names, args.fits, strict=True)}, method=args.method)
    if args.json:
        _print_json({"method": args.method, "table": _records(table)})
    else:
        with pd.option_context("display.width", 140, "display.max_colwidth", 60):
            print(f"method: {args.method} (score in nats; diff = best score minus this one)")
            print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    import pandas as pd

    import bayescale as bs

    hierarchy: Any = args.hierarchy
    if "=" in hierarchy:
        hierarchy = dict(_key_value(x) for x in hierarchy.split(","))
    fit_kwargs = {"draws": args.draws, "warmup": args.warmup, "chains": args.chains, "hierarchy": hierarchy,
                  "warn": False}
    result = bs.backtest(_load_runs(args.runs), law=args.law, holdout=args.holdout, by=args.by,
                         interval=args.interval, baseline=not args.no_baseline, fit_kwargs=fit_kwargs)
    if args.json:
        _print_json(result.to_dict())
    else:
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(result.scores.to_string(float_format=lambda v: f"{v:.4g}"))
    return EXIT_OK


def _sweep_splits(text: str) -> list[float | None]:
    out: list[float | None] = []
    for part in (p.strip() for p in text.split(",")):
        if part.lower() in ("none", ""):
            out.append(None)
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise UsageError(f"--splits: {part!r} is neither a holdout share nor 'none'") from None
    return out


def _sweep_priors(sets: Sequence[str] | None) -> list[dict[str, str] | None]:
    if not sets:
        return [None]
    out: list[dict[str, str] | None] = []
    for text in sets:
        if text.strip().lower() == "default":
            out.append(None)
            continue
        try:
            out.append(dict(_key_value(x) for x in text.split(";") if x.strip()))
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--priors: {exc}") from None
    return out


def _sweep_hierarchies(values: Sequence[str] | None) -> list[Any]:
    out: list[Any] = []
    for text in values or ["auto"]:
        if "=" in text:
            out.append(dict(_key_value(x) for x in text.split(",")))
        else:
            out.extend(x.strip() for x in text.split(",") if x.strip())
    return out


def cmd_sweep(args: argparse.Namespace) -> int:
    import logging

    import bayescale as bs

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("bayescale.sweeping")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = bs.sweep(
            _load_runs(args.runs), laws=[x.strip() for x in args.laws.split(",") if x.strip()],
            priors=_sweep_priors(args.priors), hierarchy=_sweep_hierarchies(args.hierarchy),
            splits=_sweep_splits(args.splits), by=args.by, draws=args.draws, warmup=args.warmup,
            chains=args.chains, seed=args.seed, baseline=args.baseline, executor=args.executor,
            workers=args.workers, address=args.address, out=args.output, retry_errors=args.retry_errors,
            save_fits=args.save_fits, progress="auto" if args.progress is None else args.progress,
        )
    except ImportError as exc:  # executor="ray" without Ray: say how to install it
        raise UsageError(str(exc)) from None
    finally:
        logger.removeHandler(handler)
    if args.csv:
        result.to_csv(args.csv)
    if args.json:
        _print_json({"executor": result.executor, "output": str(result.out), "skipped": result.skipped,
                     "wall_s": result.wall_s, "table": _records(result.table.astype(object))})
    else:
        print(result)
        print(f"results written to {result.out}" + (f" and {args.csv}" if args.csv else ""))
    return EXIT_OK if result.ok else EXIT_DIAGNOSTICS


def cmd_report(args: argparse.Namespace) -> int:
    import bayescale as bs

    from .report import write_report

    fit = bs.load_fit(args.fit)
    rep = write_report(fit, args.output, plan_budget=args.plan_budget, unique_tokens=args.unique_tokens,
                       risk=args.risk, family=args.family, heldout=args.heldout, title=args.title)
    print(f"report written to {rep.path} ({rep.n_bytes / 1e6:.2f} MB, figures: {', '.join(rep.figures)})")
    if not rep.diagnostics_ok:
        print("warning: the fit failed its diagnostics; the report says so at the top", file=sys.stderr)
    return _fit_exit(fit)


def cmd_demo(args: argparse.Namespace) -> int:
    import pandas as pd

    import bayescale as bs

    out = Path(args.out)
    df = bs.datasets.load("chinchilla")
    print(f"bundled data: {df.attrs.get('citation', 'chinchilla')}")
    print(f"{len(df)} runs; fitting the Chinchilla law E + A/N^alpha + B/D^beta with NUTS "
          f"({args.chains} chains x {args.draws} draws) ...", flush=True)
    fit = bs.fit(df, law="chinchilla", draws=args.draws, warmup=args.warmup, chains=args.chains, seed=args.seed,
                 warn=False)
    print(_summary_text(fit))
    pred = fit.predict(pd.DataFrame({"N": [7e10], "D": [1.4e12]}), interval=0.9)
    r = pred.iloc[0]
    print(f"\npredicted loss of a 70B-parameter model trained on 1.4T tokens (Chinchilla's own run): "
          f"{r['median']:.3f} nats/token, 90% predictive interval [{r['lower']:.3f}, {r['upper']:.3f}] "
          f"({r['extrapolation']:.2f} decades of compute beyond the largest fitted run)")
    print(f"where that uncertainty comes from (sd of log loss): parameters {r['sd_parameter']:.4f}, run-to-run "
          f"noise {r['sd_noise']:.4f}, the law's own error that far out {r['sd_model']:.4f}")
    path = fit.save(out / "chinchilla_fit.nc")
    pred_path = out / "prediction_70B_1.4T.csv"
    from .io import atomic_write_text

    atomic_write_text(pred_path, pred.to_csv(index=False))
    budget, risk = 1e23, "cvar:0.9"
    plan = bs.plan(fit, budget=budget, risk=risk)
    print(f"\nrisk-aware plan (risk {risk}: the mean of the worst 10% of outcomes):\n{plan}")
    from .report import write_report

    rep = write_report(fit, out / "report.html", plan_budget=budget, risk=risk, seed=args.seed)
    print(f"\nfit written to {path}\nprediction written to {pred_path}\nreport written to {rep.path}")
    return _fit_exit(fit)


COMMANDS = {"datasets": cmd_datasets, "fit": cmd_fit, "summary": cmd_summary, "predict": cmd_predict,
            "plan": cmd_plan, "compare": cmd_compare, "backtest": cmd_backtest, "sweep": cmd_sweep,
            "report": cmd_report, "demo": cmd_demo}


def run(argv: Sequence[str] | None = None) -> int:
    """The CLI as a function: returns the exit code instead of exiting."""
    from .data import DataError

    try:
        args = _parser().parse_args(argv)
        if args.command in ("fit", "demo", "backtest"):
            from .runtime import prepare

            prepare(getattr(args, "chains", 4))  # before JAX loads: parallel chains, compilation cache
        elif args.command == "sweep":  # one device per process: tasks pin sequential chains (bayescale.executors)
            from .runtime import compilation_cache

            compilation_cache()
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (DataError, ValueError, FileNotFoundError) as exc:  # DataError, PriorError, FitFileError, ...
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if type(exc).__name__ == "DiagnosticsError":  # --strict
            print(f"error: {_one_line(exc)} (--strict: no file written)", file=sys.stderr)
            return EXIT_DIAGNOSTICS
        if os.environ.get("BAYESCALE_DEBUG"):  # a crash: one line, the traceback only on request
            raise
        print(f"internal error: {type(exc).__name__}: {_one_line(exc)} (set BAYESCALE_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_CRASH


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
