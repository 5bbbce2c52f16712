"""Repetition decay: how much is a repeated token worth? (Muennighoff et al. 2023)

Fits the data-constrained law (alpha = beta, as the paper) to the 182 datablations
runs with the base law fixed at the paper's values and the Laplace likelihood (the
small-delta limit of their Huber objective), prints the posterior of R_D* and R_N*
next to the published point fit (15.4, 5.3), and the value of 4 epochs over U
unique tokens relative to 4U fresh tokens.

    python examples/data_constrained.py            # full settings (~30 s on 2 cores)
    python examples/data_constrained.py --tiny     # smoke test
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd

import bayescale as bs

BASE = {"E": math.exp(0.6254804), "A": math.exp(6.255414), "B": math.exp(7.3049974), "alpha": 0.3526596}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--tiny", action="store_true", help="100 draws, 100 warmup, 2 chains")
    args = ap.parse_args(argv)
    if args.tiny:
        args.draws, args.warmup, args.chains = 100, 100, 2

    df = bs.datasets.load("datablations")
    fit = bs.fit(df, law="data_constrained_tied", fixed=BASE, likelihood="laplace",
                 draws=args.draws, warmup=args.warmup, chains=args.chains)
    s = fit.summary()
    for name, published in (("R_D_star", 15.39), ("R_N_star", 5.31)):
        print(f"{name}: median {s.loc[name, 'q50']:.1f}, 90% interval [{s.loc[name, 'q5']:.1f}, "
              f"{s.loc[name, 'q95']:.1f}] (published point fit {published})")
    r = fit.datatree["posterior"]["R_D_star"].values.ravel()
    value = (1 + r * (1 - np.exp(-3 / r))) / 4
    lo, med, hi = np.quantile(value, [0.05, 0.5, 0.95])
    print(f"4 epochs over U tokens are worth {med:.1%} of 4U fresh tokens (90%: {lo:.1%} - {hi:.1%})")
    pred = fit.predict(pd.DataFrame({"N": [2.8e9], "D": [5.5e10], "U": [1.25e9]}), interval=0.9)
    row = pred.iloc[0]
    print(f"2.8B params, 55B tokens over 1.25B unique (44 epochs): loss {row['median']:.3f} "
          f"[{row['lower']:.3f}, {row['upper']:.3f}]")
    print(fit.diagnose())


if __name__ == "__main__":
    main()
