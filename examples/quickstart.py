"""Quickstart: fit the Chinchilla law to the bundled runs and extrapolate.

Fits L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022) to Epoch AI's 245
digitised Chinchilla runs, prints the posterior summary and diagnostics, and
predicts the loss of a 70B-parameter model trained on 1.4T tokens with a 90%
predictive interval; the fit is saved and reloaded.

    python examples/quickstart.py                  # full settings (~1 min on 2 cores)
    python examples/quickstart.py --tiny           # seconds; for smoke tests
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

import bayescale as bs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="100 draws, 100 warmup, 2 chains")
    parser.add_argument("--out", type=Path, default=None, help="where to save the fit (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.draws, args.warmup, args.chains = 100, 100, 2

    df = bs.datasets.load("chinchilla")
    fit = bs.fit(df, law="chinchilla", draws=args.draws, warmup=args.warmup, chains=args.chains, seed=0)
    print(fit.summary()[["mean", "sd", "q5", "q50", "q95", "ess_bulk", "r_hat"]].round(4))
    print(fit.diagnose())

    new = pd.DataFrame({"N": [7e10], "D": [1.4e12]})
    pred = fit.predict(new, interval=0.9)
    row = pred.iloc[0]
    print(f"70B params, 1.4T tokens: loss {row['median']:.3f} nats/token, "
          f"90% interval [{row['lower']:.3f}, {row['upper']:.3f}], "
          f"{row['extrapolation']:.2f} decades of compute beyond the data")

    out = args.out or Path(tempfile.mkdtemp()) / "chinchilla.nc"
    fit.save(out)
    again = bs.load_fit(out)
    assert again.predict(new).equals(pred), "a reloaded fit must predict identically"
    print(f"saved to {out} and reloaded")


if __name__ == "__main__":
    main()
