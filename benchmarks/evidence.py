"""Evidence and Bayes factors: Chinchilla vs Kaplan forms on the Chinchilla runs.

Fits ``chinchilla`` (E + A/N^alpha + B/D^beta), ``kaplan_e`` (Kaplan et al.'s
Eq. 1.5 with a floor E) and ``kaplan`` (no floor) to Epoch AI's 240 Chinchilla
runs (Besiroglu et al. 2024), once at the default priors and once with every
Normal/LogNormal prior scale doubled (``bayescale.bridge.widen_priors``), and
estimates each log evidence by bridge sampling over several proposal seeds.
Evidence depends on prior widths in a way predictive scores do not: doubling a
weakly informative scale costs about log 2 = 0.69 nats per parameter the data
pin down, so a Bayes factor between laws with different numbers of such
parameters moves by multiples of that. PSIS-LOO is printed alongside for
contrast. Prints a table and writes benchmarks/evidence.json.

    python benchmarks/evidence.py [--draws 1000 --warmup 1000 --chains 4 --seeds 5 --refits 5]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

import bayescale as bs
from bayescale.bridge import widen_priors
from bayescale.data import validate
from bayescale.inference import build_spec, enable_compilation_cache
from bayescale.io import atomic_write_text

LAWS = ("chinchilla", "kaplan_e", "kaplan")
PAIRS = (("chinchilla", "kaplan_e"), ("chinchilla", "kaplan"))


def one_fit(df, law: str, priors, args: argparse.Namespace) -> dict:
    import arviz_stats as azs

    t0 = time.perf_counter()
    fit = bs.fit(df, law=law, priors=priors, draws=args.draws, warmup=args.warmup, chains=args.chains,
                 seed=args.seed, progress=False, warn=False, discrepancy=None)
    fit_s = time.perf_counter() - t0
    d = fit.diagnose()
    t0 = time.perf_counter()
    evs = [bs.evidence(fit, seed=s) for s in range(args.seeds)]
    ev_s = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = azs.loo(fit.datatree)
    logml = np.array([e.log_ml for e in evs])
    return {
        "law": law, "priors": {k: str(v) for k, v in (priors or {}).items()},
        "fit_wall_s": fit_s, "evidence_wall_s": ev_s, "diagnostics_ok": d.ok, "divergences": d.divergences,
        "max_r_hat": d.max_r_hat, "min_ess_bulk": d.min_ess_bulk,
        "log_ml": logml.tolist(), "log_ml_mean": float(logml.mean()),
        "log_ml_sd_over_seeds": float(logml.std(ddof=1)) if logml.size > 1 else float("nan"),
        "mc_error_mean": float(np.mean([e.mc_error for e in evs])),
        "converged": all(e.converged for e in evs), "iterations": [e.iterations for e in evs],
        "elpd_loo": float(loo.elpd), "elpd_loo_se": float(loo.se),
    }


def run(args: argparse.Namespace) -> dict:
    enable_compilation_cache()
    df = bs.datasets.load("chinchilla", epoch_subset=True)
    if args.tiny:
        df = df.iloc[::4]
    data = validate(df)
    out: dict = {"settings": vars(args), "runs": len(df), "fits": {}, "bayes_factors": {}}
    for setting in ("default", "doubled"):
        for law in LAWS:
            priors = widen_priors(build_spec(law, data)) if setting == "doubled" else None
            res = one_fit(df, law, priors, args)
            out["fits"][f"{law}/{setting}"] = res
            print(f"  {law:<10} {setting:<8} log ML {res['log_ml_mean']:9.3f} "
                  f"(sd over seeds {res['log_ml_sd_over_seeds']:.3f}, reported {res['mc_error_mean']:.3f})  "
                  f"fit {res['fit_wall_s']:.0f} s, evidence x{args.seeds} {res['evidence_wall_s']:.1f} s, "
                  f"diagnostics {'ok' if res['diagnostics_ok'] else 'FAILED'}", flush=True)
    for setting in ("default", "doubled"):
        for a, b in PAIRS:
            fa, fb = out["fits"][f"{a}/{setting}"], out["fits"][f"{b}/{setting}"]
            out["bayes_factors"][f"{a} vs {b}/{setting}"] = {
                "log_bf": fa["log_ml_mean"] - fb["log_ml_mean"],
                "mc_error": float(np.hypot(fa["mc_error_mean"], fb["mc_error_mean"])),
                "elpd_loo_diff": fa["elpd_loo"] - fb["elpd_loo"],
            }
    for law in LAWS:
        out["fits"][f"{law}/doubled"]["log_ml_change_from_default"] = (
            out["fits"][f"{law}/doubled"]["log_ml_mean"] - out["fits"][f"{law}/default"]["log_ml_mean"])
    if args.refits:
        # proposal seeds alone miss the posterior draws' own noise; fresh chains include it
        logml, err = [], []
        for k in range(1, args.refits + 1):
            fit = bs.fit(df, law="chinchilla", draws=args.draws, warmup=args.warmup, chains=args.chains,
                         seed=args.seed + k, progress=False, warn=False, discrepancy=None)
            ev = bs.evidence(fit, seed=0)
            logml.append(ev.log_ml)
            err.append(ev.mc_error)
        out["chinchilla_refits"] = {"mcmc_seeds": [args.seed + k for k in range(1, args.refits + 1)],
                                    "log_ml": logml, "sd_over_refits": float(np.std(logml, ddof=1)),
                                    "mc_error_mean": float(np.mean(err))}
    return out


def table(out: dict) -> str:
    lines = [f"Evidence on the Chinchilla runs ({out['runs']} runs), bridge sampling over "
             f"{out['settings']['seeds']} proposal seeds", ""]
    lines.append(f"{'law':<11}{'priors':<9}{'log ML':>10}{'sd(seeds)':>11}{'MC err':>8}{'elpd_loo':>10}"
                 f"{'fit s':>7}{'diag':>6}")
    for key, r in out["fits"].items():
        law, setting = key.split("/")
        lines.append(f"{law:<11}{setting:<9}{r['log_ml_mean']:>10.3f}{r['log_ml_sd_over_seeds']:>11.3f}"
                     f"{r['mc_error_mean']:>8.3f}{r['elpd_loo']:>10.2f}{r['fit_wall_s']:>7.0f}"
                     f"{'ok' if r['diagnostics_ok'] else 'FAIL':>6}")
    lines += ["", f"{'comparison':<24}{'priors':<9}{'log BF':>10}{'MC err':>8}{'elpd_loo diff':>15}"]
    for key, r in out["bayes_factors"].items():
        pair, setting = key.split("/")
        lines.append(f"{pair:<24}{setting:<9}{r['log_bf']:>10.3f}{r['mc_error']:>8.3f}{r['elpd_loo_diff']:>15.2f}")
    lines += ["", "change of log ML when every Normal/LogNormal prior scale doubles:"]
    for law in LAWS:
        lines.append(f"  {law:<11}{out['fits'][f'{law}/doubled']['log_ml_change_from_default']:>9.3f} nats")
    if "chinchilla_refits" in out:
        r = out["chinchilla_refits"]
        lines += ["", f"chinchilla refitted with {len(r['log_ml'])} further MCMC seeds: sd of log ML "
                      f"{r['sd_over_refits']:.3f} nats, mean reported MC error {r['mc_error_mean']:.3f}"]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=5, help="bridge-sampling proposal seeds per fit")
    p.add_argument("--refits", type=int, default=0,
                   help="refit chinchilla with this many further MCMC seeds (spread vs reported error)")
    p.add_argument("--tiny", action="store_true", help="a quarter of the runs and short chains (smoke test)")
    p.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = p.parse_args()
    if args.tiny:
        args.draws, args.warmup, args.chains, args.seeds, args.refits = 200, 200, 2, 2, min(args.refits, 1)
    t0 = time.perf_counter()
    out = run(args)
    out["total_wall_s"] = time.perf_counter() - t0
    print(table(out))
    settings = dict(out["settings"], out=str(args.out))
    atomic_write_text(args.out, json.dumps(dict(out, settings=settings), indent=2) + "\n")
    print(f"wrote {args.out} ({out['total_wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
