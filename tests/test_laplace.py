"""approx="laplace": a normal approximation at the posterior mode, labelled approximate.

On Epoch's 240 Chinchilla runs the posterior is close to normal in the sampler's
unconstrained coordinates, so the approximation must agree with NUTS: medians
within 0.25 NUTS posterior sd, sds within 20%. The Monte Carlo error of an sd from
4000 (NUTS: >= 2800 effective) draws is about 1.5%, and of a median about 0.03 sd,
so these bounds leave room only for the approximation's own error; a Hessian off
by a factor 2 moves sds by 41% and fails.
"""

from __future__ import annotations

import pytest

import bayescale as bs
from bayescale.cli import run
from bayescale.data import DataError


@pytest.fixture(scope="module")
def laplace_fit():
    return bs.fit(bs.datasets.load("chinchilla", epoch_subset=True), approx="laplace", draws=4000, seed=0)


def test_laplace_agrees_with_nuts_on_chinchilla(laplace_fit, epoch240_fit):
    lap, nuts = laplace_fit.summary(), epoch240_fit.summary()
    for name in ("E", "A", "B", "alpha", "beta", "sigma"):
        sd = nuts.loc[name, "sd"]
        assert abs(lap.loc[name, "q50"] - nuts.loc[name, "q50"]) < 0.25 * sd, name
        assert 0.8 < lap.loc[name, "sd"] / sd < 1.2, name


def test_laplace_is_labelled_approximate_everywhere(laplace_fit, tmp_path, capsys):
    assert laplace_fit.approximate == "laplace"
    assert "APPROXIMATE" in repr(laplace_fit)
    d = laplace_fit.diagnose()
    assert d.ok and any("APPROXIMATE" in m for m in d.messages)
    again = bs.load_fit(laplace_fit.save(tmp_path / "lap.nc"))
    assert again.approximate == "laplace" and again.diagnose().messages == d.messages
    code = run(["fit", "dataset:chinchilla", "--approx", "laplace", "-o", str(tmp_path / "cli.nc")])
    out = capsys.readouterr().out
    assert code == 0 and "APPROXIMATE posterior (laplace)" in out


def test_nuts_fit_is_not_approximate(small_fit):
    assert small_fit.approximate is None


def test_unknown_approx_is_a_data_error():
    with pytest.raises(DataError, match="approx"):
        bs.fit(bs.datasets.load("chinchilla"), approx="vi")
