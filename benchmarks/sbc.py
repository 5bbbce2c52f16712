"""Simulation-based calibration for chinchilla, data_constrained and a partially
pooled chinchilla (Talts et al. 2018), 100+ replications each.

Prints a table of chi-square p-values per parameter (Bonferroni: uniform when
p > 0.01/K), divergence counts, and writes benchmarks/sbc.json and rank
histograms to benchmarks/sbc/<case>.png.

    python benchmarks/sbc.py [--reps 100] [--cases chinchilla,data_constrained,partial]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.io import atomic_write_text
from bayescale.sbc import run_sbc
from bayescale.simulate import ladder

HERE = Path(__file__).parent


def designs() -> dict[str, dict]:
    """Fixed designs: a 30-run single-family ladder; 3 families x 12 runs; a repetition grid."""
    rng = np.random.default_rng(0)
    n = 40
    U = np.exp(rng.uniform(np.log(1e8), np.log(1e10), n))
    repeated = pd.DataFrame({"N": np.exp(rng.uniform(np.log(1e7), np.log(3e9), n)),
                             "U": U, "D": U * np.exp(rng.uniform(0, np.log(60), n))})
    return {
        "chinchilla": {"design": ladder(30, families=1, seed=1), "law": "chinchilla", "hierarchy": "complete"},
        "data_constrained": {"design": repeated, "law": "data_constrained", "hierarchy": "complete"},
        "partial": {"design": ladder(12, families=3, seed=2), "law": "chinchilla", "hierarchy": "partial"},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--cases", default="chinchilla,data_constrained,partial")
    ap.add_argument("--progress", action="store_true", help="print one line per replication")
    ap.add_argument("--out", type=Path, default=HERE / "sbc.json")
    args = ap.parse_args(argv)
    # Each finished case is written at once and merged with cases already in the file,
    # so a long run stopped part-way keeps what it finished.
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for case in args.cases.split(","):
        cfg = designs()[case]
        t0 = time.perf_counter()
        res = run_sbc(cfg["design"], law=cfg["law"], hierarchy=cfg["hierarchy"], reps=args.reps, draws=args.draws,
                      warmup=args.warmup, chains=args.chains, progress=args.progress)
        wall = time.perf_counter() - t0
        table = res.table()
        res.plot(HERE / "sbc" / f"{case}.png")
        results[case] = {
            "law": cfg["law"], "hierarchy": cfg["hierarchy"], "reps": res.reps, "n_ranks": res.n_ranks,
            "wall_s": wall, "reps_with_divergences": int((res.divergences > 0).sum()),
            "total_divergences": int(res.divergences.sum()), "reps_failing_diagnostics": int((~res.diagnostics_ok).sum()),
            "median_min_ess_bulk": float(np.median(res.min_ess_bulk)),
            "all_uniform": bool(table["uniform"].all()), "table": table.reset_index().to_dict(orient="records"),
        }
        print(f"\n{case}: {res.reps} replications in {wall:.0f} s; {results[case]['reps_with_divergences']} with "
              f"divergences, {results[case]['reps_failing_diagnostics']} failing diagnostics; Bonferroni "
              f"threshold {table['threshold'].iloc[0]:.4f}")
        print(table[["chi2", "p_value", "uniform", "mean_rank_fraction"]].round(4).to_string(), flush=True)
        atomic_write_text(args.out, json.dumps(results, indent=2))
    print(f"\nwritten {args.out} and {HERE / 'sbc'}/*.png")


if __name__ == "__main__":
    main()
