"""The `bayescale` command: verbs, --json, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bayescale.cli import EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE, run


@pytest.fixture(scope="module")
def saved_fit(small_fit, tmp_path_factory):
    return small_fit.save(tmp_path_factory.mktemp("cli") / "fit.nc")


def test_datasets_lists_every_bundled_dataset(capsys):
    assert run(["datasets"]) == EXIT_OK
    out = capsys.readouterr().out
    for name in ("chinchilla", "datablations", "datablations_all", "datablations_curves", "gadre"):
        assert name in out
    assert run(["datasets", "--json"]) == EXIT_OK
    names = [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert "gadre" in names


def test_summary_and_json(saved_fit, small_fit, capsys):
    code = run(["summary", str(saved_fit), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == (EXIT_OK if small_fit.diagnose().ok else EXIT_DIAGNOSTICS)
    rows = {r["parameter"]: r for r in payload["summary"]}
    assert rows["alpha"]["q50"] == pytest.approx(small_fit.summary().loc["alpha", "q50"])
    assert set(payload["diagnostics"]) >= {"ok", "divergences", "max_r_hat"}


def test_predict_matches_api(saved_fit, small_fit, capsys):
    assert run(["predict", str(saved_fit), "--N", "70B", "--D", "1.4T", "--json"]) == EXIT_OK
    cap = capsys.readouterr()
    got = json.loads(cap.out)["predictions"][0]
    want = small_fit.predict(pd.DataFrame({"N": [7e10], "D": [1.4e12]})).iloc[0]
    assert got["median"] == pytest.approx(want["median"]) and got["upper"] == pytest.approx(want["upper"])
    assert "decades" in cap.err  # the extrapolation is announced
    assert run(["predict", str(saved_fit), "--N", "7e10", "--D", "1.4e12"]) == EXIT_OK
    assert "90% observation interval" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["predict", "{fit}", "--N", "-5", "--D", "1e9"], "N"),
        (["predict", "{fit}", "--N", "abc", "--D", "1e9"], "N"),
        (["predict", "{fit}"], "--N"),
        (["summary", "{missing}"], "no such file"),
        (["fit", "{badcsv}", "-o", "{out}"], "loss"),
        (["fit", "{goodcsv}", "--law", "nope", "-o", "{out}"], "unknown law"),
        (["fit", "{goodcsv}", "--prior", "alpha=Normal(", "-o", "{out}"], "alpha"),
        (["fit", "{goodcsv}", "--fix", "Z=1", "-o", "{out}"], "Z"),
        (["fit", "{goodcsv}", "--target-accept", "1.5", "-o", "{out}"], "target_accept"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_input_exit_2_one_line(argv, fragment, saved_fit, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("N,D,loss\n1e8,2e9,3.1\n2e8,4e9,nan\n")
    good = tmp_path / "good.csv"
    good.write_text("N,D,loss\n1e8,2e9,3.1\n2e8,4e9,2.9\n4e8,8e9,2.7\n")
    subs = {"fit": str(saved_fit), "missing": str(tmp_path / "none.nc"), "badcsv": str(bad),
            "goodcsv": str(good), "out": str(tmp_path / "o.nc")}
    code = run([a.format(**subs) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USAGE
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert fragment in err


def test_fit_writes_file_and_exit_3_when_diagnostics_fail(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    import bayescale as bs

    bs.datasets.load("chinchilla", epoch_subset=True).iloc[::8].to_csv(csv, index=False)
    out = tmp_path / "short.nc"
    # 15 draws from 2 chains cannot reach ESS 400: the run must say so with exit code 3
    code = run(["fit", str(csv), "--draws", "15", "--warmup", "15", "--chains", "2", "-o", str(out)])
    text = capsys.readouterr().out
    assert code == EXIT_DIAGNOSTICS
    assert "FAILED" in text and out.exists()


def test_fit_target_accept_reaches_the_sampler_and_the_file(tmp_path, capsys):
    import bayescale as bs

    csv = tmp_path / "runs.csv"
    bs.datasets.load("chinchilla", epoch_subset=True).iloc[::8].to_csv(csv, index=False)
    out = tmp_path / "ta.nc"
    run(["fit", str(csv), "--draws", "15", "--warmup", "15", "--chains", "2", "--target-accept", "0.9",
         "--discrepancy", "none", "-o", str(out)])
    capsys.readouterr()
    assert bs.load_fit(out).sampler.target_accept == 0.9


def test_strict_turns_failed_diagnostics_into_an_error(tmp_path, capsys):
    import bayescale as bs

    csv = tmp_path / "runs.csv"
    bs.datasets.load("chinchilla", epoch_subset=True).iloc[::8].to_csv(csv, index=False)
    out = tmp_path / "strict.nc"
    code = run(["fit", str(csv), "--draws", "15", "--warmup", "15", "--chains", "2", "--strict", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_DIAGNOSTICS and not out.exists()
    assert len(err.splitlines()) == 1 and "diagnostics" in err
    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::8]
    with pytest.raises(bs.DiagnosticsError) as info:
        bs.fit(df, draws=15, warmup=15, chains=2, strict=True, progress=False, discrepancy=None)
    assert not info.value.fit.diagnose().ok
    with pytest.warns(bs.DiagnosticsWarning, match="ESS"):
        bs.fit(df, draws=15, warmup=15, chains=2, progress=False, discrepancy=None)


def test_load_rejects_incompatible_format_version(small_fit, tmp_path):
    import xarray as xr

    import bayescale as bs

    path = small_fit.save(tmp_path / "f.nc")
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        dt = tree.load()
    dt.attrs["bayescale_format"] = 99
    dt.to_netcdf(tmp_path / "future.nc", engine="h5netcdf")
    with pytest.raises(bs.FitFileError, match="format 99"):
        bs.load_fit(tmp_path / "future.nc")
    assert run(["summary", str(tmp_path / "future.nc")]) == EXIT_USAGE
    saved = xr.open_datatree(path, engine="h5netcdf")
    assert saved.attrs["law"] == "chinchilla" and saved.attrs["bayescale_version"] == bs.__version__
    saved.close()


def test_installed_command_bad_file_is_fast_and_clean(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"N,D,loss\n\xff\xfe,1,2\n")
    exe = Path(sys.executable).with_name("bayescale")
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), "fit", str(bad)], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == EXIT_USAGE
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert elapsed < 5.0  # validation happens before JAX is imported (measured well under 1 s locally)


def test_compare_verb(tmp_path, capsys):
    import bayescale as bs

    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::6]
    kw = dict(draws=100, warmup=100, chains=2, seed=2, progress=False, warn=False, discrepancy=None)
    a = bs.fit(df, law="chinchilla", **kw).save(tmp_path / "chin.nc")
    b = bs.fit(df, law="kaplan", **kw).save(tmp_path / "kap.nc")
    assert run(["compare", str(a), str(b), "--method", "waic", "--json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)["table"]
    assert [r["model"] for r in rows] == ["chin", "kap"] and rows[0]["rank"] == 0
    assert run(["compare", str(a)]) == EXIT_USAGE


def test_backtest_verb(tmp_path, capsys):
    import bayescale as bs

    csv = tmp_path / "runs.csv"
    bs.datasets.load("chinchilla", epoch_subset=True).iloc[::4].to_csv(csv, index=False)
    code = run(["backtest", str(csv), "--holdout", "0.2", "--draws", "100", "--warmup", "100", "--chains", "2",
                "--no-baseline", "--json"])
    assert code == EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    assert "scores" in payload


def test_demo_writes_fit_prediction_and_report(tmp_path, capsys):
    code = run(["demo", "--out", str(tmp_path), "--draws", "200", "--warmup", "200", "--chains", "2"])
    out = capsys.readouterr().out
    assert code in (0, 3)  # short chains may fail the ESS >= 400 rule; the exit code says so
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chinchilla_fit.nc", "prediction_70B_1.4T.csv",
                                                          "report.html"]
    assert "90% predictive interval" in out and "risk-aware plan" in out and "cvar:0.9" in out
    assert "Plan for 1e+23 FLOPs" in (tmp_path / "report.html").read_text()
