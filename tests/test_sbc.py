"""Simulation-based calibration: a 10-replication smoke run (the 100-replication
runs are in benchmarks/sbc.py) and the rank statistics on arrays checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bayescale.sbc import SBCResult, run_sbc
from bayescale.simulate import ladder


def make(ranks, n_ranks=9, bins=10):
    ranks = np.asarray(ranks)
    reps = ranks.shape[0]
    return SBCResult("chinchilla", "complete", tuple(f"p{j}" for j in range(ranks.shape[1])), ranks, n_ranks,
                     np.zeros(reps, int), np.ones(reps, bool), np.full(reps, 500.0), bins)


def test_uniform_ranks_pass_and_piled_up_ranks_fail():
    uniform = np.tile(np.arange(10), 10)[:, None]  # each rank 0..9 ten times: a perfectly flat histogram
    piled = np.zeros((100, 1), int)  # the truth always below every draw: overdispersed posterior or bias
    assert make(uniform).table().loc["p0", "p_value"] == pytest.approx(1.0)
    assert not make(piled).table().loc["p0", "uniform"]
    assert make(uniform).counts()[:, 0].tolist() == [10] * 10


def test_bonferroni_threshold():
    r = make(np.tile(np.arange(10), 10)[:, None].repeat(4, axis=1))
    assert r.table()["threshold"].iloc[0] == pytest.approx(0.01 / 4)


def test_ranks_outside_range_rejected():
    with pytest.raises(ValueError):
        make(np.full((5, 1), 12))


def test_sbc_smoke_10_replications(tmp_path):
    res = run_sbc(ladder(15, families=1, seed=3), law="chinchilla", hierarchy="complete", reps=10, draws=150,
                  warmup=150, chains=2, n_ranks=99, seed=0)
    assert res.ranks.shape == (10, 6) and res.params == ("E", "A_ref", "B_ref", "alpha", "beta", "sigma")
    assert res.ranks.min() >= 0 and res.ranks.max() <= 99
    # a grossly miscalibrated parameter puts all 10 truths in the outer 10% of its ranks;
    # for a calibrated one that has probability 0.1**10 per parameter
    outer = (res.ranks < 5) | (res.ranks > 94)
    assert not outer.all(axis=0).any()
    res.plot(tmp_path / "ranks.png")
    assert (tmp_path / "ranks.png").stat().st_size > 1000
