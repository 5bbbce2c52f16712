"""Leave-future-out backtest on every bundled dataset: bayescale against the Huber baseline.

For each dataset, ``bs.backtest`` fits on the runs below the 80% quantile of training compute
C = 6ND and predicts the held-out 20% with the largest compute. bayescale runs at bs.fit's
default settings (4 chains x 1000 warmup + 1000 draws, Student-t likelihood, hierarchy
"auto" = partial pooling across families); where that fit reports divergent transitions the
backtest is repeated with target_accept = 0.95 and, with several families, if that still
diverges, with the non-centred parametrisation as well (centred=False, as
benchmarks/gadre.py uses); every attempt's diagnostics are recorded, the last is scored. The baseline
is Epoch AI's procedure (Besiroglu et al. 2024): Huber (delta 1e-3) fit of the Chinchilla
form by L-BFGS-B from the coarse start grid (108 starts; on Epoch's data it finds the full
4,500-start grid's optimum), 1,000 bootstrap replicates, one fit per family, percentile
confidence intervals for the curve ("mean") and residual-bootstrap prediction intervals
("observation").

Cases:

* chinchilla: Epoch's 240 runs (5 highest-loss dropped, as Epoch did), law chinchilla.
* datablations: Muennighoff et al.'s 182 C4 runs with repeated data, law data_constrained
  (untied alpha, beta). The baseline's Chinchilla form has no repetition term: it treats
  repeated tokens as fresh.
* gadre: Gadre et al.'s 104 runs from 3 training sets (families, partial pooling), law
  chinchilla (the baseline's form) and law overtrain (Gadre's Eq. 4).
* datablations_curves: the 48 final checkpoints, C4 and OSCAR (2 families, partial
  pooling), law data_constrained. Each model size has one token count, so the held-out 20%
  is all 16 runs of the largest size and training sees two (N, D) points per family: the
  baseline's 5-parameter form is not identified there and is reported n/a.

Prints a table (coverage of 50% and 90% intervals, median relative error of the median
prediction, CRPS, log predictive density) and writes benchmarks/backtest.json.

    python benchmarks/backtest.py [--draws 1000 --warmup 1000 --chains 4 --n-boot 1000]
"""

from __future__ import annotations

import os

# scipy's L-BFGS-B calls BLAS on 5-vectors: threads only add hand-off overhead (the baseline
# also limits them itself when it can); set before numpy loads
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale.io import atomic_write_text  # noqa: E402

CASES = [
    {"name": "chinchilla", "dataset": "chinchilla", "load": {"epoch_subset": True}, "law": "chinchilla"},
    {"name": "datablations", "dataset": "datablations", "load": {}, "law": "data_constrained"},
    {"name": "gadre", "dataset": "gadre", "load": {}, "law": "chinchilla"},
    {"name": "gadre (overtrain)", "dataset": "gadre", "load": {}, "law": "overtrain"},
    {"name": "datablations_curves", "dataset": "datablations_curves", "load": {}, "law": "data_constrained"},
]


def _diag(fit) -> dict:
    d = fit.diagnose()
    return {"ok": d.ok, "divergences": d.divergences, "max_r_hat": d.max_r_hat, "min_ess_bulk": d.min_ess_bulk,
            "min_ess_tail": d.min_ess_tail}


def run_case(case: dict, args: argparse.Namespace) -> dict:
    df = bs.datasets.load(case["dataset"], **case["load"])
    fit_kwargs = {"draws": args.draws, "warmup": args.warmup, "chains": args.chains, "seed": args.seed,
                  "warn": False}
    base_kwargs = {"grid": args.grid, "n_boot": args.n_boot, "seed": args.seed}
    t0 = time.perf_counter()
    bt = bs.backtest(df, law=case["law"], holdout=0.2, by="compute", fit_kwargs=fit_kwargs,
                     baseline_kwargs=base_kwargs, seed=args.seed)
    attempts = [{"target_accept": 0.8, "centred": "auto", "wall_s": time.perf_counter() - t0, **_diag(bt.fit)}]
    # divergences: smaller steps first; then, with several families, the non-centred form of the
    # partially pooled parameters (a funnel when the population scale is mostly prior)
    retries = [{"target_accept": 0.95}]
    if bt.fit.data.n_families > 1:
        retries.append({"target_accept": 0.95, "centred": False})
    for extra in retries:
        if bt.fit.diagnose().divergences == 0:
            break
        t0 = time.perf_counter()
        bt = bs.backtest(df, law=case["law"], holdout=0.2, by="compute", fit_kwargs={**fit_kwargs, **extra},
                         baseline_kwargs=base_kwargs, seed=args.seed)
        attempts.append({"centred": "auto", **extra, "wall_s": time.perf_counter() - t0, **_diag(bt.fit)})
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("cases", "out")}
    out = {"case": case["name"], "dataset": case["dataset"], "load": case["load"], "runs": len(df),
           "settings": settings, "fit_attempts": attempts, **bt.to_dict()}
    out["baseline_params"] = {fam: b.summary().to_dict(orient="index") for fam, b in bt.baseline.items()}
    return out


def show(results: list[dict]) -> None:
    head = (f"{'dataset':<20} {'law':<17} {'train/test':>10} {'method':<9} {'interval':<11} {'cov50':>6} "
            f"{'cov90':>6} {'width90':>8} {'med.rel.err':>11} {'CRPS':>7} {'log dens':>8} {'extrap':>6}")
    print("\n" + head)
    print("-" * len(head))
    for r in results:
        for s in r["scores"]:
            cov50, cov90 = s.get("coverage_50"), s.get("coverage_90")
            if not s["n_test"]:
                print(f"{r['case']:<20} {r['law']:<17} {r['n_train']:>4}/{r['n_test']:<5} {s['method']:<9} "
                      f"{s['kind']:<11} {'n/a':>6} {'n/a':>6}")
                continue
            lpd = s["log_score"]
            print(f"{r['case']:<20} {r['law']:<17} {r['n_train']:>4}/{r['n_test']:<5} {s['method']:<9} "
                  f"{s['kind']:<11} {cov50:>6.2f} {cov90:>6.2f} {100 * s['width_90']:>7.2f}% "
                  f"{100 * s['median_rel_error']:>10.2f}% {s['crps']:>7.4f} "
                  f"{'' if lpd is None else f'{lpd:8.2f}':>8} {s['mean_extrapolation']:>6.2f}")
        last = r["fit_attempts"][-1]
        print(f"{'':<20} fit: target_accept {last['target_accept']}, centred {last['centred']}, "
              f"{last['divergences']} divergences, "
              f"max R-hat {last['max_r_hat']:.3f}, min bulk ESS {last['min_ess_bulk']:.0f}, "
              f"{last['wall_s']:.0f} s")
        for note in r["notes"]:
            print(f"{'':<20} note: {note}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--grid", default="coarse", choices=["coarse", "full"])
    ap.add_argument("--cases", default=",".join(c["name"] for c in CASES),
                    help="comma-separated case names (default: all)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("backtest.json"))
    args = ap.parse_args(argv)
    wanted = [c.strip() for c in args.cases.split(",")]
    unknown = sorted(set(wanted) - {c["name"] for c in CASES})
    if unknown:
        ap.error(f"unknown cases {unknown}")
    # a run of some cases replaces those cases in an existing file and keeps the others
    previous = json.loads(args.out.read_text())["results"] if args.out.exists() else []
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.DataWarning)
        for case in CASES:
            if case["name"] in wanted:
                t0 = time.perf_counter()
                results.append(run_case(case, args))
                print(f"{case['name']}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    show(results)
    done = {r["case"] for r in results}
    order = [c["name"] for c in CASES]
    merged = sorted([r for r in previous if r["case"] not in done and r["case"] in order] + results,
                    key=lambda r: order.index(r["case"]))
    atomic_write_text(args.out, json.dumps({"results": merged}, indent=2, default=str))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
