"""Slow tier: parameter recovery and borrowing strength on simulated ladders.

Run with ``pytest -m slow tests/test_recovery.py`` (90 NUTS fits; ~45-60 min on
2 busy cores: fits after the first of each model load the compiled sampler from
JAX's persistent cache and then take ~30-60 s each). The loops live in
``benchmarks/recovery.py`` (also a script), so the test and the benchmark
measure the same thing.

(a) Coverage. 50 tables, each simulated from the prior predictive of the
    partially pooled Chinchilla model (4 families x 16 runs; truth drawn from
    the prior, :mod:`bayescale.simulate`), fitted with the same model. With
    correct inference each parameter's count of central 90% intervals that
    cover the truth is Binomial(50, 0.9) (Talts et al. 2018). The per-count 99%
    band is 39..50 (checked below with scipy), but 31 counts are asserted
    (5 population locations, 5 tau, sigma, 5 x 4 family values): at 0.32% false
    alarms each, a correct sampler would fail about one run in ten. We assert
    the Bonferroni band that keeps the chance of any false alarm over all 31
    below 1% (36..50; P(X <= 35) = 7.4e-5 per count), and record counts outside
    39..50 in the log. Fits with divergences or failed diagnostics stay in the
    counts (dropping them would select on the data).
(b) Borrowing strength. 3 families of 20 runs and one of 3 runs; 10 more runs
    of the small family from the same truth are held out. Partial pooling must
    predict them better (higher held-out log predictive density) than
    independent fits, summed over 20 seeds and in a majority of them. Truths
    come from the partially pooled prior, so partial pooling is the better
    predictor on average (its posterior predictive is the true conditional
    density), but single seeds can go either way by several nats: a 5-seed
    pilot had partial ahead in 4 seeds yet behind on the sum (-1.5 nats, one
    seed at -7.9 with tau_alpha in the top 1% of its prior and sigma = 0.002).
    20 seeds bring the chance of a negative sum under ~5% (pilot sd 5.5 nats
    per seed, mean +2.1).

Progress and a JSON summary go to the pytest temporary directory
(``<basetemp>/recovery*/``: progress.log, coverage.txt, recovery.json, borrowing.json).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _load_benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "recovery.py"
    spec = importlib.util.spec_from_file_location("bayescale_benchmark_recovery", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()

RECOVERY = bench.RecoveryConfig(datasets=50, runs_per_family=16, families=4, draws=1000, warmup=500, chains=4,
                                seed=0, interval=0.9)
# seed=1: the pilot that chose 20 seeds (BorrowingConfig's docstring) used seed=0, so these draws are fresh
BORROWING = bench.BorrowingConfig(seeds=20, big_families=3, big_runs=20, small_train=3, small_test=10, draws=1000,
                                  warmup=500, chains=4, seed=1)


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    return tmp_path_factory.mktemp("recovery")


def _logger(path: Path):
    def log(text: str) -> None:
        with path.open("a") as fh:
            fh.write(text + "\n")

    return log


@pytest.fixture(scope="module")
def recovery(outdir):
    result = bench.run_recovery(RECOVERY, log=_logger(outdir / "progress.log"))
    (outdir / "recovery.json").write_text(json.dumps(bench.summarise(result, None), indent=1,
                                                     default=bench._json_default))
    return result


@pytest.fixture(scope="module")
def borrowing(outdir):
    result = bench.run_borrowing(BORROWING, log=_logger(outdir / "progress.log"))
    (outdir / "borrowing.json").write_text(json.dumps(bench.summarise(None, result), indent=1,
                                                      default=bench._json_default))
    return result


def test_binomial_bands():
    from scipy.stats import binom

    assert bench.binomial_band(50, 0.9, 0.99) == (39, 50)
    assert binom.cdf(38, 50, 0.9) < 0.005 <= binom.cdf(39, 50, 0.9)
    lo, hi = bench.familywise_band(50, 0.9, n_checks=31, level=0.99)
    assert (lo, hi) == (36, 50)
    assert 31 * binom.cdf(lo - 1, 50, 0.9) < 0.01


def test_every_data_set_is_fitted_and_counted(recovery):
    fits, iv = recovery.fits, recovery.intervals
    assert len(fits) == RECOVERY.datasets
    assert sorted(iv["dataset"].unique()) == list(range(RECOVERY.datasets))
    # 5 law parameters x (population, tau, 4 families) + sigma + derived A, B
    assert (iv.groupby("dataset").size() == 5 * 6 + 1 + 2).all()
    assert np.isfinite(iv[["truth", "lower", "upper"]].to_numpy()).all()
    assert (iv["lower"] <= iv["upper"]).all()


def test_coverage_of_central_90_intervals(recovery, outdir):
    checks = bench.coverage_checks(recovery, level=0.99)
    asserted = checks[checks["kind"].isin(bench.ASSERTED_KINDS)]
    assert len(asserted) == 31
    assert (asserted["n"] == RECOVERY.datasets).all()
    (outdir / "coverage.txt").write_text(checks.to_string())
    bad = asserted[~asserted["ok"].astype(bool)]
    assert bad.empty, f"coverage outside the family-wise binomial band:\n{bad.to_string()}\n\nall:\n{checks.to_string()}"


def test_partial_pooling_predicts_a_three_run_family_better(borrowing):
    t = borrowing.table
    assert len(t) == BORROWING.seeds
    assert np.isfinite(t[["lpd_partial", "lpd_independent"]].to_numpy()).all()
    msg = t[["seed", "lpd_partial", "lpd_independent", "diff", "diff_se"]].to_string(index=False)
    assert borrowing.total_diff > 0, msg
    assert borrowing.wins > BORROWING.seeds / 2, msg
