"""bayescale.nuts: the exported NUTS program draws what numpyro's MCMC.run draws, is
stored beside the compilation cache, reused by a fresh start, and rebuilt when its
file is damaged or the settings change."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import bayescale as bs
from bayescale import nuts
from bayescale.data import validate
from bayescale.inference import SamplerConfig, build_spec, choose_chain_method, run_nuts

CFG = SamplerConfig(draws=150, warmup=150, chains=2, seed=5)


@pytest.fixture(scope="module")
def problem():
    data = validate(bs.datasets.load("chinchilla", epoch_subset=True).iloc[::3])
    return build_spec("chinchilla", data), data


def test_program_draws_equal_mcmc_run(problem):
    """Same kernel, same per-chain keys: the chains agree draw by draw (float32 rounding aside)."""
    spec, data = problem
    ours, extra = run_nuts(spec, data, CFG, progress=False)
    theirs, extra_mcmc = run_nuts(spec, data, CFG, progress=True)  # numpyro's MCMC.run
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-4, atol=1e-6, err_msg=k)
    np.testing.assert_array_equal(extra["num_steps"], extra_mcmc["num_steps"])
    # the same float32 budget as the draws: with a device per chain (bs.fit asks for them) the
    # program runs under shard_map and MCMC.run under pmap, compiled apart (seen: 3.1e-5)
    np.testing.assert_allclose(extra["log_joint"], extra_mcmc["log_joint"], rtol=1e-4)


def test_program_is_stored_and_reused(problem, monkeypatch):
    spec, data = problem
    first, _ = run_nuts(spec, data, CFG, progress=False)
    method = choose_chain_method(CFG.chains, CFG.chain_method)
    import jax

    path = nuts._store() / f"{nuts.program_key(spec, CFG, data.n_rows, method, jax.device_count())}.jaxexport"
    assert path.is_file()
    nuts.clear()  # as a fresh process: only the stored program is left

    def no_tracing(*a, **k):
        raise AssertionError("traced the sampler again instead of loading the stored program")

    monkeypatch.setattr(nuts, "_build", no_tracing)
    again, _ = run_nuts(spec, data, CFG, progress=False)
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
    monkeypatch.undo()

    path.write_bytes(b"not an exported program")
    nuts.clear()
    rebuilt, _ = run_nuts(spec, data, CFG, progress=False)
    for k in first:
        np.testing.assert_array_equal(first[k], rebuilt[k])
    assert path.read_bytes() != b"not an exported program"


def test_program_key_covers_settings_not_seed(problem):
    spec, data = problem
    key = nuts.program_key(spec, CFG, data.n_rows, "vectorized", 1)
    assert nuts.program_key(spec, replace(CFG, seed=9), data.n_rows, "vectorized", 1) == key
    other_spec = build_spec("chinchilla", data, priors={"alpha": "Normal(0.35, 0.1)"})
    for changed in (
        nuts.program_key(spec, replace(CFG, draws=151), data.n_rows, "vectorized", 1),
        nuts.program_key(spec, replace(CFG, target_accept=0.9), data.n_rows, "vectorized", 1),
        nuts.program_key(spec, CFG, data.n_rows + 1, "vectorized", 1),
        nuts.program_key(spec, CFG, data.n_rows, "sequential", 1),
        nuts.program_key(other_spec, CFG, data.n_rows, "vectorized", 1),
    ):
        assert changed != key
    import jax

    with jax.enable_x64(True):  # a program traced in float64 is another program
        assert nuts.program_key(spec, CFG, data.n_rows, "vectorized", 1) != key
