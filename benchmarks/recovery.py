"""Parameter recovery and borrowing strength on simulated Chinchilla ladders.

Two checks of bayescale's partially pooled Chinchilla model, both on tables
simulated from the model's own prior predictive (:mod:`bayescale.simulate`):

(a) **Coverage.** ``--datasets`` tables, each with true parameters drawn from the
    prior (4 families, partial pooling), are fitted with the same model; for
    every parameter we count how many central 90% posterior intervals cover the
    truth. With exact inference each count is Binomial(datasets, 0.9)
    (Cook, Gelman and Rubin 2006; Talts et al. 2018, arXiv:1804.06788), so the
    count's Monte Carlo band is a binomial quantile range, not a tuned tolerance.
    Fits with divergences or failed diagnostics stay in the count: dropping them
    would select on the data and bias coverage.
(b) **Borrowing strength.** Three families with ~20 runs and one with only 3;
    10 more runs of the small family, from the same truth, are held out. The
    small family's held-out log predictive density under ``hierarchy="partial"``
    is compared with ``hierarchy="independent"`` over several seeds.

Run::

    python benchmarks/recovery.py --datasets 50 --draws 1000 --warmup 500 --chains 4 \\
        --out benchmarks/recovery.json

``tests/test_recovery.py`` (slow tier) calls :func:`run_recovery` and
:func:`run_borrowing`, so the logic lives here once.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import simulate as sim

Log = Callable[[str], None] | None

#: Interval kinds in the coverage table. "population" (shared or population
#: location), "scale" (tau_*, sigma) and "family" (one family's value) rows are
#: exactly Binomial(n, interval) under correct inference and are the ones a test
#: asserts on; "derived" rows (paper-convention A, B: functions of sampled
#: parameters, also calibrated) and "family-pooled" rows (one count over
#: datasets x families, whose indicators within a data set are dependent, so not
#: binomial) are reported only.
ASSERTED_KINDS = ("population", "scale", "family")


def _emit(log: Log, text: str) -> None:
    if log is not None:
        log(text)


# --------------------------------------------------------------------------- #
# Statistics helpers                                                           #
# --------------------------------------------------------------------------- #


def binomial_band(n: int, p: float, level: float) -> tuple[int, int]:
    """Central ``level`` acceptance band of a Binomial(n, p) count.

    ``scipy.stats.binom.interval``: ``lo = ppf((1 - level) / 2)``,
    ``hi = ppf((1 + level) / 2)``, so ``P(X < lo) <= (1 - level) / 2`` and
    ``P(X > hi) <= (1 - level) / 2``. For n = 50, p = 0.9, level = 0.99 this is
    (39, 50): P(X <= 38) = 0.0032, and 50 is the largest possible count
    (P(X = 50) = 0.9**50 = 0.005), so with 50 data sets only under-coverage is
    detectable.
    """
    from scipy.stats import binom

    lo, hi = binom.interval(level, n, p)
    return int(lo), int(hi)


def familywise_band(n: int, p: float, n_checks: int, level: float = 0.99) -> tuple[int, int]:
    """Binomial band per check such that all ``n_checks`` pass with probability >= ``level``.

    Bonferroni: each check at level ``1 - (1 - level) / n_checks``. Valid
    whatever the dependence between checks (coverage indicators of parameters
    of the same data set are dependent).
    """
    return binomial_band(n, p, 1.0 - (1.0 - level) / n_checks)


def pointwise_lpd(fit: Any, runs: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Log pointwise predictive density of held-out runs under a fit.

    For each run i, ``log( (1/S) sum_s p(log L_i | mu_si, sigma_s) )`` with
    ``mu_si`` the law's log loss for posterior draw s (``predictive_draws``,
    ``kind="mean"``) and ``p`` the fit's likelihood on log loss. The density is
    of log loss; the Jacobian ``-log L_i`` is the same for every model, so
    differences between fits are unaffected.
    """
    from scipy.special import logsumexp

    mu = np.log(np.asarray(fit.predictive_draws(runs, kind="mean", seed=seed).values, dtype=np.float64))
    sigma = np.asarray(fit.datatree["posterior"]["sigma"].values, dtype=np.float64).reshape(-1)[:, None]
    log_y = np.log(runs["loss"].to_numpy(np.float64))
    ll = np.asarray(fit.spec.lik.dist(mu, sigma).log_prob(log_y), dtype=np.float64)
    return logsumexp(ll, axis=0) - math.log(ll.shape[0])


@dataclass(frozen=True)
class FitRecord:
    """One NUTS fit with its diagnostics and whether it warned."""

    fit: Any
    seconds: float
    divergences: int
    ok: bool
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    warned: bool
    messages: tuple[str, ...]

    def row(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "fit"}
        d["messages"] = " | ".join(self.messages)
        return d


def fit_recorded(runs: pd.DataFrame, **kwargs: Any) -> FitRecord:
    """``bs.fit`` with its DiagnosticsWarning caught and recorded, not raised.

    JAX's in-memory caches are cleared afterwards: every fit builds new
    closures and JAX keeps an executable per closure, which over dozens of fits
    exhausts memory (the persistent disk cache is kept).
    """
    import jax

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.DiagnosticsWarning)
        fit = bs.fit(runs, progress=False, discrepancy=None, **kwargs)  # recovery of parameters: plain model
    seconds = time.perf_counter() - t0
    warned = any(issubclass(w.category, bs.DiagnosticsWarning) for w in caught)
    d = fit.diagnose()
    jax.clear_caches()
    return FitRecord(fit, seconds, d.divergences, d.ok, d.max_r_hat, d.min_ess_bulk, d.min_ess_tail, warned,
                     d.messages)


def _enable_cache(cache_dir: str | None) -> None:
    """JAX's persistent compilation cache (``bayescale.inference.enable_compilation_cache``).

    Every data set of a study has the same design, and the sampler takes the
    data as arguments, so all fits after the first of each model load the
    compiled program from disk. This sets global JAX configuration; it is
    called only from these entry points, never on import.
    """
    from bayescale.inference import enable_compilation_cache

    enable_compilation_cache(cache_dir)


# --------------------------------------------------------------------------- #
# (a) Coverage                                                                 #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RecoveryConfig:
    """Settings of the coverage study (per-chain draws and warmup)."""

    datasets: int = 50
    runs_per_family: int = 16
    families: int = 4
    law: str = "chinchilla"
    hierarchy: str = "partial"
    draws: int = 1000
    warmup: int = 500
    chains: int = 4
    seed: int = 0
    interval: float = 0.9
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.datasets < 1 or self.runs_per_family < 2 or self.families < 1:
            raise ValueError(f"bad recovery settings: {self}")
        if not 0 < self.interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {self.interval}")


@dataclass(frozen=True)
class RecoveryResult:
    """Intervals against truths for every data set, and per-fit diagnostics.

    Attributes
    ----------
    config : RecoveryConfig
    intervals : pandas.DataFrame
        One row per (data set, parameter): ``dataset``, ``parameter`` (as in
        ``Fit.summary``: ``alpha``, ``tau_alpha``, ``alpha[f0]``), ``name``
        (site: ``alpha``, ``tau_alpha``, ``alpha_f``), ``family``, ``kind``,
        ``truth``, ``lower``, ``upper``, ``covered``.
    fits : pandas.DataFrame
        One row per data set: seconds, divergences, ok, max_r_hat,
        min_ess_bulk, min_ess_tail, warned, messages.
    seconds : float
        Wall time of the whole study.
    """

    config: RecoveryConfig
    intervals: pd.DataFrame
    fits: pd.DataFrame
    seconds: float

    def coverage(self) -> pd.DataFrame:
        """Coverage count per parameter (plus per-name counts pooled over families).

        Columns: ``kind``, ``n`` (intervals), ``covered``, ``rate``; indexed by
        parameter label (``alpha[*]`` for the pooled family rows).
        """
        iv = self.intervals
        per = iv.groupby("parameter", sort=False).agg(kind=("kind", "first"), n=("covered", "size"),
                                                        covered=("covered", "sum"))
        fam = iv[iv["kind"] == "family"].copy()
        fam["parameter"] = fam["name"].str.removesuffix("_f") + "[*]"
        pooled = fam.groupby("parameter", sort=False).agg(n=("covered", "size"), covered=("covered", "sum"))
        pooled.insert(0, "kind", "family-pooled")
        out = pd.concat([per, pooled])
        out["covered"] = out["covered"].astype(int)
        out["rate"] = out["covered"] / out["n"]
        return out


def truth_intervals(fit: Any, truth: Mapping[str, np.ndarray], interval: float = 0.9) -> pd.DataFrame:
    """Central posterior intervals of every parameter of a fit next to the true values.

    Quantiles are taken over all chains and draws of the fit's posterior
    (sampled sites and the paper-convention ``A``, ``B``), the same way
    ``Fit.summary`` computes q5/q95.
    """
    post = fit.datatree["posterior"]
    q = [(1 - interval) / 2, (1 + interval) / 2]
    rows = []
    for p in fit.spec.law_obj.params:
        if p.name in fit.spec.fixed:
            continue
        s, mode = p.sampled_name, fit.spec.pooling[p.name]
        names = {"complete": [s], "independent": [f"{s}_f"], "partial": [s, f"tau_{s}", f"{s}_f"]}[mode]
        if p.ref is not None:  # paper-convention amplitude, derived from A_ref and alpha
            names += [p.name] if mode != "independent" else []
        for name in names:
            kind = ("derived" if name == p.name and p.ref is not None
                    else "scale" if name.startswith("tau_") else "family" if name.endswith("_f") else "population")
            rows += _rows(post, truth, name, kind, q, fit.families)
    rows += _rows(post, truth, "sigma", "scale", q, fit.families)
    return pd.DataFrame(rows)


def _rows(post: Any, truth: Mapping[str, np.ndarray], name: str, kind: str, q: list[float],
          families: tuple[str, ...]) -> list[dict[str, Any]]:
    draws = np.asarray(post[name].values, dtype=np.float64)
    true = np.asarray(truth[name], dtype=np.float64)
    if name.endswith("_f"):
        flat = draws.reshape(-1, draws.shape[-1])
        lo, hi = np.quantile(flat, q, axis=0)
        base = name.removesuffix("_f")
        return [
            {"parameter": f"{base}[{fam}]", "name": name, "family": fam, "kind": kind, "truth": float(true[j]),
             "lower": float(lo[j]), "upper": float(hi[j]), "covered": bool(lo[j] <= true[j] <= hi[j])}
            for j, fam in enumerate(families)
        ]
    lo, hi = np.quantile(draws.reshape(-1), q)
    return [{"parameter": name, "name": name, "family": "", "kind": kind, "truth": float(true),
             "lower": float(lo), "upper": float(hi), "covered": bool(lo <= float(true) <= hi)}]


def run_recovery(cfg: RecoveryConfig, log: Log = None) -> RecoveryResult:
    """Simulate ``cfg.datasets`` tables from the prior, fit each, and record intervals vs truth.

    One design (a ladder drawn with ``cfg.seed``) is shared by all data sets, as
    in simulation-based calibration: truths and noise vary, the design does not
    (and the compiled sampler is reused through JAX's persistent compilation
    cache, folder ``cfg.cache_dir`` or bayescale's default). Data set ``i`` is simulated with seed
    ``1000 * cfg.seed + i`` and fitted with NUTS seed ``i``.
    """
    _enable_cache(cfg.cache_dir)
    t0 = time.perf_counter()
    design = sim.ladder(cfg.runs_per_family, cfg.families, seed=cfg.seed)
    intervals, fits = [], []
    for i in range(cfg.datasets):
        s = sim.simulate(design, law=cfg.law, hierarchy=cfg.hierarchy, seed=1000 * cfg.seed + i)
        rec = fit_recorded(s.runs, law=cfg.law, hierarchy=cfg.hierarchy, draws=cfg.draws, warmup=cfg.warmup,
                           chains=cfg.chains, seed=i)
        if rec.fit.families != s.spec.families:
            raise RuntimeError(f"family order changed: {rec.fit.families} vs {s.spec.families}")
        iv = truth_intervals(rec.fit, s.truth, cfg.interval)
        iv.insert(0, "dataset", i)
        intervals.append(iv)
        fits.append({"dataset": i, **rec.row()})
        _emit(log, f"[recovery {i + 1}/{cfg.datasets}] {rec.seconds:5.1f}s div={rec.divergences} "
                   f"rhat={rec.max_r_hat:.3f} ess_bulk={rec.min_ess_bulk:.0f} ess_tail={rec.min_ess_tail:.0f} "
                   f"covered={int(iv['covered'].sum())}/{len(iv)}")
    return RecoveryResult(cfg, pd.concat(intervals, ignore_index=True), pd.DataFrame(fits),
                          time.perf_counter() - t0)


# --------------------------------------------------------------------------- #
# (b) Borrowing strength                                                       #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class BorrowingConfig:
    """Settings of the borrowing-strength study.

    20 seeds by default: the per-seed difference in held-out log predictive
    density is heavy-tailed (a pilot of 20 seeds: mean +2.1 nats, sd 5.5, from
    -7.9 to +16.0; partial won 16 of 20), so with 5 seeds the sum would come
    out negative about one time in five even though partial pooling is better
    on average; with 20 about one time in twenty-five (normal approximation).
    """

    seeds: int = 20
    big_families: int = 3
    big_runs: int = 20
    small_train: int = 3
    small_test: int = 10
    law: str = "chinchilla"
    draws: int = 1000
    warmup: int = 500
    chains: int = 4
    seed: int = 0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.small_train < 2 or self.small_test < 1 or self.big_runs < 2:
            raise ValueError(f"bad borrowing settings: {self}")


@dataclass(frozen=True)
class BorrowingResult:
    """Held-out log predictive density of the small family, partial vs independent pooling.

    ``table`` has one row per seed: ``lpd_partial``, ``lpd_independent`` (sums
    over the held-out runs, nats), ``diff`` (partial minus independent),
    ``diff_se`` (standard error of the sum of pointwise differences,
    sqrt(n) x sd, as in LOO comparisons), divergences and diagnostics of both
    fits, and seconds.
    """

    config: BorrowingConfig
    table: pd.DataFrame
    seconds: float

    @property
    def total_diff(self) -> float:
        return float(self.table["diff"].sum())

    @property
    def wins(self) -> int:
        return int((self.table["diff"] > 0).sum())


def run_borrowing(cfg: BorrowingConfig, log: Log = None) -> BorrowingResult:
    """Fit partial vs independent pooling with a 3-run family; score its held-out runs.

    The design is one ladder (seed ``cfg.seed``): ``cfg.big_families`` families
    of ``cfg.big_runs`` runs and a family ``small`` of
    ``small_train + small_test`` runs whose first ``small_train`` (random sizes,
    the ladder is random) are for training. For seed ``k`` the truth and noise
    are drawn from the partially pooled model's prior predictive on the whole
    design (seed ``1000 * cfg.seed + 500 + k``); both fits use NUTS seed ``k``.
    """
    _enable_cache(cfg.cache_dir)
    t0 = time.perf_counter()
    names = [f"f{i}" for i in range(cfg.big_families)] + ["small"]
    counts = [cfg.big_runs] * cfg.big_families + [cfg.small_train + cfg.small_test]
    design = sim.ladder(counts, names, seed=cfg.seed)
    small_rows = np.flatnonzero(design["family"].to_numpy() == "small")
    test_mask = np.zeros(len(design), bool)
    test_mask[small_rows[cfg.small_train:]] = True
    rows = []
    for k in range(cfg.seeds):
        t1 = time.perf_counter()
        s = sim.simulate(design, law=cfg.law, hierarchy="partial", seed=1000 * cfg.seed + 500 + k)
        train, test = s.runs[~test_mask].reset_index(drop=True), s.runs[test_mask].reset_index(drop=True)
        row: dict[str, Any] = {"seed": k}
        point = {}
        for mode in ("partial", "independent"):
            rec = fit_recorded(train, law=cfg.law, hierarchy=mode, draws=cfg.draws, warmup=cfg.warmup,
                               chains=cfg.chains, seed=k)
            point[mode] = pointwise_lpd(rec.fit, test, seed=k)
            row.update({f"lpd_{mode}": float(point[mode].sum()), f"divergences_{mode}": rec.divergences,
                        f"ok_{mode}": rec.ok, f"max_r_hat_{mode}": rec.max_r_hat,
                        f"min_ess_bulk_{mode}": rec.min_ess_bulk, f"seconds_{mode}": rec.seconds})
        d = point["partial"] - point["independent"]
        row["diff"] = float(d.sum())
        row["diff_se"] = float(math.sqrt(len(d)) * d.std(ddof=1)) if len(d) > 1 else float("nan")
        row["seconds"] = time.perf_counter() - t1
        rows.append(row)
        _emit(log, f"[borrowing {k + 1}/{cfg.seeds}] lpd partial={row['lpd_partial']:.2f} "
                   f"independent={row['lpd_independent']:.2f} diff={row['diff']:.2f} (se {row['diff_se']:.2f}) "
                   f"div={row['divergences_partial']}/{row['divergences_independent']} {row['seconds']:.0f}s")
    return BorrowingResult(cfg, pd.DataFrame(rows), time.perf_counter() - t0)


# --------------------------------------------------------------------------- #
# Report                                                                       #
# --------------------------------------------------------------------------- #


def coverage_checks(result: RecoveryResult, level: float = 0.99) -> pd.DataFrame:
    """Coverage table with the binomial bands each count is judged against.

    ``band_99`` is the per-count 99% band (39..50 for 50 data sets);
    ``band_fw`` the Bonferroni band that keeps the chance of any false alarm
    over all asserted counts below ``1 - level``; ``ok`` tests ``band_fw`` for
    the asserted kinds (NaN for report-only rows).
    """
    cov = result.coverage()
    p = result.config.interval
    asserted = cov["kind"].isin(ASSERTED_KINDS)
    n_checks = int(asserted.sum())
    lo99, hi99, lofw, hifw, ok = [], [], [], [], []
    for (_, r), a in zip(cov.iterrows(), asserted, strict=True):
        if a:
            b99 = binomial_band(int(r["n"]), p, level)
            bfw = familywise_band(int(r["n"]), p, n_checks, level)
            lo99.append(b99[0]), hi99.append(b99[1]), lofw.append(bfw[0]), hifw.append(bfw[1])
            ok.append(bool(bfw[0] <= r["covered"] <= bfw[1]))
        else:
            lo99.append(np.nan), hi99.append(np.nan), lofw.append(np.nan), hifw.append(np.nan)
            ok.append(np.nan)
    cov["band_99"] = [f"{int(a)}..{int(b)}" if a == a else "" for a, b in zip(lo99, hi99, strict=True)]
    cov["band_fw"] = [f"{int(a)}..{int(b)}" if a == a else "" for a, b in zip(lofw, hifw, strict=True)]
    cov["in_99"] = [bool(a <= c <= b) if a == a else np.nan for a, b, c in zip(lo99, hi99, cov["covered"], strict=True)]
    cov["ok"] = ok
    return cov


def summarise(rec: RecoveryResult | None, bor: BorrowingResult | None) -> dict[str, Any]:
    """JSON-ready summary of both studies."""
    out: dict[str, Any] = {}
    if rec is not None:
        checks = coverage_checks(rec)
        f = rec.fits
        out["recovery"] = {
            "config": asdict(rec.config),
            "seconds": rec.seconds,
            "coverage": checks.reset_index().to_dict(orient="records"),
            "fits": {
                "n": len(f), "with_divergences": int((f["divergences"] > 0).sum()),
                "divergences_total": int(f["divergences"].sum()), "failed_diagnostics": int((~f["ok"]).sum()),
                "median_seconds": float(f["seconds"].median()),
                "per_fit": f.to_dict(orient="records"),
            },
            "intervals": rec.intervals.to_dict(orient="records"),
        }
    if bor is not None:
        out["borrowing"] = {
            "config": asdict(bor.config), "seconds": bor.seconds, "total_diff": bor.total_diff,
            "wins": bor.wins, "per_seed": bor.table.to_dict(orient="records"),
        }
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer | np.bool_):
        return o.item()
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    raise TypeError(type(o).__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=50, help="simulated data sets for coverage (0 skips)")
    parser.add_argument("--runs-per-family", type=int, default=16)
    parser.add_argument("--borrow-seeds", type=int, default=20, help="seeds for borrowing strength (0 skips)")
    parser.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain")
    parser.add_argument("--warmup", type=int, default=500, help="NUTS warmup per chain")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")), help="results JSON")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="persistent JAX compilation cache (default: $BAYESCALE_CACHE_DIR or "
                             "~/.cache/bayescale/jax)")
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    rec = bor = None
    if args.datasets > 0:
        rec = run_recovery(RecoveryConfig(datasets=args.datasets, runs_per_family=args.runs_per_family,
                                          draws=args.draws, warmup=args.warmup, chains=args.chains,
                                          seed=args.seed, cache_dir=args.cache_dir), log=log)
    if args.borrow_seeds > 0:
        bor = run_borrowing(BorrowingConfig(seeds=args.borrow_seeds, draws=args.draws, warmup=args.warmup,
                                            chains=args.chains, seed=args.seed, cache_dir=args.cache_dir), log=log)
    summary = summarise(rec, bor)
    pd.set_option("display.width", 140)
    if rec is not None:
        print(f"\n(a) coverage of central {rec.config.interval:.0%} intervals over {rec.config.datasets} data sets")
        print(coverage_checks(rec).to_string())
        s = summary["recovery"]["fits"]
        print(f"fits with divergences: {s['with_divergences']}/{s['n']} (total {s['divergences_total']}); "
              f"failed diagnostics: {s['failed_diagnostics']}; median {s['median_seconds']:.1f}s per fit; "
              f"total {rec.seconds:.0f}s")
    if bor is not None:
        print("\n(b) held-out log predictive density of the 3-run family (nats, sum over held-out runs)")
        print(bor.table[["seed", "lpd_partial", "lpd_independent", "diff", "diff_se",
                         "divergences_partial", "divergences_independent"]].to_string(index=False))
        print(f"partial - independent: total {bor.total_diff:.2f}, partial wins {bor.wins}/{len(bor.table)}; "
              f"total {bor.seconds:.0f}s")
    Path(args.out).write_text(json.dumps(summary, indent=1, default=_json_default))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
