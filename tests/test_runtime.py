"""bayescale.runtime: the fast JAX settings applied when a fit first loads JAX, in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


def test_a_plain_script_fit_gets_a_device_per_chain_and_the_cache(tmp_path):
    code = (
        "import sys, bayescale as bs\n"
        "assert 'jax' not in sys.modules\n"
        "df = bs.datasets.load('chinchilla').iloc[::10]\n"
        "bs.fit(df, draws=20, warmup=20, chains=4, discrepancy=None, progress=False, warn=False)\n"
        "import jax\n"
        "print(jax.local_device_count(), jax.config.jax_compilation_cache_dir)\n"
    )
    proc = _run(code, BAYESCALE_CACHE_DIR=str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    devices, folder = proc.stdout.split()
    assert int(devices) == 4 and folder == str(tmp_path / "cache")
    assert any((tmp_path / "cache").iterdir())  # compiled programs were written


@pytest.mark.parametrize("started", [False, True])
def test_opt_outs_and_the_note_when_jax_started_first(tmp_path, started):
    code = (
        "import warnings, bayescale.runtime as rt\n"
        + ("import jax, jax.numpy as jnp; jnp.ones(1).block_until_ready()\n" if started else "")
        + "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    rt.prepare(4)\n"
        "import jax\n"
        "print(jax.local_device_count(), bool(jax.config.jax_compilation_cache_dir), "
        "sum(issubclass(x.category, rt.PerformanceNote) for x in w))\n"
    )
    if started:  # JAX's backend already running with one device: a one-line note, chains still run
        proc = _run(code, BAYESCALE_CACHE_DIR=str(tmp_path))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["1", "True", "1"]
    else:  # both opted out: JAX keeps its single device and no disk cache
        proc = _run(code, BAYESCALE_CACHE_DIR="off", BAYESCALE_HOST_DEVICES="0")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["1", "False", "0"]
