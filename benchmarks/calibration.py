"""Calibrated extrapolation: leave-future-out backtests of the discrepancy designs on every
bundled dataset, against the plain posterior and the Huber baseline.

For each dataset and each cut point (the largest 20%, 30%, 40% of runs by training compute
C = 6ND held out), ``bs.backtest`` fits the law at ``bs.fit``'s defaults on the smaller runs.
The default fit learns its discrepancy by leave-future-out *inside those training runs only*
(``bayescale.discrepancy``: four internal fits holding out 10-40% of the training runs); the
held-out runs are scored once, never used to tune anything. Methods scored on the same
held-out runs:

* ``bayescale``: the default, ``discrepancy="auto"``: the design with the largest internal
  leave-future-out evidence;
* ``bayescale:centre``, ``bayescale:edge``, ``bayescale:constant``: each design, read from the
  same internal evidence (the one "auto" picked is the same as ``bayescale`` and not repeated);
* ``plain``: the same posterior without discrepancy (``discrepancy=None``);
* ``huber``: Epoch AI's Huber fit with residual-bootstrap prediction intervals
  (``bayescale.baselines``; coarse start grid, 400 bootstraps, one fit per family).

Scores per dataset (predictive intervals for a run's loss, "observation" kind): interval
score of the 50% and 90% intervals (Gneiting and Raftery 2007, nats/token, lower is
better), CRPS, coverage of the 50% and 90% intervals with a block bootstrap over cuts
(held-out runs of one cut share one extrapolation error: the blocks are the cuts), mean
relative width, median relative error. Overall: each dataset weighted equally. A
calibration curve (nominal against observed coverage, from each run's predictive CDF value)
is drawn to benchmarks/calibration.png.

A simulated check: a ladder of runs whose true law has a smooth break in the data term
(the D-exponent falls from 0.35 to 0.20 past D = 3e9 tokens, a Caballero et al. 2022 style
break), fitted with the Chinchilla law (which has no break): does the discrepancy keep its
coverage where the law is wrong in a known way?

    python benchmarks/calibration.py [--cuts 0.2 0.3 0.4] [--cases chinchilla gadre ...]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale.io import atomic_savefig, atomic_write_text  # noqa: E402

HERE = Path(__file__).resolve().parent
CASES = {
    "chinchilla": {"dataset": "chinchilla", "load": {"epoch_subset": True}, "law": "chinchilla"},
    "datablations": {"dataset": "datablations", "load": {}, "law": "data_constrained"},
    "gadre": {"dataset": "gadre", "load": {}, "law": "chinchilla"},
    "datablations_curves": {"dataset": "datablations_curves", "load": {}, "law": "data_constrained"},
}
DESIGNS = ("centre", "edge", "constant", "auto/shared")
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
KEEP = ["dataset", "cut", "method", "row", "family", "N", "D", "U", "C", "loss", "extrapolation", "median",
        "lower_50", "upper_50", "lower_90", "upper_90", "crps", "interval_score_50", "interval_score_90", "pit",
        "rel_error"]


def run_backtest(name: str, df: pd.DataFrame, law: str, cut: float, seed: int) -> tuple[pd.DataFrame, dict]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = bs.backtest(df, law=law, holdout=cut, designs=DESIGNS, fit_kwargs={"seed": seed, "warn": False},
                         baseline_kwargs={"n_boot": 400, "seed": seed}, seed=seed)
    wall = time.perf_counter() - t0
    _release_compiled()
    pred = bt.predictions[bt.predictions["kind"] == "observation"].copy()
    pred.insert(0, "cut", cut)
    pred.insert(0, "dataset", name)
    d = bt.fit.diagnose()
    disc = bt.fit.discrepancy
    info = {"dataset": name, "cut": cut, "law": law, "n_train": bt.n_train, "n_test": bt.n_test,
            "wall_s": round(wall, 1), "wall_by_method": {k: round(v, 1) for k, v in bt.wall_s.items()},
            "diagnostics_ok": d.ok, "divergences": d.divergences, "max_r_hat": d.max_r_hat,
            "discrepancy": None if disc is None else disc.summary(),
            "kappa_by_design": {} if disc is None else {
                des: bt.fit.with_discrepancy(des).discrepancy.summary()["kappa_median"] for des in DESIGNS},
            "notes": list(bt.notes), "discrepancy_json": None if disc is None else disc.to_json()}
    return pred[[c for c in KEEP if c in pred.columns]], info


def _release_compiled() -> None:
    """Drop compiled programs between backtests: each training size compiles its own sampler,
    and a long run of them exhausts LLVM's memory mappings ("Cannot allocate memory")."""
    from bayescale.inference import release_compiled_if_crowded

    release_compiled_if_crowded(limit=0)


def block_bootstrap_coverage(g: pd.DataFrame, tag: int, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """90% interval of the coverage when whole cuts (blocks) are resampled."""
    rng = np.random.default_rng(seed)
    blocks = [((b[f"lower_{tag}"] <= b["loss"]) & (b["loss"] <= b[f"upper_{tag}"])).to_numpy() for _, b in g.groupby("cut")]
    if len(blocks) < 2:
        return float("nan"), float("nan")
    stats = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(blocks), len(blocks))
        stats.append(np.concatenate([blocks[i] for i in pick]).mean())
    return tuple(float(x) for x in np.quantile(stats, [0.05, 0.95]))


def score_table(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (ds, method), g in runs.groupby(["dataset", "method"], sort=False):
        g = g[g["median"].notna()]
        if g.empty:
            continue
        rec = {"dataset": ds, "method": method, "n_test": len(g), "cuts": g["cut"].nunique()}
        for tag in (50, 90):
            rec[f"coverage_{tag}"] = float(((g[f"lower_{tag}"] <= g["loss"]) & (g["loss"] <= g[f"upper_{tag}"])).mean())
            lo, hi = block_bootstrap_coverage(g, tag)
            rec[f"coverage_{tag}_lo"], rec[f"coverage_{tag}_hi"] = lo, hi
            rec[f"width_{tag}"] = float(((g[f"upper_{tag}"] - g[f"lower_{tag}"]) / g["median"]).mean())
            rec[f"interval_score_{tag}"] = float(g[f"interval_score_{tag}"].mean())
        rec["crps"] = float(g["crps"].mean())
        rec["median_rel_error"] = float(g["rel_error"].abs().median())
        rows.append(rec)
    return pd.DataFrame(rows)


def overall(table: pd.DataFrame, runs: pd.DataFrame, methods: list[str] | None = None) -> pd.DataFrame:
    """Each dataset weighted equally; only datasets every one of ``methods`` scored (default:
    every method in the table; the Huber baseline has no datablations_curves rows)."""
    methods = list(table["method"].unique()) if methods is None else methods
    table = table[table["method"].isin(methods)]
    common = [ds for ds, g in table.groupby("dataset") if set(methods) <= set(g["method"])]
    sub = table[table["dataset"].isin(common)]
    out = sub.groupby("method", sort=False)[["interval_score_50", "interval_score_90", "crps", "coverage_50",
                                              "coverage_90", "median_rel_error"]].mean()
    out.insert(0, "datasets", len(common))
    return out.reset_index()


def calibration_curve(runs: pd.DataFrame) -> pd.DataFrame:
    """Observed coverage of central intervals at LEVELS from each run's PIT, datasets weighted equally."""
    rows = []
    for method, g in runs.groupby("method", sort=False):
        g = g[g["pit"].notna()]
        for lev in LEVELS:
            per = [float((np.abs(d["pit"] - 0.5) <= lev / 2).mean()) for _, d in g.groupby("dataset")]
            rows.append({"method": method, "level": lev, "observed": float(np.mean(per)), "datasets": len(per)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ simulation
def broken_truth(N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Chinchilla-like loss whose data term breaks: beta 0.35 -> 0.20 past D_b = 3e9 tokens.

    L = E + A/N^a + B/D^b (1 + (D/D_b)^(1/f))^(c f), c = b_far - b = -0.15 slows the decay
    (Caballero et al. 2022, Eq. 1, applied to the D term).
    """
    E, A, B, a, b, Db, f, c = 1.8, 400.0, 1500.0, 0.34, 0.35, 3e9, 0.5, 0.15
    return E + A / N ** a + B / D ** b * (1 + (D / Db) ** (1 / f)) ** (c * f)


def simulated_runs(seed: int) -> pd.DataFrame:
    from bayescale.simulate import ladder

    design = ladder(120, families=1, N_range=(3e7, 3e9), tokens_per_param=(5, 80), seed=seed)
    rng = np.random.default_rng(seed + 1000)
    loss = broken_truth(design["N"].to_numpy(), design["D"].to_numpy()) * np.exp(0.005 * rng.standard_t(4, len(design)))
    return design.assign(loss=loss)


def show(table: pd.DataFrame, over: pd.DataFrame) -> None:
    cols = ["dataset", "method", "n_test", "coverage_50", "coverage_90", "coverage_90_lo", "coverage_90_hi",
            "width_90", "interval_score_50", "interval_score_90", "crps", "median_rel_error"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(table[cols].to_string(index=False))
        print("\noverall (datasets weighted equally)")
        print(over.to_string(index=False))


METHOD_NAMES = {"bayescale": "**auto**", "bayescale:centre": "centre", "bayescale:edge": "edge",
                "bayescale:constant": "constant", "bayescale:auto/shared": "auto, shared slope (`auto/shared`)",
                "plain": "plain", "huber": "Huber + residual bootstrap"}


def markdown(result: dict) -> str:
    """The README's tables, from a result written by this script (``--tables``)."""
    lines = ["| dataset | method | runs | cov 50 | cov 90 [block bootstrap 90%] | width 90 | IS 50 | IS 90 | CRPS "
             "| median rel. err |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in [*result["scores"], *result["simulated"]]:
        lines.append(f"| {r['dataset']} | {METHOD_NAMES.get(r['method'], r['method'])} | {r['n_test']} | "
                     f"{r['coverage_50']:.2f} | {r['coverage_90']:.2f} [{r['coverage_90_lo']:.2f}, "
                     f"{r['coverage_90_hi']:.2f}] | {100 * r['width_90']:.1f}% | {r['interval_score_50']:.4f} | "
                     f"{r['interval_score_90']:.4f} | {r['crps']:.4f} | {100 * r['median_rel_error']:.2f}% |")
    for key in ("overall", "overall_without_baseline"):
        rows = result[key]
        lines += ["", f"{key} ({rows[0]['datasets'] if rows else 0} datasets, each weighted equally):", "",
                  "| method | IS 50 | IS 90 | CRPS | cov 50 | cov 90 | median rel. err |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {METHOD_NAMES.get(r['method'], r['method'])} | {r['interval_score_50']:.4f} | "
                  f"{r['interval_score_90']:.4f} | {r['crps']:.4f} | {r['coverage_50']:.2f} | {r['coverage_90']:.2f} | "
                  f"{100 * r['median_rel_error']:.2f}% |" for r in rows]
    return "\n".join(lines)


def figure(curve: pd.DataFrame, path: Path) -> None:
    from bayescale.plots import calibration_figure

    fig = calibration_figure(curve, title="held-out runs of 4 bundled datasets, 2-3 cuts each,\n"
                                          "datasets weighted equally (huber: 3)")
    atomic_savefig(fig, path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=[*CASES, "simulated"])
    ap.add_argument("--cuts", nargs="*", type=float, default=[0.2, 0.3, 0.4])
    ap.add_argument("--sim-seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bayescale_calibration"),
                    help="per-backtest results are kept here so a rerun resumes")
    ap.add_argument("--out", type=Path, default=HERE / "calibration.json")
    ap.add_argument("--tables", action="store_true", help="print --out's results as markdown tables and stop")
    args = ap.parse_args()
    if args.tables:
        print(markdown(json.loads(args.out.read_text())))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    frames, infos = [], []
    jobs = []
    for name in args.cases:
        if name == "simulated":
            jobs += [(f"simulated:{s}", None, "chinchilla", cut, s) for s in range(args.sim_seeds) for cut in args.cuts]
        else:
            c = CASES[name]
            jobs += [(name, c, c["law"], cut, args.seed) for cut in args.cuts]
    for name, case, law, cut, seed in jobs:
        df = simulated_runs(seed) if case is None else bs.datasets.load(case["dataset"], **case["load"])
        from bayescale.backtesting import distinct_splits
        from bayescale.data import validate

        # e.g. one token count per model size: two shares, one split
        same_as = distinct_splits(validate(df, check_duplicates=False), args.cuts)[args.cuts.index(cut)].same_as
        if same_as is not None:
            print(f"{name:<22} cut {cut:.1f}: the same split as cut {same_as:.1f}; skipped", flush=True)
            continue
        key = args.cache / f"{name.replace(':', '_')}_cut{round(100 * cut)}_seed{seed}.x"
        if key.with_suffix(".json").exists():
            info = json.loads(key.with_suffix(".json").read_text())
            pred = pd.read_csv(key.with_suffix(".csv"))
        else:
            pred, info = run_backtest(name, df, law, cut, seed)
            pred.to_csv(key.with_suffix(".csv"), index=False)
            key.with_suffix(".json").write_text(json.dumps(info, default=float))
        print(f"{name:<22} cut {cut:.1f}: {info['n_train']}/{info['n_test']} runs, {info['wall_s']:.0f} s, "
              f"kappa {info['kappa_by_design']}, diagnostics ok {info['diagnostics_ok']}", flush=True)
        if info.get("discrepancy"):  # the design "auto" chose is the fit's own ("bayescale") rows
            own = f"bayescale:{info['discrepancy']['design']}"
            if not (pred["method"] == own).any():
                pred = pd.concat([pred, pred[pred["method"] == "bayescale"].assign(method=own)], ignore_index=True)
        frames.append(pred)
        infos.append(info)
    runs = pd.concat(frames, ignore_index=True)
    runs["group"] = np.where(runs["dataset"].str.startswith("simulated"), "simulated", "real")
    real = runs[runs["group"] == "real"]
    sim = runs[runs["group"] == "simulated"].assign(dataset="simulated (broken D term)")
    table = score_table(real)
    over = overall(table, real)
    show(table, over)
    over_bayes = overall(table, real, [m for m in table["method"].unique() if m != "huber"])
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print("\noverall without the baseline (every dataset)")
        print(over_bayes.to_string(index=False))
    sim_table = score_table(sim) if len(sim) else pd.DataFrame()
    if len(sim):
        print("\nsimulated misspecification (true law breaks, fitted law does not)")
        show(sim_table, overall(sim_table, sim))
    curve = calibration_curve(real)
    if len(real):
        figure(curve, HERE / "calibration.png")
    result = {
        "settings": {"cuts": args.cuts, "designs": list(DESIGNS), "levels": list(LEVELS), "seed": args.seed,
                     "sim_seeds": args.sim_seeds},
        "scores": table.to_dict(orient="records"), "overall": over.to_dict(orient="records"),
        "overall_without_baseline": over_bayes.to_dict(orient="records"),
        "simulated": sim_table.to_dict(orient="records") if len(sim) else [],
        "calibration_curve": curve.to_dict(orient="records"), "backtests": infos,
    }
    atomic_write_text(args.out, json.dumps(result, indent=1, default=float))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
