"""Shared fixtures: a handful of small real fits, built once per session.

Real NUTS runs on bundled data, kept small so the default test run stays within
minutes on 2 cores; the statistical checks that need many fits live in the slow
tier (``pytest -m slow``).
"""

from __future__ import annotations

import warnings

import pytest

import bayescale as bs


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
    """Fits of one shape recur across tests: share compiled samplers through JAX's disk cache."""
    from bayescale.inference import enable_compilation_cache

    enable_compilation_cache(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Keep the session's memory mappings well under Linux's limit (bayescale.inference)."""
    yield
    from bayescale.inference import release_compiled_if_crowded

    release_compiled_if_crowded(limit=20_000)


@pytest.fixture(scope="session")
def epoch240_fit():
    """The Chinchilla law at bs.fit's defaults on Epoch's 240 runs (Besiroglu et al. 2024)."""
    df = bs.datasets.load("chinchilla", epoch_subset=True)
    return bs.fit(df, law="chinchilla", seed=0, progress=False)


@pytest.fixture(scope="session")
def gadre_partial_fit():
    """Partial pooling across Gadre et al.'s 3 training sets (short chains). Plain: no test
    of it reads a discrepancy, whose four internal partially pooled fits would cost ~1 min."""
    df = bs.datasets.load("gadre")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.DiagnosticsWarning)
        return bs.fit(df, law="chinchilla", hierarchy="partial", draws=300, warmup=300, chains=2, seed=1,
                      progress=False, discrepancy=None)


@pytest.fixture(scope="session")
def small_fit():
    """A quick single-family fit for API mechanics (save/load, predict, CLI)."""
    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.DiagnosticsWarning)
        return bs.fit(df, law="chinchilla", draws=200, warmup=200, chains=2, seed=3, progress=False)
