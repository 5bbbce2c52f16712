"""A 16-fit sweep timed under each executor: local, processes, ray.

4 laws x 4 leave-future-out splits on the bundled Chinchilla runs at bs.fit's default
sampler settings (4 chains x 1000 + 1000), run side by side in one process. Each
executor gets a fresh JAX compilation cache, so each pays its own compilation (a
worker loads what another worker of the same run compiled). Ray's wall time includes
starting and stopping its local instance. Prints a table and writes
benchmarks/sweep.json: wall seconds per executor, speed-up against local, tasks ok, and
whether the score columns are identical across executors.

    python benchmarks/sweep.py [--workers N] [--executors local,processes,ray]
    python benchmarks/sweep.py --quick       # 2 small fits per executor, a smoke run

Against a cluster: ``--executors ray --address auto`` on a node of a running Ray
cluster (or ``ray://head:10001``); bayescale must be installed on its workers.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import bayescale as bs
from bayescale.io import atomic_write_text
from bayescale.sweeping import SCORE_COLUMNS

HERE = Path(__file__).parent
LAWS = ["chinchilla", "kaplan_e", "overtrain", "data_constrained"]
SPLITS = [0.1, 0.2, 0.3, 0.4]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--executors", default="local,processes,ray")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--address", help="Ray cluster address for the ray executor")
    ap.add_argument("--quick", action="store_true", help="2 fits of 2 x 200 + 200 draws per executor")
    ap.add_argument("--out", help="JSON output (default benchmarks/sweep.json; sweep_quick.json with --quick)")
    args = ap.parse_args()

    df = bs.datasets.load("chinchilla")
    if args.quick:
        laws, splits, sampler = ["chinchilla"], [0.2, 0.4], {"draws": 200, "warmup": 200, "chains": 2}
    else:
        laws, splits, sampler = LAWS, SPLITS, {"draws": 1000, "warmup": 1000, "chains": 4}
    n_tasks = len(laws) * len(splits)
    print(f"{n_tasks}-fit sweep ({len(laws)} laws x {len(splits)} splits, {sampler}) on {len(df)} Chinchilla runs, "
          f"{os.cpu_count()} cores, workers {args.workers}", flush=True)
    rows, tables = [], {}
    for ex in [e.strip() for e in args.executors.split(",") if e.strip()]:
        with tempfile.TemporaryDirectory() as cache:
            t0 = time.perf_counter()
            res = bs.sweep(df, laws=laws, splits=splits, executor=ex, workers=None if ex == "local" else args.workers,
                           address=args.address if ex == "ray" else None, cache_dir=cache, progress=True, **sampler)
            wall = time.perf_counter() - t0
        tables[ex] = res.table
        rows.append({"executor": ex, "wall_s": round(wall, 2), "tasks": n_tasks,
                     "tasks_ok": int((res.table["status"] == "ok").sum()),
                     "task_s_sum": round(float(res.table["wall_s"].sum()), 2)})
        print(f"  {ex}: {wall:.1f} s, {rows[-1]['tasks_ok']}/{n_tasks} ok", flush=True)
    local = next((r["wall_s"] for r in rows if r["executor"] == "local"), None)
    for r in rows:
        r["speedup_vs_local"] = round(local / r["wall_s"], 2) if local else None
    first = next(iter(tables.values()))
    identical = all(t[["task_id", *SCORE_COLUMNS]].equals(first[["task_id", *SCORE_COLUMNS]]) for t in tables.values())

    print(f"\n{'executor':<10} {'wall s':>8} {'speed-up':>9} {'tasks ok':>9}")
    for r in rows:
        print(f"{r['executor']:<10} {r['wall_s']:>8.1f} {r['speedup_vs_local'] or float('nan'):>9.2f} "
              f"{r['tasks_ok']:>5}/{r['tasks']}")
    print(f"score columns identical across executors: {identical}")
    out = Path(args.out) if args.out else HERE / ("sweep_quick.json" if args.quick else "sweep.json")
    atomic_write_text(out, json.dumps({
        "what": f"{n_tasks}-fit sweep: laws {laws} x holdout splits {splits} (by compute) on the bundled "
                "Chinchilla runs; fresh compilation cache per executor; ray includes starting its local instance",
        "sampler": sampler, "cores": os.cpu_count(), "workers": args.workers, "quick": args.quick,
        "results": rows, "scores_identical": identical,
    }, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":  # the guard matters: "processes" spawns workers that import this file
    main()
