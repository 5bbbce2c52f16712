"""Practical law on repeated data: fit on Muennighoff et al.'s runs, predict a held-out 8.7B run.

Fits L = E + (L0 - E) h/(1+h), h = a/N^alpha + b/D^beta + c N^gamma/U^delta
(arXiv:2605.09189; D tokens seen, U unique tokens) to the bundled data-constrained
runs of Muennighoff et al. 2023 (C4, up to 9000 epochs over the unique data). L0, the
loss of a model that has learnt nothing, is ln V for the GPT-2 tokenizer's V = 50257
tokens that those runs used; it is supplied, not fitted.

The 8.7B-parameter runs are held out; the script predicts the one trained for 178B
tokens over 44B unique tokens (4 epochs) with a 90% predictive interval and prints
its observed loss.

NUTS runs at target_accept 0.95: at the default 0.8 the full settings gave ~20
divergences in the floor E's tail; at 0.95 none (R-hat 1.003, ESS > 590).

    python examples/practical.py                   # full settings
    python examples/practical.py --tiny            # seconds; for smoke tests
"""

from __future__ import annotations

import argparse
import math

import pandas as pd

import bayescale as bs

GPT2_VOCAB = 50257


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--target-accept", type=float, default=0.95,
                        help="NUTS target acceptance (default 0.95; see the module docstring)")
    parser.add_argument("--tiny", action="store_true", help="100 draws, 100 warmup, 2 chains")
    args = parser.parse_args(argv)
    if args.tiny:
        args.draws, args.warmup, args.chains = 100, 100, 2

    df = bs.datasets.load("datablations")
    train = df[df["N"] < 8e9]
    held = df[df["N"] >= 8e9]
    target = held[held["U"] == 4.4e10]
    print(f"fitting {len(train)} runs (N up to {train['N'].max():.3g}, up to {train['epochs'].max():.0f} "
          f"epochs); held out: {len(held)} runs at N = 8.67e9")

    fit = bs.fit(train, law="practical", fixed={"L0": math.log(GPT2_VOCAB)},
                 draws=args.draws, warmup=args.warmup, chains=args.chains, seed=0,
                 target_accept=args.target_accept)
    cols = ["mean", "sd", "q5", "q50", "q95", "ess_bulk", "r_hat"]
    print(fit.summary()[cols].to_string(float_format=lambda v: f"{v:.4g}"))
    print(fit.diagnose())

    new = pd.DataFrame({"N": [8.67e9], "D": [1.78e11], "U": [4.4e10]})
    row = fit.predict(new, interval=0.9).iloc[0]
    observed = float(target["loss"].iloc[0])
    print(f"8.67B params, 178B tokens over 44B unique ({row['D'] / row['U']:.2f} epochs): "
          f"loss {row['median']:.3f} nats/token, 90% interval [{row['lower']:.3f}, {row['upper']:.3f}], "
          f"{row['extrapolation']:.2f} decades of compute beyond the data; observed {observed:.3f} "
          f"({100 * (row['median'] - observed) / observed:+.2f}%)")


if __name__ == "__main__":
    main()
