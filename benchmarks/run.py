"""Speed benchmarks, all cases measured side by side in one run.

    python benchmarks/run.py [--cases chinchilla,chinchilla_default,nutpie,epoch,data_constrained,gadre,plan,rows,laplace]

Prints a table and writes benchmarks/results.json. Each timed fit runs in a fresh
Python process (``--worker``) with one XLA CPU device per chain, as the
``bayescale`` command sets up, so "cold" means an empty JAX compilation cache (and
empty PyTensor / numba caches for nutpie) and nothing compiled in memory, and "warm" a fresh process whose disk cache already
holds the compiled sampler and its exported program (``bayescale.nuts``; what a repeated CLI run sees), timed
in ``WARM_RUNS`` fresh processes and reported as the median (with every run's time in the JSON). A fit's wall time
starts once the library is imported (``import_s``, reported apart). Sampling time is the
wall time of a second, identical fit in the same process (warmup + draws, nothing
to compile). nutpie (PyMC) needs the optional extra: ``pip install -e ".[bench]"``.

Cases (issue "Performance"). Every fit case is the plain model (``discrepancy=None``):
the speed targets are gated on it; ``chinchilla_default`` is the same fit at the true
defaults, whose learned discrepancy costs four more fits of the same model (internal
leave-future-out, ``bayescale.discrepancy``), reported beside it.
  chinchilla        bs.fit defaults on the 245 bundled runs: cold, warm, ESS/s
  chinchilla_default  the same with discrepancy="auto" (the default): cold, warm
  nutpie            the same law, reference-scale parametrisation and priors in PyMC, nutpie
  epoch             Besiroglu et al.'s procedure (bayescale.baselines): 4,500-start
                    L-BFGS-B grid + 4,000 single-start bootstraps
  data_constrained  datablations (182 runs), law data_constrained
  gadre             partial pooling over Gadre et al.'s 3 training sets (104 runs)
  plan              bs.plan over 4000 draws x 1000 candidates
  rows              fit time against rows: 250, 1,000 and 9,261 datablations curve points,
                    complete pooling (one law for both training sets), cold and sampling
                    time; and the default pooling (partial over the 2 sets) at 1,000 points
  laplace           approx="laplace" against NUTS on chinchilla: time and error
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ALL = "chinchilla,chinchilla_default,nutpie,epoch,data_constrained,gadre,plan,rows,laplace"
#: fresh processes timed per warm case (the median is reported)
WARM_RUNS = 5


# ------------------------------------------------------------------ workers (run in a fresh process)
def _fit_stats(fit, wall: float) -> dict:
    d = fit.diagnose()
    steps = float(fit.datatree["sample_stats"]["n_steps"].values.mean())
    return {"wall_s": wall, "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail,
            "max_r_hat": d.max_r_hat, "divergences": d.divergences, "ok": d.ok, "leapfrog_per_draw": steps}


def _load(case: str):
    import bayescale as bs

    if case == "chinchilla":
        return bs.datasets.load("chinchilla"), {"law": "chinchilla", "discrepancy": None}
    if case == "chinchilla_default":
        return bs.datasets.load("chinchilla"), {"law": "chinchilla"}
    if case == "data_constrained":
        return bs.datasets.load("datablations"), {"law": "data_constrained", "discrepancy": None}
    if case == "gadre":
        return bs.datasets.load("gadre"), {"law": "chinchilla", "hierarchy": "partial", "discrepancy": None}
    if case.startswith("rows_"):
        import warnings

        *_, pooling, n = case.split("_")
        n = int(n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # checkpoints of one run are not independent: a speed case only
            curves = bs.datasets.load("datablations_curves", curves=True)
        if n < len(curves):
            curves = curves.sample(n=n, random_state=0).sort_index()
        # "complete": one law for both training sets' curves (the speed case: a final-loss
        # law on whole curves is misspecified, and partial pooling of 7 parameters over 2
        # families of thousands of checkpoints needs ~60 leapfrog steps a draw; "auto" is
        # measured at 1,000 rows beside it)
        return curves, {"law": "data_constrained", "discrepancy": None, "hierarchy": pooling}
    raise ValueError(case)


def worker_fit(case: str, repeat: bool) -> dict:
    """Time bs.fit at its defaults; optionally a second identical fit (sampling time)."""
    import warnings

    t0 = time.perf_counter()
    import bayescale as bs
    from bayescale.inference import enable_compilation_cache

    enable_compilation_cache(os.environ["BAYESCALE_CACHE_DIR"])
    df, kw = _load(case)
    fit_fn = bs.fit  # importing the library (bayescale.fitting loads xarray) is import time, not fit time
    t_import = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        fit = fit_fn(df, progress=False, **kw)
        out = {"first": _fit_stats(fit, time.perf_counter() - t), "import_s": t_import, "rows": fit.data.n_rows}
        if repeat:
            t = time.perf_counter()
            again = fit_fn(df, progress=False, **kw)
            out["repeat"] = _fit_stats(again, time.perf_counter() - t)
    return out


def worker_nutpie() -> dict:
    """The chinchilla model in PyMC, sampled by nutpie with the same settings as bs.fit."""
    import numpy as np
    import pymc as pm
    import pytensor.tensor as pt

    import bayescale as bs
    from bayescale.data import validate

    t0 = time.perf_counter()
    data = validate(bs.datasets.load("chinchilla"))
    logN, logD, logy = np.log(data.N), np.log(data.D), np.log(data.loss)
    # the data's reference scales, as bayescale's LawContext (geometric means)
    logN0, logD0 = logN.mean(), logD.mean()
    with pm.Model() as model:
        E = pm.LogNormal("E", mu=math.log(1.7), sigma=0.5)
        A_ref = pm.LogNormal("A_ref", mu=math.log(0.5), sigma=1.0)
        B_ref = pm.LogNormal("B_ref", mu=math.log(0.5), sigma=1.0)
        alpha = pm.LogNormal("alpha", mu=math.log(0.3), sigma=0.5)
        beta = pm.LogNormal("beta", mu=math.log(0.3), sigma=0.5)
        sigma = pm.HalfNormal("sigma", sigma=0.1)
        terms = pt.stack([pt.log(E) + 0 * logN, pt.log(A_ref) - alpha * (logN - logN0),
                          pt.log(B_ref) - beta * (logD - logD0)])
        mu = pm.math.logsumexp(terms, axis=0)[0]
        pm.StudentT("log_loss", nu=4, mu=mu, sigma=sigma, observed=logy)
    import nutpie

    t1 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    t_compile = time.perf_counter() - t1

    def sample(seed: int):
        t = time.perf_counter()
        tr = nutpie.sample(compiled, draws=1000, tune=1000, chains=4, cores=2, seed=seed, progress_bar=False)
        return tr, time.perf_counter() - t

    trace, t_sample = sample(0)
    trace2, t_sample2 = sample(1)
    cold = time.perf_counter() - t0 - t_sample2
    stats = _az_stats(trace)
    # the repeat's own diagnostics: one seed of nutpie can leave a chain stuck, and its
    # ESS is then no measure of the sampler's speed
    return {"build_and_compile_s": t_compile, "first_sample_s": t_sample, "sample_s": t_sample2, "cold_s": cold,
            **stats, "repeat": _az_stats(trace2)}


def _az_stats(trace) -> dict:
    import arviz_stats as azs
    import numpy as np

    post = trace.posterior if hasattr(trace, "posterior") else trace["posterior"]
    names = ["E", "A_ref", "B_ref", "alpha", "beta", "sigma"]
    ess = [float(azs.ess(np.asarray(post[n].values))) for n in names]
    rhat = [float(azs.rhat(np.asarray(post[n].values))) for n in names]
    div = int(np.asarray(trace.sample_stats["diverging"].values).sum()) if hasattr(trace, "sample_stats") else -1
    steps = float(np.asarray(trace.sample_stats["n_steps"].values).mean()) if hasattr(trace, "sample_stats") else -1
    return {"min_ess_bulk": min(ess), "max_r_hat": max(rhat), "divergences": div, "leapfrog_per_draw": steps}


def worker_epoch() -> dict:
    import bayescale as bs
    from bayescale.baselines import bootstrap, fit_huber

    df = bs.datasets.load("chinchilla", epoch_subset=True)
    t = time.perf_counter()
    point = fit_huber(df, grid="full")
    t_grid = time.perf_counter() - t
    t = time.perf_counter()
    boot = bootstrap(point, n_boot=4000, seed=0)
    t_boot = time.perf_counter() - t
    return {"grid_s": t_grid, "bootstrap_s": t_boot, "total_s": t_grid + t_boot, "n_starts": int(point.n_starts),
            "n_boot": 4000, "n_failed": int((~boot.converged).sum())}


def worker_plan() -> dict:
    import warnings

    import bayescale as bs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bs.fit(bs.datasets.load("chinchilla"), progress=False, discrepancy=None)
    bs.plan(fit, budget=1e23, n_candidates=1000)  # compile
    times = []
    for risk in ("mean", "cvar:0.9"):
        t = time.perf_counter()
        p = bs.plan(fit, budget=1e23, risk=risk, n_candidates=1000)
        times.append(time.perf_counter() - t)
    return {"draws": fit.n_draws, "candidates": 1000, "plan_s": max(times), "N": p.N}


def worker_laplace() -> dict:
    import warnings

    import bayescale as bs
    from bayescale.inference import enable_compilation_cache

    enable_compilation_cache(os.environ["BAYESCALE_CACHE_DIR"])
    df = bs.datasets.load("chinchilla")
    t = time.perf_counter()
    lap = bs.fit(df, approx="laplace", draws=4000, discrepancy=None)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    lap = bs.fit(df, approx="laplace", draws=4000, seed=1, discrepancy=None)
    again = time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nuts = bs.fit(df, progress=False, discrepancy=None)
    a, b = lap.summary(), nuts.summary()
    err = {}
    for name in ("E", "A", "B", "alpha", "beta", "sigma"):
        err[name] = {"median_shift_in_nuts_sd": float((a.loc[name, "q50"] - b.loc[name, "q50"]) / b.loc[name, "sd"]),
                     "sd_ratio": float(a.loc[name, "sd"] / b.loc[name, "sd"])}
    grid = bs.plan(nuts, budget=1e23).N, bs.plan(lap, budget=1e23).N
    pn = nuts.predict({"N": 7e10, "D": 1.4e12}).iloc[0]
    pl = lap.predict({"N": 7e10, "D": 1.4e12}).iloc[0]
    return {"cold_s": cold, "warm_s": again, "errors": err, "plan_N_nuts": grid[0], "plan_N_laplace": grid[1],
            "pred_70B_nuts": [pn["lower"], pn["median"], pn["upper"]],
            "pred_70B_laplace": [pl["lower"], pl["median"], pl["upper"]]}


# ------------------------------------------------------------------ orchestration
def _worker(args: list[str], cache: str | None = None, timeout: int = 1800) -> dict:
    env = dict(os.environ)
    if cache:
        env["BAYESCALE_CACHE_DIR"] = cache
        # nutpie cold as well: PyTensor's and numba's on-disk caches start empty too
        env["PYTENSOR_FLAGS"] = f"base_compiledir={cache}/pytensor"
        env["NUMBA_CACHE_DIR"] = f"{cache}/numba"
    # one XLA CPU device per chain, as the `bayescale` command sets up (cli._host_devices)
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True,
                              env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": [f"did not finish within {timeout} s"], "process_s": float(timeout)}
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "process_s": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=ALL)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--rows-timeout", type=int, default=600, help="seconds allowed per rows fit (default 600)")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        name, *rest = args.worker
        fn = {"fit": lambda: worker_fit(rest[0], repeat=bool(int(rest[1]))), "nutpie": worker_nutpie,
              "epoch": worker_epoch, "plan": worker_plan, "laplace": worker_laplace}[name]
        print(json.dumps(fn()))
        return
    cases = args.cases.split(",")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    import platform

    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    for case in cases:
        print(f"running {case} ...", flush=True)
        with tempfile.TemporaryDirectory() as cache:
            if case in ("chinchilla", "chinchilla_default", "data_constrained", "gadre"):
                cold = _worker(["fit", case, "1"], cache)
                results[case] = {"cold": cold, "warm": _median_warm([_worker(["fit", case, "0"], cache)
                                                                     for _ in range(WARM_RUNS)])}
            elif case == "rows":
                results["rows"] = {str(n): _worker(["fit", f"rows_complete_{n}", "1"], cache, timeout=args.rows_timeout)
                                   for n in (250, 1000, 9261)}
                results["rows"]["1000 auto"] = _worker(["fit", "rows_auto_1000", "0"], cache,
                                                       timeout=args.rows_timeout)
            elif case in ("nutpie", "epoch", "plan", "laplace"):
                results[case] = _worker([case], cache)
        _save(results, args.out)
    _print(results)


def _median_warm(runs: list[dict]) -> dict:
    """The warm run of median wall time, with every run's wall time (``walls_s``): one fresh
    process per run; the machines are shared, and one run can be a second off."""
    ok = sorted((w for w in runs if "error" not in w), key=lambda w: w["first"]["wall_s"])
    if not ok:
        return runs[0]
    return {**ok[len(ok) // 2], "walls_s": [w["first"]["wall_s"] for w in ok], "runs": len(runs)}


def _save(results: dict, path: Path) -> None:
    sys.path.insert(0, str(HERE.parent))
    from bayescale.io import atomic_write_text

    atomic_write_text(path, json.dumps(results, indent=2, default=float))


def _print(r: dict) -> None:
    rows = []
    if "chinchilla" in r and "error" not in r["chinchilla"]["cold"]:
        c = r["chinchilla"]
        first, rep, warm = c["cold"]["first"], c["cold"]["repeat"], c["warm"]["first"]
        rows.append(("bayescale chinchilla cold (fit, compile incl.)", first["wall_s"], first["min_ess_bulk"] / first["wall_s"],
                     first["min_ess_bulk"] / rep["wall_s"], first))
        rows.append((f"bayescale chinchilla warm cache (median of {len(c['warm'].get('walls_s', [1]))} processes)",
                     warm["wall_s"], warm["min_ess_bulk"] / warm["wall_s"], None, warm))
    if "chinchilla_default" in r and "error" not in r["chinchilla_default"]["cold"]:
        c = r["chinchilla_default"]
        first, warm = c["cold"]["first"], c["warm"]["first"]
        rows.append(("chinchilla, default discrepancy (5 fits) cold", first["wall_s"],
                     first["min_ess_bulk"] / first["wall_s"], None, first))
        rows.append(("chinchilla, default discrepancy (5 fits) warm cache", warm["wall_s"],
                     warm["min_ess_bulk"] / warm["wall_s"], None, warm))
    if "nutpie" in r and "error" not in r["nutpie"]:
        n = r["nutpie"]
        rows.append(("nutpie chinchilla cold (PyMC build+compile+sample)", n["cold_s"], n["min_ess_bulk"] / n["cold_s"],
                     n["min_ess_bulk"] / n["first_sample_s"], n))
        if "repeat" in n:  # seed 1, sampled after seed 0: its ESS over build + compile + its own sampling
            rep, wall = n["repeat"], n["build_and_compile_s"] + n["sample_s"]
            rows.append(("nutpie chinchilla seed 1 (build+compile+sample)", wall, rep["min_ess_bulk"] / wall,
                         rep["min_ess_bulk"] / n["sample_s"], rep))
    print(f"\n{'case':52s} {'wall s':>8s} {'ESS/wall s':>11s} {'ESS/sample s':>13s} {'R-hat':>7s} {'div':>5s} {'steps':>6s}")
    for name, wall, ess_wall, ess_sample, st in rows:
        print(f"{name:52s} {wall:8.2f} {ess_wall:11.1f} {'' if ess_sample is None else f'{ess_sample:13.1f}':>13s} "
              f"{st['max_r_hat']:7.3f} {st['divergences']:5d} {st['leapfrog_per_draw']:6.1f}")
    for case in ("chinchilla", "chinchilla_default", "data_constrained", "gadre"):
        if case in r and "walls_s" in r[case]["warm"]:
            print(f"{case + ': warm runs':52s} " + ", ".join(f"{x:.2f}" for x in r[case]["warm"]["walls_s"]) + " s")
    for case in ("data_constrained", "gadre"):
        if case in r and "error" not in r[case]["cold"]:
            f, w = r[case]["cold"]["first"], r[case]["warm"]["first"]
            print(f"{case:52s} cold {f['wall_s']:.1f} s, warm {w['wall_s']:.1f} s; R-hat {w['max_r_hat']:.3f}, "
                  f"{w['divergences']} div, min ESS {w['min_ess_bulk']:.0f}")
    if "epoch" in r and "error" not in r["epoch"]:
        e = r["epoch"]
        print(f"{'Epoch procedure (grid + 4000 bootstraps)':52s} {e['total_s']:8.1f} s (grid {e['grid_s']:.1f}, "
              f"bootstrap {e['bootstrap_s']:.1f})")
    if "plan" in r and "error" not in r["plan"]:
        print(f"{'plan, 4000 draws x 1000 candidates':52s} {r['plan']['plan_s']:8.3f} s")
    if "rows" in r:
        for n, v in r["rows"].items():
            if "error" not in v:
                f = v["first"]
                again = f", sampling {v['repeat']['wall_s']:.1f} s" if "repeat" in v else ""
                print(f"{'rows ' + n:52s} {f['wall_s']:8.1f} s{again} (R-hat {f['max_r_hat']:.3f}, "
                      f"{f['divergences']} div, {f['leapfrog_per_draw']:.0f} steps/draw)")
        reps = {int(n): v["repeat"]["wall_s"] for n, v in r["rows"].items() if n.isdigit() and "repeat" in v}
        if 250 in reps and 9261 in reps:
            print(f"{'rows: sampling time 9,261 / 250 rows':52s} {reps[9261] / reps[250]:8.1f}x "
                  f"(rows {9261 / 250:.0f}x)")
    if "laplace" in r and "error" not in r["laplace"]:
        lp = r["laplace"]
        worst = max(abs(v["median_shift_in_nuts_sd"]) for v in lp["errors"].values())
        ratios = [v["sd_ratio"] for v in lp["errors"].values()]
        print(f"{'laplace (chinchilla, 4000 draws)':52s} cold {lp['cold_s']:.2f} s, warm {lp['warm_s']:.2f} s; "
              f"max |median shift| {worst:.2f} NUTS sd; sd ratio {min(ratios):.2f}-{max(ratios):.2f}")
    for k, v in r.items():
        if isinstance(v, dict) and "error" in v:
            print(f"{k}: ERROR {v['error']}")


if __name__ == "__main__":
    main()
