"""Speed benchmarks, all cases measured side by side in one run.

    python benchmarks/run.py                                   # every case below
    python benchmarks/run.py --cases chinchilla,xlstm_default  # some of them
    python benchmarks/run.py --quick --cases chinchilla,xlstm3_default --out /tmp/q.json  # check the script

Prints a table and writes benchmarks/results.json (``--out``; a case run again replaces
its entry, the others are kept). Every timed fit runs in a fresh Python process, one
at a time (the machines have few cores: nothing else should run meanwhile).

Ways a fit is timed (the fit cases below)
-----------------------------------------
script    A generated plain user script run as ``python script.py``: ``import bayescale as bs``,
          load the case's runs, ``fit = bs.fit(df, law=..., **kw)``. No ``XLA_FLAGS``, no
          ``enable_compilation_cache`` call: since ``bayescale.runtime`` the library sets up a
          host device per chain and the persistent compilation cache itself, which is what is
          measured. The orchestrator removes ``XLA_FLAGS``, ``BAYESCALE_HOST_DEVICES`` and the
          ``JAX_*COMPILATION_CACHE*`` variables from the child's environment and sets only
          ``BAYESCALE_CACHE_DIR`` to the case's own temporary folder. ``wall_s`` is ``bs.fit``
          alone; ``import_s`` (``import bayescale``) and ``load_s`` (reading the runs) are
          reported apart; ``process_s`` is the whole process (interpreter start, import,
          load, fit, the diagnostics the script prints) as the orchestrator sees it.
cli       The same fit through the command line, ``bayescale fit <runs> --law L -o fit.nc
          --no-progress --json [--discrepancy none]``, timed as a whole process
          (``wall_s`` = ``process_s``); ``<runs>`` is ``dataset:NAME`` for a bundled dataset
          and a CSV (N, D, loss, family; U for data-constrained laws) for xlstm / xlstm3.
          Diagnostics from its JSON; leapfrog steps and internal fits read from fit.nc.
baseline  "Today's default": the package as it was at commit ``7225bec`` (before the library
          set up devices and cache itself), checked out once per run as a git worktree in a
          temporary folder (removed at the end) and imported through ``PYTHONPATH``, with
          ``bayescale.models`` (the project maps it to ``models/``) linked into the package so
          the editable install cannot mix in today's; the run is an error unless
          ``bayescale.__file__`` and every ``bayescale.*`` module come from the worktree. It
          runs the same plain script on the case's runs written to a CSV. Cold only: a
          plain script on that code has no disk cache, so every run of it is cold. ``--baseline-timeout`` (default 1800 s) bounds it; a
          run that hits it is recorded with ``timed_out`` (the ratios are then lower bounds).
cold      An empty cache folder: nothing compiled on disk or in memory.
warm      A fresh process whose cache folder already holds the compiled sampler and its
          exported program (what a repeated script or CLI run sees). Script warm is the
          median (by fit wall) of ``--warm-runs`` fresh processes (default 3; every run's
          time is kept in ``walls_s``); CLI warm is one process.

Each run records wall_s, import_s, process_s, ok, divergences, max_r_hat, min_ess_bulk,
min_ess_tail, leapfrog_per_draw (mean leapfrog steps per draw), refit (the failed default
refitted with the safe remedy) and, for fits at the default discrepancy, the law error's
internal fits (``internal_fits``: wall_s, steps_per_draw, ...). ``ratios`` holds
baseline / new: fit wall and whole process, against script cold and script warm.

Fit cases (law: the dataset's ``attrs["law"]``; "_default": every bs.fit default, so the
learned discrepancy and its internal leave-future-out fits; no suffix: ``discrepancy=None``)
  chinchilla_default  bundled Chinchilla, 245 runs, law chinchilla            (+ baseline)
  chinchilla          the same, discrepancy=None                               (+ baseline)
  xlstm_default       xLSTM ladder (shared data), 5 families, 407 runs         (+ baseline)
  xlstm               the same, discrepancy=None                               (+ baseline)
  xlstm3_default      xLSTM, families llama_ctx16384, mlstm_ctx16384, mlstm_ctx8192
                      (185 runs)                                               (+ baseline)
  gadre_default       Gadre et al., 3 families, 104 runs, law overtrain (its attrs["law"])
  gemstones_default   Gemstones (bundled), 20 families, 199 runs
  curves_default      datablations_curves final checkpoints, 2 families, 48 runs,
                      law data_constrained
  Each: script cold, script warm, cli cold, cli warm, and baseline cold where marked.

Other cases (one ``--worker`` process each, the library's own settings; nutpie (PyMC)
needs the optional extra: ``pip install -e ".[bench]"``)
  nutpie            the chinchilla law, reference-scale parametrisation and priors in PyMC,
                    sampled by nutpie; cold (empty PyTensor / numba caches). The table's
                    "ESS/s vs nutpie" puts min bulk ESS per second of the whole process of
                    chinchilla(_default) script cold and warm beside nutpie's min bulk ESS
                    per second of its cold process (its process less its second sampling)
  epoch             Besiroglu et al.'s procedure (bayescale.baselines): 4,500-start
                    L-BFGS-B grid + 4,000 single-start bootstraps
  data_constrained  datablations (182 runs), law data_constrained, discrepancy=None:
                    cold (+ sampling time of a second fit in the process), warm
  gadre             partial pooling over Gadre et al.'s 3 training sets (104 runs), law
                    chinchilla, discrepancy=None: cold, warm
  plan              bs.plan over 4000 draws x 1000 candidates
  rows              fit time against rows: 250, 1,000 and 9,261 datablations curve points,
                    complete pooling (one law for both training sets), cold and sampling
                    time; and the default pooling (partial over the 2 sets) at 1,000 points
  laplace           approx="laplace" against NUTS on chinchilla: time and error

``--quick`` (checking this script only, never for results): draws=100, warmup=100, one
warm run, no baseline; pass ``--out /tmp/x.json`` so benchmarks/results.json is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: the package before the library set up devices and cache itself ("today's default")
BASELINE_COMMIT = "7225bec"
FIT_CASES: dict[str, dict] = {
    "chinchilla_default": {"dataset": "chinchilla", "plain": False, "baseline": True},
    "chinchilla": {"dataset": "chinchilla", "plain": True, "baseline": True},
    "xlstm_default": {"dataset": "xlstm", "plain": False, "baseline": True},
    "xlstm": {"dataset": "xlstm", "plain": True, "baseline": True},
    "xlstm3_default": {"dataset": "xlstm", "families": ["llama_ctx16384", "mlstm_ctx16384", "mlstm_ctx8192"],
                       "plain": False, "baseline": True},
    "gadre_default": {"dataset": "gadre", "law": "chinchilla", "plain": False},
    "gemstones": {"dataset": "gemstones", "plain": True},
    "gemstones_default": {"dataset": "gemstones", "plain": False},
    "curves_default": {"dataset": "datablations_curves", "law": "data_constrained", "plain": False},
}
#: datasets the CLI reads as ``dataset:NAME`` (bundled with the package); others go through a CSV
BUNDLED = {"chinchilla", "gadre", "gemstones", "datablations_curves"}
OTHER_CASES = ["nutpie", "epoch", "data_constrained", "gadre", "plan", "rows", "laplace"]
ALL = ",".join([*FIT_CASES, *OTHER_CASES])
#: fresh processes timed per warm script case (the median is reported); --warm-runs
WARM_RUNS = 3
#: variables that would hand a plain script the fast settings the library must choose itself
FAST_VARS = ("XLA_FLAGS", "BAYESCALE_HOST_DEVICES", "JAX_COMPILATION_CACHE_DIR", "JAX_ENABLE_COMPILATION_CACHE",
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")
#: the line a generated script prints its result on
MARK = "BAYESCALE_BENCH "

# The plain user script (script and baseline modes). Runs on today's package and on the
# baseline commit alike, so it uses only what both have; everything after the fit is
# measurement. Its one argument is a JSON spec: csv or dataset (+ families), kw for bs.fit.
SCRIPT = '''\
import json
import sys
import time

t0 = time.perf_counter()
import bayescale as bs

import_s = time.perf_counter() - t0
spec = json.loads(sys.argv[1])
t = time.perf_counter()
if spec["csv"]:
    import pandas as pd

    df = pd.read_csv(spec["csv"])
else:
    df = bs.datasets.load(spec["dataset"])
    if spec["families"]:
        df = df[df["family"].isin(spec["families"])].reset_index(drop=True)
load_s = time.perf_counter() - t

t = time.perf_counter()
fit = bs.fit(df, **spec["kw"])
wall_s = time.perf_counter() - t

# measurement only, after the timed fit
import os

import jax

d = fit.diagnose()
out = {"wall_s": wall_s, "import_s": import_s, "load_s": load_s, "rows": int(fit.data.n_rows),
       "ok": bool(d.ok), "divergences": int(d.divergences), "max_r_hat": float(d.max_r_hat),
       "min_ess_bulk": float(d.min_ess_bulk), "min_ess_tail": float(getattr(d, "min_ess_tail", float("nan"))),
       "leapfrog_per_draw": float(fit.datatree["sample_stats"]["n_steps"].values.mean()),
       "refit": "remedy" in fit.datatree.attrs, "messages": [str(m) for m in d.messages],
       "bayescale_file": bs.__file__, "xla_flags": os.environ.get("XLA_FLAGS", ""),
       "jax_devices": jax.local_device_count(), "jax_cache_dir": jax.config.jax_compilation_cache_dir}
root = os.path.dirname(os.path.dirname(os.path.realpath(bs.__file__)))
out["modules_elsewhere"] = sorted(
    name for name, mod in list(sys.modules.items())
    if name.split(".")[0] == "bayescale" and getattr(mod, "__file__", None)
    and not os.path.realpath(mod.__file__).startswith(root + os.sep))
disc = getattr(fit, "discrepancy", None)
if disc is not None:
    out["internal_fits"] = disc.summary()["internal_fits"]
print("@MARK@" + json.dumps(out, default=str))
'''.replace("@MARK@", MARK)


# ------------------------------------------------------------------ workers (run in a fresh process)
def _fit_stats(fit, wall: float) -> dict:
    d = fit.diagnose()
    steps = float(fit.datatree["sample_stats"]["n_steps"].values.mean())
    return {"wall_s": wall, "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail,
            "max_r_hat": d.max_r_hat, "divergences": d.divergences, "ok": d.ok, "leapfrog_per_draw": steps}


def _load(case: str):
    import bayescale as bs

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
    """Time bs.fit (the library sets up devices and cache); optionally a second identical fit (sampling time)."""
    import warnings

    t0 = time.perf_counter()
    import bayescale as bs

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
    # devices and compilation cache: bs.fit sets them up itself (bayescale.runtime)
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True,
                              env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": [f"did not finish within {timeout} s"], "timed_out": True, "process_s": float(timeout)}
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "process_s": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def _plain_env(cache: str, pythonpath: str | None = None) -> dict:
    """The environment of a plain user's process: none of the fast settings, our own cache folder."""
    env = {k: v for k, v in os.environ.items() if k not in FAST_VARS}
    env["BAYESCALE_CACHE_DIR"] = cache
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    return env


def _process(cmd: list[str], env: dict, timeout: float, cwd: Path = REPO) -> tuple[dict, subprocess.CompletedProcess | None]:
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return {"error": [f"did not finish within {timeout:.0f} s"], "timed_out": True,
                "process_s": float(timeout)}, None
    return {"process_s": time.perf_counter() - t, "rc": proc.returncode}, proc


def _notes(stderr: str) -> list[str]:
    """Warnings the process printed (a PerformanceNote, a remedy), one line each, at most 5."""
    lines = [ln.strip() for ln in stderr.splitlines() if "Warning" in ln or "Note" in ln]
    return lines[:5]


def _run_script(script: Path, spec: dict, env: dict, timeout: float) -> dict:
    rec, proc = _process([sys.executable, str(script), json.dumps(spec)], env, timeout)
    if proc is None:
        return rec
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        return {**rec, "error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]}
    return {**json.loads(lines[-1][len(MARK):]), **rec, "notes": _notes(proc.stderr)}


def _cli_exe() -> list[str]:
    exe = Path(sys.executable).parent / "bayescale"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("bayescale")
    return [found] if found else [sys.executable, "-c", "from bayescale.cli import main; main()"]


def _run_cli(runs: str, law: str, plain: bool, settings: dict, env: dict, timeout: float, out_nc: Path) -> dict:
    cmd = [*_cli_exe(), "fit", runs, "--law", law, "-o", str(out_nc), "--no-progress", "--json"]
    if plain:
        cmd += ["--discrepancy", "none"]
    for k in ("draws", "warmup"):
        if k in settings:
            cmd += [f"--{k}", str(settings[k])]
    rec, proc = _process(cmd, env, timeout)
    rec["command"] = " ".join(cmd)
    if proc is None:
        return rec
    if proc.returncode not in (0, 3):  # 3: the fit ran and failed its diagnostics (a result, not a crash)
        return {**rec, "error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]}
    text = proc.stdout
    diag = json.loads(text[text.index("{"):])["diagnostics"]
    rec.update({"wall_s": rec["process_s"], "ok": diag["ok"], "divergences": diag["divergences"],
                "max_r_hat": diag["max_r_hat"], "min_ess_bulk": diag["min_ess_bulk"],
                "min_ess_tail": diag["min_ess_tail"], "messages": diag["messages"], "notes": _notes(proc.stderr)})
    rec.update(_nc_stats(out_nc))
    return rec


def _nc_stats(path: Path) -> dict:
    """Leapfrog steps per draw and the law error's internal fits, read from a saved fit (no JAX)."""
    try:
        import xarray as xr

        tree = xr.open_datatree(path)
        out: dict = {"leapfrog_per_draw": float(tree["sample_stats"]["n_steps"].values.mean()),
                     "refit": "remedy" in tree.attrs}
        if "discrepancy" in tree.attrs:
            out["internal_fits"] = json.loads(tree.attrs["discrepancy"]).get("fits", [])
        tree.close()
        return out
    except Exception as exc:  # noqa: BLE001 - a stat missing is reported, the timing stands
        return {"nc_error": f"{type(exc).__name__}: {exc}"}


def _case_frame(spec: dict):
    import warnings

    import bayescale as bs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = bs.datasets.load(spec["dataset"])
    if spec.get("families"):
        df = df[df["family"].isin(spec["families"])].reset_index(drop=True)
    return df


def _write_csv(df, law: str, path: Path) -> Path:
    cols = ["N", "D", "loss", "family"] + (["U"] if law.startswith("data_constrained") else [])
    df[cols].to_csv(path, index=False)
    return path


def _link_package_dirs(tree: Path) -> None:
    """Make the worktree importable through PYTHONPATH alone: a subpackage the project maps
    to another folder (``[tool.setuptools.package-dir]``, e.g. ``bayescale.models`` = ``models``)
    gets a link inside the package. Without it the editable install's finder would hand the
    old ``bayescale`` today's ``bayescale.models``."""
    import tomllib

    config = tomllib.loads((tree / "pyproject.toml").read_text())
    for name, folder in config.get("tool", {}).get("setuptools", {}).get("package-dir", {}).items():
        if not name or "." not in name:
            continue
        link = tree.joinpath(*name.split("."))
        if not link.exists():
            link.symlink_to((tree / folder).resolve(), target_is_directory=True)


@contextlib.contextmanager
def _worktree(commit: str):
    """A git worktree of ``commit`` in a temporary folder, removed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="bayescale-baseline-"))
    path = tmp / "tree"
    try:
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), commit],
                       check=True, capture_output=True, text=True)
        _link_package_dirs(path)
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True)


def run_fit_case(case: str, settings: dict, warm_runs: int, baseline: Path | None, timeout: float,
                 baseline_timeout: float) -> dict:
    """Script cold + warm, CLI cold + warm and (given the worktree) the baseline cold, for one case."""
    spec = FIT_CASES[case]
    df = _case_frame(spec)
    law = spec.get("law") or df.attrs.get("law") or "chinchilla"
    kw: dict = {"law": law, **settings}
    if spec["plain"]:
        kw["discrepancy"] = None
    entry: dict = {"dataset": spec["dataset"], "families": spec.get("families"), "rows": len(df), "law": law,
                   "discrepancy": "none" if spec["plain"] else "auto (default)", "settings": settings}
    with tempfile.TemporaryDirectory(prefix=f"bench-{case}-") as tmp:
        tmp = Path(tmp)
        script = tmp / "plain_fit.py"
        script.write_text(SCRIPT)
        csv = _write_csv(df, law, tmp / f"{case}.csv")
        new = {"csv": None, "dataset": spec["dataset"], "families": spec.get("families"), "kw": kw}

        cache = str(tmp / "cache_script")
        print("  script cold ...", flush=True)
        entry["script_cold"] = _run_script(script, new, _plain_env(cache), timeout)
        print(f"  script warm x{warm_runs} ...", flush=True)
        entry["script_warm"] = _median_warm([_run_script(script, new, _plain_env(cache), timeout)
                                             for _ in range(warm_runs)])

        runs = f"dataset:{spec['dataset']}" if spec["dataset"] in BUNDLED and not spec.get("families") else str(csv)
        cache = str(tmp / "cache_cli")
        print("  cli cold, cli warm ...", flush=True)
        entry["cli_cold"] = _run_cli(runs, law, spec["plain"], settings, _plain_env(cache), timeout, tmp / "cold.nc")
        entry["cli_warm"] = _run_cli(runs, law, spec["plain"], settings, _plain_env(cache), timeout, tmp / "warm.nc")

        if baseline is not None and spec.get("baseline"):
            print(f"  baseline ({BASELINE_COMMIT}) cold, up to {baseline_timeout:.0f} s ...", flush=True)
            old = {"csv": str(csv), "dataset": None, "families": None, "kw": kw}
            rec = _run_script(script, old, _plain_env(str(tmp / "cache_baseline"), str(baseline)), baseline_timeout)
            where = rec.get("bayescale_file", "")
            if where and not Path(where).resolve().is_relative_to(baseline.resolve()):
                rec["error"] = [f"baseline imported {where}, not the worktree {baseline}"]
            elif rec.get("modules_elsewhere"):
                rec["error"] = [f"baseline mixed in today's modules: {', '.join(rec['modules_elsewhere'])}"]
            rec["commit"] = BASELINE_COMMIT
            entry["baseline_cold"] = rec
            entry["ratios"] = _ratios(entry)
    return entry


def _ratios(e: dict) -> dict:
    """baseline / new, fit wall and whole process; lower bounds when the baseline timed out."""
    b = e.get("baseline_cold") or {}
    timed_out = bool(b.get("timed_out"))
    if not timed_out and ("error" in b or "wall_s" not in b):
        return {}
    out: dict = {"baseline_timed_out": timed_out}
    for mode in ("script_cold", "script_warm", "cli_cold", "cli_warm"):
        n = e.get(mode) or {}
        if "error" in n or "wall_s" not in n:
            continue
        out[f"process_vs_{mode}"] = b["process_s"] / n["process_s"]
        if not timed_out and not mode.startswith("cli"):
            out[f"fit_vs_{mode}"] = b["wall_s"] / n["wall_s"]
    return out


def _median_warm(runs: list[dict]) -> dict:
    """The warm run of median fit wall time, with every run's wall time (``walls_s``): one fresh
    process per run; the machines are shared, and one run can be a second off."""
    def wall(w: dict) -> float:
        return w["first"]["wall_s"] if "first" in w else w["wall_s"]

    ok = sorted((w for w in runs if "error" not in w), key=wall)
    if not ok:
        return runs[0]
    return {**ok[len(ok) // 2], "walls_s": [wall(w) for w in ok], "runs": len(runs)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=ALL, help="comma-separated (default: all)")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--warm-runs", type=int, default=WARM_RUNS,
                    help=f"fresh processes per warm script fit, median reported (default {WARM_RUNS})")
    ap.add_argument("--no-baseline", action="store_true", help=f"skip the baseline (commit {BASELINE_COMMIT})")
    ap.add_argument("--baseline-timeout", type=int, default=1800,
                    help="seconds allowed per baseline fit (default 1800; old xlstm default takes ~15 min)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed per script / CLI fit (default 1800)")
    ap.add_argument("--quick", action="store_true",
                    help="check this script only: fit cases at draws=100, warmup=100; one warm run; no baseline "
                         "(the other cases run at their own settings)")
    ap.add_argument("--rows-timeout", type=int, default=600, help="seconds allowed per rows fit (default 600)")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        name, *rest = args.worker
        fn = {"fit": lambda: worker_fit(rest[0], repeat=bool(int(rest[1]))), "nutpie": worker_nutpie,
              "epoch": worker_epoch, "plan": worker_plan, "laplace": worker_laplace}[name]
        print(json.dumps(fn()))
        return
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in FIT_CASES and c not in OTHER_CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; known: {ALL}")
    settings = {"draws": 100, "warmup": 100} if args.quick else {}
    warm_runs = 1 if args.quick else args.warm_runs
    with_baseline = not (args.quick or args.no_baseline)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    import platform

    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    with contextlib.ExitStack() as stack:
        tree: Path | None = None
        for case in cases:
            print(f"running {case} ...", flush=True)
            if case in FIT_CASES:
                if with_baseline and FIT_CASES[case].get("baseline") and tree is None:
                    tree = stack.enter_context(_worktree(BASELINE_COMMIT))
                results[case] = run_fit_case(case, settings, warm_runs, tree if with_baseline else None,
                                             args.timeout, args.baseline_timeout)
                _save(results, args.out)
                continue
            with tempfile.TemporaryDirectory() as cache:
                if case in ("data_constrained", "gadre"):
                    cold = _worker(["fit", case, "1"], cache)
                    results[case] = {"cold": cold, "warm": _median_warm([_worker(["fit", case, "0"], cache)
                                                                         for _ in range(warm_runs)])}
                elif case == "rows":
                    results["rows"] = {str(n): _worker(["fit", f"rows_complete_{n}", "1"], cache,
                                                       timeout=args.rows_timeout) for n in (250, 1000, 9261)}
                    results["rows"]["1000 auto"] = _worker(["fit", "rows_auto_1000", "0"], cache,
                                                           timeout=args.rows_timeout)
                else:
                    results[case] = _worker([case], cache)
            _save(results, args.out)
    _print(results)


def _save(results: dict, path: Path) -> None:
    sys.path.insert(0, str(HERE.parent))
    from bayescale.io import atomic_write_text

    atomic_write_text(path, json.dumps(results, indent=2, default=float))


def _fmt(x, spec: str, width: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return f"{'-':>{width}s}"
    return f"{x:{width}{spec}}"


def _internal(rec: dict) -> str:
    fits = rec.get("internal_fits")
    if not fits:
        return ""
    walls = [f.get("wall_s") or 0.0 for f in fits]
    steps = [f["steps_per_draw"] for f in fits if f.get("steps_per_draw") is not None]
    text = f"{len(fits)} internal fits {sum(walls):.1f} s"
    return text + (f", {min(steps):.0f}-{max(steps):.0f} steps/draw" if steps else "")


def _nutpie_ess_per_s(n: dict) -> list[tuple[str, float, float]]:
    """nutpie's min bulk ESS per second of its cold process, (label, ESS/s, R-hat): seed 0 over the
    process less its second sampling; seed 1 (one seed can leave a chain stuck) over the process
    less its first sampling."""
    if "error" in n or "process_s" not in n:
        return []
    out = [("seed 0", n["min_ess_bulk"] / (n["process_s"] - n["sample_s"]), n["max_r_hat"])]
    if "repeat" in n:
        rep = n["repeat"]
        out.append(("seed 1", rep["min_ess_bulk"] / (n["process_s"] - n["first_sample_s"]), rep["max_r_hat"]))
    return out


def _print_fit_cases(r: dict) -> None:
    names = [c for c in FIT_CASES if isinstance(r.get(c), dict) and "script_cold" in r[c]]
    if not names:
        return
    head = (f"{'fit case / mode':34s} {'fit s':>8s} {'proc s':>8s} {'imp s':>6s} {'ok':>3s} {'div':>5s} "
            f"{'R-hat':>6s} {'ESS bulk':>8s} {'ESS tail':>8s} {'steps':>6s}  law-error fits")
    print("\n" + head)
    for c in names:
        e = r[c]
        quick = " [quick]" if e.get("settings") else ""
        print(f"{c} ({e['rows']} runs, law {e['law']}, discrepancy {e['discrepancy']}){quick}")
        for mode in ("script_cold", "script_warm", "cli_cold", "cli_warm", "baseline_cold"):
            rec = e.get(mode)
            if rec is None:
                continue
            label = f"  {mode.replace('_', ' ')}"
            if mode == "script_warm" and "walls_s" in rec:
                label += f" (median of {len(rec['walls_s'])})"
            if "error" in rec:
                what = "TIMED OUT" if rec.get("timed_out") else "ERROR"
                print(f"{label:34s} {what} after {rec.get('process_s', 0):.0f} s: {' | '.join(rec['error'])}")
                continue
            print(f"{label:34s} {_fmt(rec.get('wall_s'), '.2f', 8)} {_fmt(rec.get('process_s'), '.2f', 8)} "
                  f"{_fmt(rec.get('import_s'), '.2f', 6)} {'yes' if rec.get('ok') else 'NO':>3s} "
                  f"{_fmt(rec.get('divergences'), 'd', 5)} {_fmt(rec.get('max_r_hat'), '.3f', 6)} "
                  f"{_fmt(rec.get('min_ess_bulk'), '.0f', 8)} {_fmt(rec.get('min_ess_tail'), '.0f', 8)} "
                  f"{_fmt(rec.get('leapfrog_per_draw'), '.1f', 6)}  {_internal(rec)}"
                  f"{'  (refit with remedy)' if rec.get('refit') else ''}")
        if e["script_warm"].get("walls_s"):
            print(f"{'  script warm runs':34s} " + ", ".join(f"{x:.2f}" for x in e["script_warm"]["walls_s"]) + " s")
    rows = [(c, r[c]["ratios"]) for c in names if r[c].get("ratios")]
    if rows:
        print(f"\n{'baseline ' + BASELINE_COMMIT + ' / new (x faster)':34s} {'fit:cold':>9s} {'fit:warm':>9s} "
              f"{'proc:cold':>10s} {'proc:warm':>10s} {'cli:cold':>9s} {'cli:warm':>9s}")
        for c, q in rows:
            ge = ">=" if q.get("baseline_timed_out") else ""
            cells = [q.get(k) for k in ("fit_vs_script_cold", "fit_vs_script_warm", "process_vs_script_cold",
                                         "process_vs_script_warm", "process_vs_cli_cold", "process_vs_cli_warm")]
            widths = (9, 9, 10, 10, 9, 9)
            print(f"{c:34s} " + " ".join(f"{'-':>{w}s}" if v is None else f"{ge + f'{v:.1f}x':>{w}s}"
                                         for v, w in zip(cells, widths, strict=True)))
    n = r.get("nutpie")
    refs = _nutpie_ess_per_s(n) if isinstance(n, dict) else []
    shown = [c for c in ("chinchilla_default", "chinchilla") if c in names]
    if refs and shown:
        print("\nESS/s vs nutpie: min bulk ESS per second of the whole process (script cold / warm; "
              "nutpie: its cold process)")
        print("  nutpie " + "; ".join(f"{label} {v:.1f}/s (R-hat {rh:.3f})" for label, v, rh in refs))
        for c in shown:
            cells = []
            for mode in ("script_cold", "script_warm"):
                rec = r[c][mode]
                if "error" not in rec:
                    v = rec["min_ess_bulk"] / rec["process_s"]
                    vs = " / ".join(f"{v / ref:.1f}x" for _, ref, _ in refs)
                    cells.append(f"{mode.split('_')[1]} {v:.1f}/s ({vs} nutpie {' / '.join(x[0] for x in refs)})")
            print(f"  {c:32s} " + ", ".join(cells))


def _print(r: dict) -> None:
    _print_fit_cases(r)
    rows = []
    if "nutpie" in r and "error" not in r["nutpie"]:
        n = r["nutpie"]
        rows.append(("nutpie chinchilla cold (PyMC build+compile+sample)", n["cold_s"], n["min_ess_bulk"] / n["cold_s"],
                     n["min_ess_bulk"] / n["first_sample_s"], n))
        if "repeat" in n:  # seed 1, sampled after seed 0: its ESS over build + compile + its own sampling
            rep, wall = n["repeat"], n["build_and_compile_s"] + n["sample_s"]
            rows.append(("nutpie chinchilla seed 1 (build+compile+sample)", wall, rep["min_ess_bulk"] / wall,
                         rep["min_ess_bulk"] / n["sample_s"], rep))
    if rows:
        print(f"\n{'case':52s} {'wall s':>8s} {'ESS/wall s':>11s} {'ESS/sample s':>13s} {'R-hat':>7s} {'div':>5s} "
              f"{'steps':>6s}")
    for name, wall, ess_wall, ess_sample, st in rows:
        print(f"{name:52s} {wall:8.2f} {ess_wall:11.1f} {'' if ess_sample is None else f'{ess_sample:13.1f}':>13s} "
              f"{st['max_r_hat']:7.3f} {st['divergences']:5d} {st['leapfrog_per_draw']:6.1f}")
    for case in ("data_constrained", "gadre"):
        if isinstance(r.get(case), dict) and "cold" in r[case] and "error" not in r[case]["cold"]:
            f, w = r[case]["cold"]["first"], r[case]["warm"]["first"]
            print(f"{case:52s} cold {f['wall_s']:.1f} s, warm {w['wall_s']:.1f} s; R-hat {w['max_r_hat']:.3f}, "
                  f"{w['divergences']} div, min ESS {w['min_ess_bulk']:.0f}")
            if "walls_s" in r[case]["warm"]:
                print(f"{case + ': warm runs':52s} " + ", ".join(f"{x:.2f}" for x in r[case]["warm"]["walls_s"]) + " s")
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
