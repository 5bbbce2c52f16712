"""Sweeps (bayescale.sweeping, bayescale.executors): the same scores under every executor,
failures as rows, resuming from a streamed file, the CLI verb, multi-cut backtests and
SBC replications as tasks.

Small real fits (60 Chinchilla runs, 2 chains x 200 draws): the tasks of one shape are
compiled once per process and shared through JAX's persistent cache, so the file runs in
about a minute on 2 cores.
"""

from __future__ import annotations

import json
import operator
import os
import re
import sys

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import cli
from bayescale.backtesting import split
from bayescale.executors import run_tasks
from bayescale.sweeping import COLUMNS, SCORE_COLUMNS, read_records

DF = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::4].reset_index(drop=True)
SAMPLER = {"draws": 200, "warmup": 200, "chains": 2, "seed": 0}
SPLITS = [0.2, 0.4]
# the training runs of the 0.2 split: a plain fit of them is the same model, and the same
# compiled sampler, as that split's fit (the tests below reuse it instead of compiling again)
TRAIN = DF.iloc[split(bs.validate(DF), 0.2)[0]].reset_index(drop=True)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "local.jsonl"
    return bs.sweep(DF, laws="chinchilla", splits=SPLITS, out=out, **SAMPLER)


def _scores(result) -> pd.DataFrame:
    return result.table[["task_id", *SCORE_COLUMNS]].reset_index(drop=True)


def test_local_sweep_table_and_stream(local_sweep):
    t = local_sweep.table
    assert list(t.columns) == list(COLUMNS)
    assert t["split"].tolist() == SPLITS and (t["status"] == "ok").all() and local_sweep.ok
    assert all(re.fullmatch(r"[0-9a-f]{16}", x) for x in t["task_id"]) and t["task_id"].is_unique
    assert t["n_test"].tolist() == [12, 24] and (t["n_train"] + t["n_test"] == len(DF)).all()
    assert t[["coverage_50", "coverage_90"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (t["crps"] > 0).all() and np.isfinite(t["elpd_loo"]).all()
    assert t["huber_crps"].isna().all()  # baseline off by default
    lines = local_sweep.out.read_text().splitlines()
    assert [json.loads(x)["task_id"] for x in lines] == t["task_id"].tolist()
    s = local_sweep.summaries()
    assert set(s["parameter"]) >= {"E", "A", "B", "alpha", "beta", "sigma"}


def test_processes_executor_gives_identical_scores(local_sweep):
    res = bs.sweep(DF, laws="chinchilla", splits=SPLITS, executor="processes", workers=2, **SAMPLER)
    assert res.ok, res.table["error"].tolist()
    assert not res.table["worker"].str.endswith(f":{os.getpid()}").any()  # it really ran elsewhere
    pd.testing.assert_frame_equal(_scores(res), _scores(local_sweep), check_exact=True)
    pd.testing.assert_frame_equal(res.summaries(), local_sweep.summaries(), check_exact=True)


def test_ray_executor_on_a_local_instance_gives_identical_scores(local_sweep):
    ray = pytest.importorskip("ray", reason='ray is in the dev extra: pip install -e ".[dev]"')
    res = bs.sweep(DF, laws="chinchilla", splits=SPLITS, executor="ray", workers=2, **SAMPLER)
    assert not ray.is_initialized()  # the instance the sweep started is shut down again
    assert res.ok, res.table["error"].tolist()
    assert not res.table["worker"].str.endswith(f":{os.getpid()}").any()
    pd.testing.assert_frame_equal(_scores(res), _scores(local_sweep), check_exact=True)
    pd.testing.assert_frame_equal(res.summaries(), local_sweep.summaries(), check_exact=True)


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_an_error_in_one_task_is_its_row(executor):
    got = {i: (v, e) for i, v, e in run_tasks(operator.truediv, [4.0, 0.0, 2.0], shared=1.0, executor=executor,
                                               workers=2)}
    assert got[0] == (0.25, None) and got[2] == (0.5, None)
    assert got[1][0] is None and got[1][1].startswith("ZeroDivisionError")


def test_failing_task_is_recorded_and_the_rest_complete(tmp_path):
    res = bs.sweep(TRAIN, laws="chinchilla", priors={"default": None, "bad": {"nope": "Normal(0, 1)"}},
                   splits=None, out=tmp_path / "s.jsonl", **SAMPLER)
    t = res.table.set_index("priors")
    assert t.loc["default", "status"] == "ok" and t.loc["bad", "status"] == "error"
    assert "nope" in t.loc["bad", "error"] and "\n" not in t.loc["bad", "error"]
    assert t.loc["default", "n_test"] == len(TRAIN) and np.isnan(t.loc["default", "split"])  # plain fit, in-sample
    assert not res.ok and res.n_failed == 1
    assert [r["status"] for r in read_records(tmp_path / "s.jsonl").values()] == ["ok", "error"]


def test_resume_runs_only_missing_tasks_and_ignores_a_truncated_line(local_sweep, tmp_path):
    first, second = local_sweep.out.read_text().splitlines()
    out = tmp_path / "resume.jsonl"
    out.write_text(first + "\n" + second[:60])  # the second record was cut off mid-write
    res = bs.sweep(DF, laws="chinchilla", splits=SPLITS, out=out, **SAMPLER)
    assert res.skipped == 1 and res.ok
    pd.testing.assert_frame_equal(_scores(res), _scores(local_sweep), check_exact=True)
    assert [r["task_id"] for r in read_records(out).values()] == local_sweep.table["task_id"].tolist()
    # the worker field shows which record was read back (this pid ran both, so compare lines instead)
    lines = out.read_text().splitlines()
    assert lines[0] == first and lines[1] == second[:60] and json.loads(lines[2])["task_id"] == json.loads(second)["task_id"]

    again = bs.sweep(DF, laws="chinchilla", splits=SPLITS, out=out, **SAMPLER)
    assert again.skipped == 2 and len(out.read_text().splitlines()) == 3  # nothing ran, nothing appended


def test_resume_retries_errors_only_when_asked(local_sweep, tmp_path):
    first, second = local_sweep.out.read_text().splitlines()
    failed = {**json.loads(second), "status": "error", "error": "RuntimeError: worker lost"}
    out = tmp_path / "retry.jsonl"
    out.write_text(first + "\n" + json.dumps(failed) + "\n")
    kept = bs.sweep(DF, laws="chinchilla", splits=SPLITS, out=out, **SAMPLER)
    assert kept.skipped == 2 and kept.table["status"].tolist() == ["ok", "error"]
    retried = bs.sweep(DF, laws="chinchilla", splits=SPLITS, out=out, retry_errors=True, **SAMPLER)
    assert retried.skipped == 1 and retried.ok
    pd.testing.assert_frame_equal(_scores(retried), _scores(local_sweep), check_exact=True)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"executor": "dask"}, "unknown executor 'dask'"),
    ({"laws": ["chinchilla", "nope"]}, "unknown law"),
    ({"splits": [0.2, 1.5]}, "splits must be holdout shares"),
    ({"hierarchy": "pooled"}, "unknown hierarchy"),
    ({"fit_kwargs": {"chain_method": "parallel"}}, "fit_kwargs may not set"),
    ({"workers": 0, "executor": "processes"}, "workers must be"),
    ({"address": "auto"}, "address= is for executor='ray'"),
])
def test_bad_input_raises_before_any_task_runs(tmp_path, kwargs, match):
    out = tmp_path / "never.jsonl"
    with pytest.raises(ValueError, match=match):
        bs.sweep(DF, out=out, **{"splits": 0.2, **kwargs})
    assert not out.exists()


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=re.escape('pip install "bayescale[ray]"')):
        bs.sweep(DF, executor="ray")


def test_backtest_with_two_cut_points(local_sweep):
    res = bs.backtest(DF, law="chinchilla", holdout=SPLITS, fit_kwargs=SAMPLER, baseline_kwargs={"n_boot": 50})
    assert isinstance(res, bs.SweepResult) and res.ok
    assert res.table["split"].tolist() == SPLITS
    assert res.table["huber_crps"].notna().all() and res.table["huber_coverage_90"].between(0, 1).all()
    # the Bayesian half of each cut is the same task as in the sweep, so the same numbers
    cols = ["n_train", "n_test", "coverage_50", "coverage_90", "crps", "median_rel_error", "divergences"]
    pd.testing.assert_frame_equal(res.table[cols], local_sweep.table[cols], check_exact=True)


def test_a_share_on_an_earlier_split_copies_its_record(local_sweep, tmp_path, monkeypatch):
    from bayescale import sweeping
    from bayescale.backtesting import distinct_splits

    # on 60 runs, holding out 20.1% is holding out the same 12 runs as 20%
    assert [s.same_as for s in distinct_splits(bs.validate(DF), [0.2, 0.201])] == [None, 0.2]
    out = tmp_path / "tied.jsonl"
    out.write_text(local_sweep.out.read_text().splitlines()[0] + "\n")  # the 0.2 task, done

    def no_fit(shared, task):
        raise AssertionError(f"task at split {task['split']} ran")

    monkeypatch.setattr(sweeping, "_run_task", no_fit)
    res = bs.sweep(DF, laws="chinchilla", splits=[0.2, 0.201], out=out, **SAMPLER)
    assert res.ok and res.table["split"].tolist() == [0.2, 0.201] and res.table["task_id"].nunique() == 2
    first, copy = res.records
    assert {k: v for k, v in copy.items() if k not in ("task_id", "split", "wall_s", "notes")} == {
        k: v for k, v in first.items() if k not in ("task_id", "split", "wall_s", "notes")}
    assert copy["notes"][-1].startswith("the same split as holdout 0.2 ")
    assert list(read_records(out)) == res.table["task_id"].tolist()  # streamed: a resume reads it back


def test_run_sbc_gives_the_same_ranks_under_processes():
    from bayescale.sbc import run_sbc
    # the design and settings of the 0.2 split's fit: the same model, so its compiled sampler is reused
    kw = {"law": "chinchilla", "hierarchy": "complete", "reps": 2, "draws": 200, "warmup": 200, "chains": 2,
          "n_ranks": 99, "seed": 0}
    design = TRAIN[["N", "D", "U", "family"]]
    local = run_sbc(design, **kw)
    pooled = run_sbc(design, executor="processes", workers=2, **kw)
    assert local.ranks.shape == (2, 6) and not local.failed
    np.testing.assert_array_equal(pooled.ranks, local.ranks)
    np.testing.assert_array_equal(pooled.divergences, local.divergences)


def test_cli_sweep_exit_codes_and_files(tmp_path, capsys):
    # last in the file: the CLI points this process's compilation cache at the default folder
    runs = tmp_path / "runs.csv"
    DF.to_csv(runs, index=False)
    out, table = tmp_path / "cli.jsonl", tmp_path / "cli.csv"
    common = ["sweep", str(runs), "--laws", "chinchilla", "--splits", "0.2", "--draws", "200", "--warmup", "200",
              "--chains", "2", "--seed", "0"]
    assert cli.run([*common, "-o", str(out), "--csv", str(table)]) == cli.EXIT_OK
    assert len(read_records(out)) == 1 and len(pd.read_csv(table)) == 1
    assert "1 tasks, 1 ok, 0 failed" in capsys.readouterr().out

    bad = tmp_path / "bad.jsonl"
    code = cli.run([*common, "--priors", "default", "--priors", "nope=Normal(0, 1)", "-o", str(bad)])
    printed = capsys.readouterr().out
    assert code == cli.EXIT_DIAGNOSTICS == 3
    assert "2 tasks, 1 ok, 1 failed" in printed and "PriorError" in printed
    assert sorted(r["status"] for r in read_records(bad).values()) == ["error", "ok"]
    assert cli.run([*common, "--executor", "dask", "-o", str(bad)]) == cli.EXIT_USAGE
