"""Reproduce Besiroglu et al. (2024)'s Chinchilla refit with bs.fit at its defaults.

Fits the Chinchilla law to Epoch AI's digitised runs (240 with the 5 highest-loss
runs dropped, as Epoch did, and all 245), prints our posterior medians and 95%
central intervals beside Epoch's bootstrap 95% intervals, and writes
benchmarks/epoch_reproduction.json.

    python benchmarks/epoch_reproduction.py [--draws 1000 --warmup 1000 --chains 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import bayescale as bs
from bayescale.io import atomic_write_text

# Besiroglu et al. 2024, arXiv:2404.10102 (epoch_chinchilla/SOURCE.md): estimate and 95% bootstrap CI.
EPOCH = {
    "E": (1.8169, 1.769, 1.871),
    "A": (482.01, 285.2, 743.6),
    "B": (2085.43, 1042.4, 5810.3),
    "alpha": (0.3478, 0.317, 0.373),
    "beta": (0.3658, 0.331, 0.415),
}


def reproduce(subset: bool, draws: int, warmup: int, chains: int, seed: int) -> dict:
    df = bs.datasets.load("chinchilla", epoch_subset=subset)
    t0 = time.perf_counter()
    fit = bs.fit(df, law="chinchilla", draws=draws, warmup=warmup, chains=chains, seed=seed, progress=False,
                 discrepancy=None)  # a check of the posterior: the discrepancy never changes it
    wall = time.perf_counter() - t0
    post = fit.datatree["posterior"]
    d = fit.diagnose()
    rows = {}
    for name, (est, lo, hi) in EPOCH.items():
        x = post[name].values.ravel()
        q = np.quantile(x, [0.025, 0.5, 0.975])
        rows[name] = {"median": q[1], "lo95": q[0], "hi95": q[2], "epoch_estimate": est, "epoch_lo95": lo,
                      "epoch_hi95": hi, "median_inside_epoch_ci": bool(lo <= q[1] <= hi)}
    return {"runs": len(df), "wall_s": wall, "params": rows,
            "diagnostics": {"ok": d.ok, "divergences": d.divergences, "max_r_hat": d.max_r_hat,
                            "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail},
            "mean_leapfrog_steps": float(fit.datatree["sample_stats"]["n_steps"].mean())}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("epoch_reproduction.json"))
    args = ap.parse_args(argv)
    results = {}
    for subset in (True, False):
        r = reproduce(subset, args.draws, args.warmup, args.chains, args.seed)
        results[f"{r['runs']}_runs"] = r
        print(f"\n{r['runs']} runs (wall {r['wall_s']:.1f} s, {r['mean_leapfrog_steps']:.0f} leapfrog steps/draw, "
              f"diagnostics {r['diagnostics']})")
        print(f"{'param':<6} {'median':>9} {'our 95%':>22} {'Epoch est':>10} {'Epoch 95%':>22}  inside")
        for name, p in r["params"].items():
            print(f"{name:<6} {p['median']:>9.4g} [{p['lo95']:>9.4g}, {p['hi95']:>9.4g}] {p['epoch_estimate']:>10.4g} "
                  f"[{p['epoch_lo95']:>9.4g}, {p['epoch_hi95']:>9.4g}]  {p['median_inside_epoch_ci']}")
    atomic_write_text(args.out, json.dumps(results, indent=2, default=str))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
