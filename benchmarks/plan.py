"""Budget planning: speed of bs.plan, closed-form reproductions, and a risk-averse plan on a real posterior.

1. Speed: bs.plan over a real 4000-draw posterior and 1000 candidate model
   sizes (the coarse grid; two finer float64 passes and the alternatives
   follow), per risk measure, cold (first call, including JIT compilation) and
   warm (median of repeats); beside two references that use only the public
   prediction API: one vectorised ``fit.predictive_draws`` call over the 1000
   candidates, and a loop of one call per candidate (timed on 50, scaled to 1000).
2. Reproductions with point-mass posteriors (``Fit.from_draws``): Hoffmann et
   al. (2022)'s closed-form optimum and Muennighoff et al. (2023)'s data-constrained
   allocation (their README's ``optimal_allocation``).
3. A case where the CVaR(0.9) plan differs from the risk-neutral plan: the
   data-constrained law on the 182-run datablations set with the base law fixed
   at Muennighoff's C4 values and R_D*, R_N* sampled (Student-t likelihood,
   bs.fit defaults), 25B unique tokens and 1e22 FLOPs, the scenario of their
   Figure 1; why they differ (which draws make the upper tail), and how stable
   the difference is under a bootstrap of the draws.

    python benchmarks/plan.py [--fit /tmp/dc_fit.nc] [--repeats 5]

``--fit`` reuses a saved posterior when the file exists and saves the one it
fits otherwise. Writes benchmarks/plan.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale.decide import cvar
from bayescale.fitting import Fit
from bayescale.io import atomic_write_text

MUENNIGHOFF_BASE = {"E": math.exp(0.6254804), "A": math.exp(6.255414), "B": math.exp(7.3049974), "alpha": 0.3526596}
MUENNIGHOFF_R = {"R_D_star": 15.387756, "R_N_star": 5.309743}
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
CASE_U, CASE_C = 25e9, 1e22


def real_posterior(path: Path | None, draws: int, warmup: int, chains: int) -> tuple[Fit, dict]:
    if path is not None and path.exists():
        return bs.load_fit(path), {"source": str(path), "fitted_here": False}
    from bayescale.inference import enable_compilation_cache

    enable_compilation_cache()
    t0 = time.perf_counter()
    fit = bs.fit(bs.datasets.load("datablations"), law="data_constrained_tied", fixed=MUENNIGHOFF_BASE,
                 draws=draws, warmup=warmup, chains=chains, progress=False,
                 discrepancy=None)  # the README's plan table was measured with the plain model
    info = {"source": "fitted", "fitted_here": True, "wall_s": time.perf_counter() - t0}
    if path is not None:
        fit.save(path)
    return fit, info


def timed(fn, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return cold, float(np.median(warm))


def speed(fit: Fit, repeats: int) -> dict:
    out: dict = {"draws": fit.n_draws, "candidates": 1000, "cpu_count": os.cpu_count(),
                 "load_average_1min": os.getloadavg()[0], "rows": []}
    for risk in ("mean", "cvar:0.9", "q:0.9", "cara:50"):
        cold, warm = timed(lambda r=risk: bs.plan(fit, CASE_C, unique_tokens=CASE_U, risk=r), repeats)
        out["rows"].append({"method": f"bs.plan risk={risk}", "cold_s": cold, "warm_s": warm})
    N = np.geomspace(1e8, 1e11, 1000)
    frame = pd.DataFrame({"N": N, "D": CASE_C / (6 * N), "U": CASE_U})

    def vectorised():
        L = fit.predictive_draws(frame, kind="mean").values
        return int(np.argmin(L.mean(axis=0)))

    cold, warm = timed(vectorised, max(1, repeats // 2))
    out["rows"].append({"method": "reference: one fit.predictive_draws call over 1000 candidates + argmin of the mean",
                        "cold_s": cold, "warm_s": warm})
    t0 = time.perf_counter()
    for n in N[::20]:
        fit.predictive_draws(pd.DataFrame({"N": [n], "D": [CASE_C / (6 * n)], "U": [CASE_U]}), kind="mean")
    loop = (time.perf_counter() - t0) * 20
    out["rows"].append({"method": "reference: loop of fit.predictive_draws, one call per candidate (50 timed, x20)",
                        "cold_s": None, "warm_s": loop})
    return out


def reproductions() -> dict:
    chin = Fit.from_draws(HOFFMANN, bs.datasets.load("chinchilla", epoch_subset=True), likelihood="gaussian")
    a, b = HOFFMANN["alpha"], HOFFMANN["beta"]
    G = (a * HOFFMANN["A"] / (b * HOFFMANN["B"])) ** (1 / (a + b))
    rows = []
    for C in (1e21, 5.76e23, 1e25):
        p = bs.plan(chin, C)
        n_star = G * (C / 6) ** (b / (a + b))
        rows.append({"budget": C, "N": p.N, "N_closed_form": n_star, "rel_error": p.N / n_star - 1,
                     "D": p.D, "D_closed_form": C / (6 * n_star)})
    dc = Fit.from_draws({**MUENNIGHOFF_BASE, "beta": MUENNIGHOFF_BASE["alpha"], **MUENNIGHOFF_R},
                        bs.datasets.load("datablations"), law="data_constrained", likelihood="gaussian")
    muen = []
    for C, want in ((6 * 8.67e9 * 178e9, (6.8e9, 227e9, 9.1)), (1e22, (7.03e9, 237e9, 9.49))):
        p = bs.plan(dc, C, unique_tokens=25e9)
        muen.append({"budget": C, "N": p.N, "D": p.D, "epochs": p.epochs, "published": list(want),
                     "rel_errors": [p.N / want[0] - 1, p.D / want[1] - 1, p.epochs / want[2] - 1]})
    return {"hoffmann_closed_form": rows, "muennighoff_allocation": muen}


def plan_row(p) -> dict:
    q = p.loss_quantiles
    return {"N": p.N, "D": p.D, "epochs": p.epochs, "tokens_per_param": p.tokens_per_param,
            "loss_mean": p.loss_mean, "loss_q05": q[0.05], "loss_q50": q[0.5], "loss_q95": q[0.95],
            "cvar90": float(cvar(0.9)(p.loss_draws))}


def cvar_case(fit: Fit, seed: int = 0) -> dict:
    from scipy import stats

    neutral = bs.plan(fit, CASE_C, unique_tokens=CASE_U, risk="mean")
    averse = bs.plan(fit, CASE_C, unique_tokens=CASE_U, risk="cvar:0.9")
    post = fit.datatree["posterior"]
    rd, rn = post["R_D_star"].values.ravel(), post["R_N_star"].values.ravel()
    Lm, Lc = neutral.loss_draws, averse.loss_draws
    tail = Lm >= np.quantile(Lm, 0.9)
    best = Lm <= np.quantile(Lm, 0.1)
    d = Lc - Lm
    alpha, A, B = (MUENNIGHOFF_BASE[k] for k in ("alpha", "A", "B"))
    n_opt_u = (A / B) ** (1 / alpha) * CASE_U  # N_opt(U) = G (U G)^(beta/alpha), alpha = beta
    # stability: redo the choice on bootstrap resamples of the draws (same candidate grid, public API)
    grid = np.geomspace(2e9, 7e9, 161)
    frame = pd.DataFrame({"N": grid, "D": CASE_C / (6 * grid), "U": CASE_U})
    L = fit.predictive_draws(frame, kind="mean").values.astype(np.float64)
    rng = np.random.default_rng(seed)
    cv = cvar(0.9)
    smaller = []
    for _ in range(200):
        rows = L[rng.integers(0, L.shape[0], L.shape[0])]
        smaller.append(grid[np.argmin(cv(rows))] < grid[np.argmin(rows.mean(axis=0))])
    scan = []
    for U in (25e9, 1e10, 4e9):
        for C in (1e21, 1e22, 1e23):
            pm = bs.plan(fit, C, unique_tokens=U)
            pc = bs.plan(fit, C, unique_tokens=U, risk="cvar:0.9")
            scan.append({"unique_tokens": U, "budget": C, "N_mean": pm.N, "N_cvar": pc.N, "epochs_mean": pm.epochs,
                         "epochs_cvar": pc.epochs, "N_change": pc.N / pm.N - 1,
                         "p_cvar_beats_mean": float(pc.alternatives.loc["risk_neutral", "p_plan_beats"])})
    return {
        "unique_tokens": CASE_U, "budget": CASE_C,
        "posterior": {k: [float(x) for x in np.quantile(v, [0.05, 0.5, 0.95])] for k, v in
                      (("R_D_star", rd), ("R_N_star", rn))},
        "spearman_R_D_star_R_N_star": float(stats.spearmanr(rd, rn)[0]),
        "N_opt_of_U": n_opt_u,
        "risk_neutral": plan_row(neutral), "cvar90": plan_row(averse),
        "p_cvar_plan_beats_neutral": float(averse.alternatives.loc["risk_neutral", "p_plan_beats"]),
        "expected_regret_cvar_vs_neutral": float(averse.alternatives.loc["risk_neutral", "expected_regret"]),
        "mean_cost_of_cvar_plan": float(d.mean()),
        "skewness_neutral_loss": float(stats.skew(Lm)),
        "worst_decile_of_neutral": {"R_N_star_median": float(np.median(rn[tail])),
                                    "R_D_star_median": float(np.median(rd[tail])),
                                    "cvar_minus_neutral_loss": float(d[tail].mean())},
        "best_decile_of_neutral": {"R_N_star_median": float(np.median(rn[best])),
                                   "R_D_star_median": float(np.median(rd[best])),
                                   "cvar_minus_neutral_loss": float(d[best].mean())},
        "spearman_loss_neutral_R_N_star": float(stats.spearmanr(Lm, rn)[0]),
        "spearman_loss_neutral_R_D_star": float(stats.spearmanr(Lm, rd)[0]),
        "bootstrap_share_cvar_smaller": float(np.mean(smaller)),
        "alternatives_cvar_plan": {str(k): {c: float(v) for c, v in r.items()}
                                   for k, r in averse.alternatives.iterrows()},
        "scan": scan,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", type=Path, default=None, help="saved posterior to reuse, or where to save the one fitted")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("plan.json"))
    args = ap.parse_args(argv)

    fit, source = real_posterior(args.fit, args.draws, args.warmup, args.chains)
    d = fit.diagnose()
    results: dict = {"posterior": {**source, "law": fit.law, "dataset": "datablations (182 runs)",
                                   "fixed": fit.spec.fixed, "likelihood": fit.spec.likelihood,
                                   "sampler": dataclasses.asdict(fit.sampler), "draws": fit.n_draws,
                                   "diagnostics_ok": d.ok, "max_r_hat": d.max_r_hat, "min_ess_bulk": d.min_ess_bulk,
                                   "divergences": d.divergences}}
    results["speed"] = sp = speed(fit, args.repeats)
    print(f"\n1. speed: {sp['draws']} draws x {sp['candidates']} candidates, {sp['cpu_count']} CPUs "
          f"(1-min load average {sp['load_average_1min']:.1f})")
    print(f"  {'method':<92} {'cold s':>8} {'warm s':>8}")
    for r in sp["rows"]:
        cold = "-" if r["cold_s"] is None else f"{r['cold_s']:.3f}"
        print(f"  {r['method']:<92} {cold:>8} {r['warm_s']:>8.3f}")

    results["reproductions"] = rep = reproductions()
    print("\n2. point-mass reproductions")
    for r in rep["hoffmann_closed_form"]:
        print(f"  Hoffmann, C = {r['budget']:.3g}: N {r['N']:.5g} vs closed form {r['N_closed_form']:.5g} "
              f"({r['rel_error']:+.2e})")
    for r in rep["muennighoff_allocation"]:
        n, d, e = r["published"]
        print(f"  Muennighoff, C = {r['budget']:.4g}, U = 25B: N {r['N']:.4g} (README {n:.3g}), D {r['D']:.4g} "
              f"({d:.3g}), epochs {r['epochs']:.3f} ({e})")

    results["cvar_case"] = case = cvar_case(fit)
    print(f"\n3. CVaR(0.9) vs risk-neutral, {CASE_U:.3g} unique tokens, {CASE_C:.3g} FLOPs "
          f"(R_D* 90%: {case['posterior']['R_D_star']}, R_N* 90%: {case['posterior']['R_N_star']})")
    for name in ("risk_neutral", "cvar90"):
        r = case[name]
        print(f"  {name:<13} N {r['N']:.4g}  D {r['D']:.4g}  epochs {r['epochs']:.2f}  mean loss {r['loss_mean']:.5f}  "
              f"q95 {r['loss_q95']:.5f}  CVaR90 {r['cvar90']:.5f}")
    w, b = case["worst_decile_of_neutral"], case["best_decile_of_neutral"]
    print(f"  P(CVaR plan beats neutral) {case['p_cvar_plan_beats_neutral']:.3f}; mean cost "
          f"{case['mean_cost_of_cvar_plan']:+.5f} nats; worst decile of the neutral plan (median R_N* "
          f"{w['R_N_star_median']:.2f}, R_D* {w['R_D_star_median']:.0f}): CVaR plan {w['cvar_minus_neutral_loss']:+.5f}; "
          f"best decile (R_N* {b['R_N_star_median']:.2f}, R_D* {b['R_D_star_median']:.0f}): {b['cvar_minus_neutral_loss']:+.5f}")
    print(f"  N_opt(U) = {case['N_opt_of_U']:.3g}; spearman(R_D*, R_N*) {case['spearman_R_D_star_R_N_star']:.2f}; "
          f"bootstrap: CVaR plan smaller in {case['bootstrap_share_cvar_smaller']:.0%} of 200 resamples")
    print("  scan (U, C): N_mean -> N_cvar")
    for r in case["scan"]:
        print(f"    U {r['unique_tokens']:.2g} C {r['budget']:.0e}: {r['N_mean']:.3g} ({r['epochs_mean']:.3g} ep) -> "
              f"{r['N_cvar']:.3g} ({r['epochs_cvar']:.3g} ep), {r['N_change']:+.1%}")

    atomic_write_text(args.out, json.dumps(results, indent=2, default=float))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
