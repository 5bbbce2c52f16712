"""Clean posteriors on every ladder at the defaults, over seeds, and a posterior that did not move.

    python benchmarks/pooling.py [--cases xlstm,gemstones,...] [--seeds 0,1,2] [--reference gadre,xlstm]

Two checks (issue "Pooling across families on real ladders"):

1. ``bs.fit(df)`` at every default (law error included) on each (N, D) ladder in
   nats/token, for each seed: divergences, max R-hat, min bulk and tail ESS, leapfrog
   steps per draw, wall time, whether the one automatic remedy ran. Cases: the multi-family
   ladders ``xlstm`` (5 families, 407 runs; needs the shared data folder), ``gemstones``
   (20 shapes, 199 cooldown runs), ``gadre`` (3 training sets, chinchilla) and ``curves``
   (the datablations repetition curves' 48 finals, data_constrained), and the
   single-family bundled ``chinchilla`` and ``datablations`` (data_constrained).
2. ``--reference``: the plain model at the defaults against a long reference run of the
   same model (8 chains x 4000 draws after 4000 warmup, target acceptance 0.99): each
   population parameter's and population scale's median must lie within
   ``3.5 sqrt(MCSE_new^2 + MCSE_ref^2)`` of the reference's, the MCSE of a median from
   arviz-stats (``mcse(method="median")``).

Each fit runs in this process, one after another, with the compilation cache in a
temporary folder. Prints a table and writes ``benchmarks/pooling.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).parent
CASES = {
    "xlstm": ("xlstm", {}, "chinchilla"),
    "gemstones": ("gemstones", {}, "chinchilla"),
    "gadre": ("gadre", {}, "chinchilla"),
    "curves": ("datablations_curves", {}, "data_constrained"),
    "chinchilla": ("chinchilla", {}, "chinchilla"),
    "datablations": ("datablations", {}, "data_constrained"),
}
REF = {"draws": 4000, "warmup": 4000, "chains": 8, "target_accept": 0.99}
Z = 3.5


def _stats(fit, wall: float) -> dict:
    d = fit.diagnose()
    disc = fit.discrepancy
    return {"wall_s": round(wall, 2), "ok": d.ok, "divergences": d.divergences, "max_r_hat": d.max_r_hat,
            "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail,
            "leapfrog_per_draw": float(fit.datatree["sample_stats"]["n_steps"].values.mean()),
            "messages": list(d.messages), "remedy": d.remedy, "families": len(fit.families), "runs": fit.data.n_rows,
            "internal_fits": [] if disc is None else list(disc.fits)}


def _load(case: str):
    import bayescale as bs

    name, opts, law = CASES[case]
    return bs.datasets.load(name, **opts), law


def seeds_check(cases: list[str], seeds: list[int]) -> dict:
    import bayescale as bs

    out: dict = {}
    for case in cases:
        df, law = _load(case)
        out[case] = {}
        for seed in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                fit = bs.fit(df, law=law, seed=seed, progress=False)
                out[case][str(seed)] = _stats(fit, time.perf_counter() - t)
            s = out[case][str(seed)]
            print(f"{case:12s} seed {seed}: {s['wall_s']:6.1f} s  ok={s['ok']}  div {s['divergences']}  "
                  f"R-hat {s['max_r_hat']:.3f}  ESS bulk {s['min_ess_bulk']:.0f} tail {s['min_ess_tail']:.0f}  "
                  f"steps {s['leapfrog_per_draw']:.0f}" + ("  (remedied)" if s["remedy"] else ""), flush=True)
    return out


def _population_rows(fit) -> list[str]:
    s = fit.summary()
    law = fit.spec.law_obj
    rows = [p.sampled_name for p in law.params if p.name not in fit.spec.fixed]
    rows += [f"tau_{r}" for r in rows if f"tau_{r}" in s.index]
    return [r for r in rows + ["sigma"] if r in s.index]


def reference_check(cases: list[str]) -> dict:
    import arviz_stats as azs
    import numpy as np

    import bayescale as bs

    out: dict = {}
    for case in cases:
        df, law = _load(case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            new = bs.fit(df, law=law, seed=0, progress=False, discrepancy=None)
            t_new = time.perf_counter() - t
            t = time.perf_counter()
            ref = bs.fit(df, law=law, seed=100, progress=False, discrepancy=None, **REF)
            t_ref = time.perf_counter() - t
        rows = {}
        for name in _population_rows(new):
            a = np.asarray(new.datatree["posterior"][name].values, np.float64)
            b = np.asarray(ref.datatree["posterior"][name].values, np.float64)
            ma, mb = float(np.median(a)), float(np.median(b))
            ea, eb = float(azs.mcse(a, method="median")), float(azs.mcse(b, method="median"))
            z = abs(ma - mb) / np.hypot(ea, eb)
            rows[name] = {"median_new": ma, "median_ref": mb, "mcse_new": ea, "mcse_ref": eb, "z": float(z),
                          "ok": bool(z <= Z)}
            print(f"{case:12s} {name:12s} new {ma:.5g} (MCSE {ea:.2g})  ref {mb:.5g} (MCSE {eb:.2g})  "
                  f"z {z:.2f}{'' if z <= Z else '  > 3.5'}", flush=True)
        out[case] = {"rows": rows, "new": _stats(new, t_new), "reference": _stats(ref, t_ref), "settings": REF,
                     "all_within": all(r["ok"] for r in rows.values())}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--reference", default="", help="cases for the long reference comparison, e.g. gadre,xlstm")
    ap.add_argument("--out", type=Path, default=HERE / "pooling.json")
    args = ap.parse_args(argv)
    import os

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ.setdefault("BAYESCALE_CACHE_DIR", cache)
        if args.cases:
            results["seeds"] = {**results.get("seeds", {}),
                                **seeds_check(args.cases.split(","), [int(s) for s in args.seeds.split(",")])}
        if args.reference:
            results["reference"] = {**results.get("reference", {}), **reference_check(args.reference.split(","))}
    import sys

    sys.path.insert(0, str(HERE.parent))
    from bayescale.io import atomic_write_text

    atomic_write_text(args.out, json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
