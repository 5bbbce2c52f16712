"""Sweeps: many independent fits of one runs table, on this machine or a Ray cluster.

``bs.sweep(df, laws=[...], priors=[...], hierarchy=[...], splits=[...])`` runs one
task per combination (the Cartesian product, in that order). A task with a split
is a leave-future-out backtest (:func:`bayescale.backtest` with that holdout
share); a task with ``split=None`` is a plain fit of every run, scored in-sample.
Each task returns a small record, never the fit itself: scores, diagnostics, a
posterior summary, its wall time and, with ``save_fits=``, the path of the saved
fit. The records form :attr:`SweepResult.table`, one row per task.

Executors (:mod:`bayescale.executors`): ``"local"`` (in-process, the default),
``"processes"`` (a local pool over every core) or ``"ray"`` (Ray tasks, on a local
instance or a cluster at ``address=``).

Same numbers whatever the executor. Every task pins float32, one host device in
worker processes (set before JAX starts there), one chain method
(:data:`bayescale.executors.CHAIN_METHOD`, "vectorized") and the sweep's seed, so
"local", "processes" and "ray" produce bit-identical draws and therefore identical
scores. A sweep's parallelism is across tasks, one core per task: chains run in
parallel threads would only compete with the other tasks for the same cores.

Failures stay rows. An exception in one task (an unknown prior name, a sampler
error, a lost worker) becomes a row with ``status="error"`` and the error in one
line; the sweep goes on. Input that would make *every* task fail (an unknown law,
executor, hierarchy or split, a bad table) raises before any task runs.

Streaming and resuming. With ``out="sweep.jsonl"`` each finished task is appended
to the file as one JSON line (written whole, flushed and fsynced) as soon as it
arrives. Tasks are identified by a hash of their settings and of the data
(:func:`task_id`), so a rerun of the same sweep reads the file, skips the tasks
already done (``status == "ok"``; failed ones too unless ``retry_errors=True``)
and runs only the rest. A line cut short by an interruption is ignored.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import ScalingData, validate

__all__ = ["COLUMNS", "SweepResult", "read_records", "sweep", "task_id"]

log = logging.getLogger("bayescale.sweeping")

#: Columns of :attr:`SweepResult.table`, in order (one fixed schema whatever the tasks).
COLUMNS: tuple[str, ...] = (
    "task_id", "law", "priors", "hierarchy", "split", "status", "error",
    "n_train", "n_test", "coverage_50", "coverage_90", "width_90", "crps", "log_score", "median_rel_error",
    "mean_extrapolation", "elpd_loo", "huber_coverage_90", "huber_crps", "huber_median_rel_error",
    "diagnostics_ok", "divergences", "max_r_hat", "min_ess_bulk", "wall_s", "fit_path", "worker",
)
#: Columns that are the same under every executor (the determinism check compares these).
SCORE_COLUMNS: tuple[str, ...] = (
    "n_train", "n_test", "coverage_50", "coverage_90", "width_90", "crps", "log_score", "median_rel_error",
    "mean_extrapolation", "elpd_loo", "huber_coverage_90", "huber_crps", "huber_median_rel_error",
    "diagnostics_ok", "divergences", "max_r_hat", "min_ess_bulk",
)
_HIERARCHIES = ("auto", "complete", "independent", "partial")
#: bs.fit arguments a sweep sets itself (per task or pinned for reproducibility).
_OWN_FIT_ARGS = ("df", "law", "hierarchy", "priors", "draws", "warmup", "chains", "seed", "progress",
                 "chain_method", "warn", "strict", "columns")
_FORMAT = 1


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SweepResult:
    """The outcome of a sweep: one row per task.

    Attributes
    ----------
    table : DataFrame
        Columns :data:`COLUMNS`: ``task_id`` (16 hex digits, :func:`task_id`), ``law``,
        ``priors`` (label), ``hierarchy`` (label), ``split`` (holdout share; NaN for a
        plain fit), ``status`` ("ok" or "error"), ``error`` (one line, empty when ok),
        ``n_train``/``n_test`` (runs), bayescale's ``coverage_50``/``coverage_90``
        (share of held-out runs inside the central 50%/90% predictive interval),
        ``width_90`` (mean relative width), ``crps`` (nats/token), ``log_score``
        (mean log predictive density per run), ``median_rel_error``,
        ``mean_extrapolation`` (decades of compute), ``elpd_loo`` (PSIS-LOO on the
        training runs, nats), the Huber baseline's ``huber_*`` scores (NaN unless
        ``baseline=True``), ``diagnostics_ok``, ``divergences``, ``max_r_hat``,
        ``min_ess_bulk``, ``wall_s`` (seconds in the task), ``fit_path`` (with
        ``save_fits``), ``worker`` (host:pid). For ``split=None`` the scores are
        in-sample (every run is both fitted and scored; ``n_test == n_train``).
    records : tuple of dict
        The JSON records, in task order, with each task's posterior ``summary``
        (parameter -> mean, sd, q5, q50, q95, r_hat) and ``notes``.
    executor : str
    out : Path or None
        The JSON-lines file results were streamed to.
    skipped : int
        Tasks already done in ``out`` when the sweep started (not run again).
    wall_s : float
        Seconds for the whole call.
    """

    table: pd.DataFrame = field(repr=False)
    records: tuple[dict[str, Any], ...] = field(repr=False)
    executor: str
    out: Path | None
    skipped: int
    wall_s: float

    def __post_init__(self) -> None:
        if list(self.table.columns) != list(COLUMNS):
            raise ValueError("SweepResult.table must have the columns of bayescale.sweeping.COLUMNS")
        if len(self.records) != len(self.table):
            raise ValueError("one record per table row")
        object.__setattr__(self, "records", tuple(self.records))

    @property
    def n_tasks(self) -> int:
        return len(self.table)

    @property
    def n_failed(self) -> int:
        return int((self.table["status"] != "ok").sum())

    @property
    def ok(self) -> bool:
        """Every task ran without an error (diagnostics are reported, not judged, here)."""
        return self.n_failed == 0

    def summaries(self) -> pd.DataFrame:
        """Posterior summaries of every successful task, long format: task_id, law, priors,
        hierarchy, split, parameter, mean, sd, q5, q50, q95, r_hat."""
        rows = []
        for rec in self.records:
            for name, stats in (rec.get("summary") or {}).items():
                rows.append({"task_id": rec["task_id"], "law": rec["law"], "priors": rec["priors"],
                             "hierarchy": rec["hierarchy"], "split": _nan(rec.get("split")), "parameter": name,
                             **{k: _nan(v) for k, v in stats.items()}})
        cols = ["task_id", "law", "priors", "hierarchy", "split", "parameter", "mean", "sd", "q5", "q50", "q95", "r_hat"]
        return pd.DataFrame(rows, columns=cols)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :attr:`table` as CSV, atomically (:mod:`bayescale.io`)."""
        from .io import atomic_write_text

        return atomic_write_text(path, self.table.to_csv(index=False))

    def __str__(self) -> str:
        cols = ["task_id", "law", "priors", "hierarchy", "split", "status", "coverage_50", "coverage_90", "crps",
                "median_rel_error", "diagnostics_ok", "divergences", "wall_s"]
        with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 40):
            text = self.table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
        lines = [f"sweep ({self.executor}): {self.n_tasks} tasks, {self.n_tasks - self.n_failed} ok, "
                 f"{self.n_failed} failed, {self.skipped} resumed from file; {self.wall_s:.1f} s", text]
        for _, r in self.table[self.table["status"] != "ok"].iterrows():
            where = "plain fit" if pd.isna(r["split"]) else f"split {r['split']:g}"
            lines.append(f"  {r['task_id']} ({r['law']}, {r['priors']}, {r['hierarchy']}, {where}): {r['error']}")
        return "\n".join(lines)


def _nan(v: Any) -> Any:
    return float("nan") if v is None else v


# --------------------------------------------------------------------------------------------
# Tasks: pure data
# --------------------------------------------------------------------------------------------


def _table(data: ScalingData) -> dict[str, list]:
    """The validated runs as plain columns: what every task receives and re-validates."""
    return {"N": data.N.tolist(), "D": data.D.tolist(), "U": data.U.tolist(), "loss": data.loss.tolist(),
            "family": [data.families[i] for i in data.family_idx]}


def data_hash(table: Mapping[str, list]) -> str:
    """SHA-256 of the runs (float64 bytes of N, D, U, loss and the family names)."""
    h = hashlib.sha256()
    for col in ("N", "D", "U", "loss"):
        h.update(np.asarray(table[col], dtype=np.float64).tobytes())
    h.update("\0".join(map(str, table["family"])).encode())
    return h.hexdigest()


def task_id(settings: Mapping[str, Any], data_digest: str) -> str:
    """Stable id of a task: the first 16 hex digits of SHA-256 over its settings and data.

    ``settings`` holds everything that changes the numbers (law, priors, hierarchy,
    split, split variable, sampler settings, seed, extra fit arguments, baseline),
    serialised as sorted JSON; where results are written or cached does not enter.
    """
    text = json.dumps({"format": _FORMAT, "data": data_digest, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _as_list(value: Any, single: type | tuple[type, ...]) -> list[Any]:
    if value is None or isinstance(value, single):
        return [value]
    return list(value)


def _prior_sets(priors: Any) -> list[tuple[str, dict[str, str] | None]]:
    """Normalise ``priors=`` to (label, {name: "Dist(...)"} or None) pairs."""
    if isinstance(priors, Mapping) and priors and all(v is None or isinstance(v, Mapping) for v in priors.values()):
        items = [(str(k), v) for k, v in priors.items()]  # labelled sets: {"tight": {...}, "default": None}
    else:
        items = [(None, p) for p in _as_list(priors, Mapping)]
    out = []
    for label, p in items:
        if p is not None and not isinstance(p, Mapping):
            raise ValueError(f"each prior set must be a dict of name -> distribution or None, got {p!r}")
        norm = None if not p else {str(k): str(v) for k, v in sorted(p.items())}
        if label is None:
            label = "default" if norm is None else "; ".join(f"{k}={v}" for k, v in norm.items())
        out.append((label, norm))
    return out


def _hierarchy_label(h: str | Mapping[str, str]) -> str:
    return h if isinstance(h, str) else ",".join(f"{k}:{v}" for k, v in sorted(h.items()))


def _check_hierarchy(h: Any) -> str | dict[str, str]:
    if isinstance(h, str):
        if h not in _HIERARCHIES:
            raise ValueError(f"unknown hierarchy {h!r}; valid: {', '.join(_HIERARCHIES)} or a dict per parameter")
        return h
    if isinstance(h, Mapping):
        bad = {k: v for k, v in h.items() if v not in _HIERARCHIES[1:]}
        if bad:
            raise ValueError(f"hierarchy {dict(h)!r}: values must be complete, independent or partial")
        return {str(k): str(v) for k, v in sorted(h.items())}
    raise ValueError(f"hierarchy must be a name or a dict per parameter, got {h!r}")


def _check_split(s: Any, data: ScalingData, by: str) -> float | None:
    from .backtesting import split as split_runs

    if s is None:
        return None
    if isinstance(s, bool) or not isinstance(s, int | float | np.floating | np.integer) or not 0 < float(s) < 1:
        raise ValueError(f"splits must be holdout shares in (0, 1) or None (a plain fit), got {s!r}")
    split_runs(data, float(s), by)  # raises DataError when no run is left to train on
    return float(s)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# The task (runs in a worker)
# --------------------------------------------------------------------------------------------


def _run_task(shared: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    """One fit or backtest; returns the task's record (JSON-ready). Exceptions propagate
    to the executor, which turns them into an error row."""
    from .executors import CHAIN_METHOD, pinned

    t0 = time.perf_counter()
    s = shared["settings"]
    with pinned(shared.get("cache_dir")):
        frame = pd.DataFrame(shared["table"])
        fit_kwargs = {**s["fit_kwargs"], "hierarchy": task["hierarchy"], "priors": task["priors"],
                      "draws": s["draws"], "warmup": s["warmup"], "chains": s["chains"], "seed": s["seed"],
                      "chain_method": CHAIN_METHOD, "progress": False, "warn": False}
        rec = _empty_record(task)
        if task["split"] is None:
            fit, scores, huber = _plain_fit(frame, task["law"], fit_kwargs, s["seed"])
            notes: list[str] = ["scores are in-sample: every run was fitted and scored"]
        else:
            from .backtesting import backtest

            bt = backtest(frame, law=task["law"], holdout=task["split"], by=s["by"], baseline=s["baseline"],
                          fit_kwargs=fit_kwargs, baseline_kwargs=s["baseline_kwargs"], seed=s["seed"])
            fit, notes = bt.fit, list(bt.notes)
            rows = bt.scores.set_index(["method", "kind"])
            scores = rows.loc[("bayescale", "observation")].to_dict()
            huber = rows.loc[("huber", "observation")].to_dict() if ("huber", "observation") in rows.index else {}
            scores["n_train"] = bt.n_train
        rec.update(_score_fields(scores, huber))
        rec["elpd_loo"] = _elpd_loo(fit)
        d = fit.diagnose()
        rec.update({"diagnostics_ok": bool(d.ok), "divergences": int(d.divergences), "max_r_hat": float(d.max_r_hat),
                    "min_ess_bulk": float(d.min_ess_bulk)})
        summ = fit.summary()
        rec["summary"] = {str(name): {k: float(row[k]) for k in ("mean", "sd", "q5", "q50", "q95", "r_hat")}
                          for name, row in summ.iterrows()}
        rec["notes"] = notes + list(d.messages)
        if shared.get("save_fits"):
            rec["fit_path"] = str(fit.save(Path(shared["save_fits"]) / f"{task['task_id']}.nc").resolve())
    rec["status"] = "ok"
    rec["wall_s"] = time.perf_counter() - t0
    return _json_ready(rec)


def _plain_fit(frame: pd.DataFrame, law: str, fit_kwargs: Mapping[str, Any], seed: int):
    from .backtesting import LEVELS, _bayes_rows, _scores
    from .data import extrapolation_decades
    from .fitting import fit as bayes_fit

    fitted = bayes_fit(frame, law=law, **fit_kwargs)
    runs = fitted.data.to_frame()[["N", "D", "U", "loss", "family", "C"]].reset_index(drop=True)
    runs.insert(0, "row", np.arange(len(runs)))
    runs["extrapolation"] = extrapolation_decades(runs["N"], runs["D"], fitted.data.compute_range)
    scores = _scores(pd.concat(_bayes_rows(fitted, runs, LEVELS, seed), ignore_index=True), LEVELS)
    obs = scores.set_index(["method", "kind"]).loc[("bayescale", "observation")].to_dict()
    obs["n_train"] = len(runs)
    return fitted, obs, {}


def _score_fields(scores: Mapping[str, Any], huber: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: scores.get(k) for k in ("n_train", "n_test", "coverage_50", "coverage_90", "width_90", "crps",
                                      "log_score", "median_rel_error", "mean_extrapolation")}
    out.update({f"huber_{k}": huber.get(k) for k in ("coverage_90", "crps", "median_rel_error")})
    for k in ("n_train", "n_test"):
        out[k] = None if out[k] is None else int(out[k])
    return out


def _elpd_loo(fit: Any) -> float | None:
    import arviz_stats as azs

    try:
        return float(azs.loo(fit.datatree).elpd)
    except Exception:  # an approximate fit or a degenerate posterior: LOO is simply not reported
        return None


def _empty_record(task: Mapping[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = dict.fromkeys(COLUMNS)
    rec.update({"task_id": task["task_id"], "law": task["law"], "priors": task["priors_label"],
                "hierarchy": task["hierarchy_label"], "split": task["split"], "error": "",
                "worker": f"{socket.gethostname()}:{os.getpid()}"})
    return rec


def _json_ready(rec: Mapping[str, Any]) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return clean(dict(rec))


# --------------------------------------------------------------------------------------------
# Streaming file
# --------------------------------------------------------------------------------------------


def read_records(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Records of a results file by task id (the last record of an id wins).

    Lines that are not a complete JSON object with a ``task_id`` (a write cut short by
    an interruption) are skipped with a log message, never an error.
    """
    path = Path(path)
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    bad = 0
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(rec, dict) and isinstance(rec.get("task_id"), str):
                out[rec["task_id"]] = rec
            else:
                bad += 1
    if bad:
        log.warning("%s: ignored %d incomplete or unreadable line(s)", path, bad)
    return out


class _Stream:
    """Appends one JSON line per record: written whole, flushed and fsynced, so that an
    interruption loses at most the line being written (and the reader skips it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("a", encoding="utf-8")
        # a previous run cut off mid-line: start on a fresh line so the fragment stays isolated
        if path.stat().st_size > 0:
            with path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    self.fh.write("\n")

    def write(self, rec: Mapping[str, Any]) -> None:
        self.fh.write(json.dumps(rec, allow_nan=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


# --------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------


def sweep(
    df: Any,
    laws: str | Sequence[str] = "chinchilla",
    priors: Any = None,
    hierarchy: Any = "auto",
    splits: float | Sequence[float | None] | None = None,
    *,
    by: str = "compute",
    draws: int = 1000,
    warmup: int = 1000,
    chains: int = 4,
    seed: int = 0,
    fit_kwargs: Mapping[str, Any] | None = None,
    baseline: bool = False,
    baseline_kwargs: Mapping[str, Any] | None = None,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    out: str | os.PathLike | None = None,
    retry_errors: bool = False,
    save_fits: str | os.PathLike | None = None,
    progress: bool | str = "auto",
    columns: Mapping[str, str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> SweepResult:
    """Run one fit or backtest per combination of laws, priors, hierarchies and splits.

    Parameters
    ----------
    df : DataFrame, path or mapping
        Runs as for :func:`bayescale.fit`; validated once here, then shipped to every task.
    laws : str or list of str
        Names from ``bayescale.law_names()``.
    priors : None, dict, list of (dict or None), or dict of label -> (dict or None)
        Prior sets, each as for ``bs.fit(priors=...)`` (``{"alpha": "Normal(0.35, 0.1)"}``);
        None means the law's defaults (label ``"default"``). A name a law does not have
        fails that task only.
    hierarchy : str, dict, or list of them
        Pooling as for ``bs.fit(hierarchy=...)``.
    splits : float, None, or list of them
        Holdout shares in (0, 1) for a leave-future-out backtest (:func:`bayescale.backtest`
        by ``by``), or None for a plain fit of every run scored in-sample.
    by : {"compute", "N", "D"}
        Split variable of the backtests.
    draws, warmup, chains, seed : int
        NUTS settings of every task (chains vectorized within a task, whatever the
        executor; the seed drives both the sampler and the predictive draws).
    fit_kwargs : dict, optional
        Further :func:`bayescale.fit` arguments shared by every task (``likelihood``,
        ``fixed``, ``target_accept``, ``dense_mass``, ``centred``, ``approx``).
    baseline : bool
        Also score the Huber baseline on each split (``huber_*`` columns).
    baseline_kwargs : dict, optional
        As for :func:`bayescale.backtest`.
    executor : {"local", "processes", "ray"}
        Where tasks run (:mod:`bayescale.executors`).
    workers : int, optional
        Worker processes (``"processes"``) or CPUs of a local Ray instance; default
        ``os.cpu_count()``.
    address : str, optional
        A Ray cluster: ``"auto"`` on a node of a running cluster, or ``"ray://head:10001"``.
        bayescale must be installed on its workers.
    out : path, optional
        JSON-lines file that results stream to; an existing file is resumed.
    retry_errors : bool
        On resume, run again the tasks recorded as failed.
    save_fits : path, optional
        Folder where each task saves its fit as ``<task_id>.nc`` (on the worker's file
        system: a shared folder on a cluster).
    progress : bool or "auto"
        A progress bar over tasks on stderr; "auto": only on a terminal.
    columns : dict, optional
        Column renames as in :func:`bayescale.validate`.
    cache_dir : path, optional
        JAX compilation cache shared by the workers (default: this process's, if it has
        one, else ``$BAYESCALE_CACHE_DIR`` or ``~/.cache/bayescale/jax`` on each worker).

    Returns
    -------
    SweepResult
        ``table``: one row per task (:data:`COLUMNS`), in the order of the Cartesian
        product laws x priors x hierarchy x splits; duplicates are run once, and a share
        whose held-out runs an earlier share already gave (runs tied in ``by``) copies that
        task's record, with a note, instead of fitting the same split again.

    Raises
    ------
    DataError, ValueError
        A bad table, an unknown law, hierarchy, executor or split variable, a split
        that leaves no training run, or ``fit_kwargs`` that set what the sweep sets;
        all before any task runs.
    ImportError
        ``executor="ray"`` without Ray (``pip install "bayescale[ray]"``).
    bayescale.executors.ExecutorError
        ``executor="processes"`` with ``fit_kwargs`` that cannot be sent to worker
        processes (unpicklable, or defined in a ``__main__`` they cannot import); before
        any task runs.

    Examples
    --------
    ::

        sw = bs.sweep(df, laws=["chinchilla", "kaplan_e"], splits=[0.1, 0.2, 0.3],
                      executor="processes", out="sweep.jsonl")
        sw.table.groupby("law")[["coverage_90", "crps"]].mean()
    """
    from .backtesting import distinct_splits
    from .executors import check_executor, current_cache_dir, run_tasks
    from .models import law_names

    t_start = time.perf_counter()
    check_executor(executor, workers, address)
    data = validate(df, columns=columns, check_duplicates=False)
    law_list = [str(x) for x in _as_list(laws, str)]
    unknown = [x for x in law_list if x not in law_names()]
    if unknown or not law_list:
        raise ValueError(f"unknown law(s) {unknown or law_list}; valid: {', '.join(law_names())}")
    prior_sets = _prior_sets(priors)
    hier_list = [_check_hierarchy(h) for h in _as_list(hierarchy, (str, Mapping))]
    if by not in ("compute", "C", "N", "D"):
        raise ValueError(f"by must be one of 'compute', 'N', 'D', got {by!r}")
    split_list = [_check_split(s, data, by) for s in _as_list(splits, (int, float, np.floating))]
    draws, warmup, chains = (_positive_int(n, v) for n, v in (("draws", draws), ("warmup", warmup), ("chains", chains)))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    extra = dict(fit_kwargs or {})
    clash = sorted(set(extra) & set(_OWN_FIT_ARGS))
    if clash:
        raise ValueError(f"fit_kwargs may not set {clash}: the sweep sets them (as arguments or pinned per task)")
    unknown_b = sorted(set(baseline_kwargs or {}) - {"grid", "n_boot", "seed", "delta"})
    if unknown_b:
        raise ValueError(f"unknown baseline_kwargs {unknown_b}; valid: grid, n_boot, seed, delta")
    if not prior_sets or not hier_list or not split_list:
        raise ValueError("laws, priors, hierarchy and splits must each have at least one value")

    # two shares can hold out the same runs (runs tied in `by`): such a task copies the first one's record
    shares = [s for s in split_list if s is not None]
    same_as = {sp.holdout: sp.same_as for sp in distinct_splits(data, shares, by)}
    table = _table(data)
    digest = data_hash(table)
    common = {"by": by, "draws": draws, "warmup": warmup, "chains": chains, "seed": int(seed), "fit_kwargs": extra,
              "baseline": bool(baseline), "baseline_kwargs": dict(baseline_kwargs or {})}
    tasks: list[dict[str, Any]] = []
    seen: set[str] = set()
    for law, (plabel, pset), h, s in itertools.product(law_list, prior_sets, hier_list, split_list):
        settings = {"law": law, "priors": pset, "hierarchy": h, "split": s, **common}
        if s is None:  # a plain fit has no split variable and no baseline: they must not split its id
            settings.update(by=None, baseline=False, baseline_kwargs={})
        tid = task_id(settings, digest)
        if tid in seen:
            continue
        seen.add(tid)
        first = same_as.get(s)
        copy_of = None if first is None else task_id({**settings, "split": first}, digest)
        tasks.append({"task_id": tid, "law": law, "priors": pset, "priors_label": plabel, "hierarchy": h,
                      "hierarchy_label": _hierarchy_label(h), "split": s, "copy_of": copy_of})

    done: dict[str, dict[str, Any]] = {}
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        previous = read_records(out_path)
        done = {t["task_id"]: previous[t["task_id"]] for t in tasks if t["task_id"] in previous
                and (previous[t["task_id"]].get("status") == "ok" or not retry_errors)}
        if done:
            log.info("%s: %d of %d tasks already done, running %d", out_path, len(done), len(tasks),
                     len(tasks) - len(done))
    todo = [t for t in tasks if t["task_id"] not in done and t["copy_of"] is None]

    if cache_dir is None and address is None:
        cache_dir = current_cache_dir()
    shared = {"table": table, "settings": common, "cache_dir": None if cache_dir is None else str(cache_dir),
              "save_fits": None if save_fits is None else str(Path(save_fits).resolve())}
    results: dict[str, dict[str, Any]] = dict(done)
    # before the file is touched: run_tasks refuses here what no worker could run (bayescale.executors)
    finished = run_tasks(_run_task, todo, shared, executor=executor, workers=workers, address=address)
    stream = _Stream(out_path) if out_path is not None else None
    bar = _progress_bar(progress, len(tasks), len(done), executor)
    try:
        for i, value, error in finished:
            rec = value if error is None else _error_record(todo[i], error)
            results[rec["task_id"]] = rec
            if stream is not None:
                stream.write(rec)
            if bar is not None:
                bar.update(1)
                if rec["status"] != "ok":
                    bar.set_postfix(failed=sum(r["status"] != "ok" for r in results.values()))
        for t in tasks:
            if t["copy_of"] is not None and t["task_id"] not in results:
                rec = _copied_record(t, results[t["copy_of"]], by)
                results[t["task_id"]] = rec
                if stream is not None:
                    stream.write(rec)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if stream is not None:
            stream.close()
    # labels are the caller's, also for records read back from an earlier run of the same tasks
    records = tuple({**results[t["task_id"]], "law": t["law"], "priors": t["priors_label"],
                     "hierarchy": t["hierarchy_label"]} for t in tasks)
    return SweepResult(table=_frame(records), records=records, executor=executor, out=out_path, skipped=len(done),
                       wall_s=time.perf_counter() - t_start)


def _copied_record(task: Mapping[str, Any], first: Mapping[str, Any], by: str) -> dict[str, Any]:
    """The record of a split that an earlier share already gave: its numbers, not a second fit
    (whose held-out runs would count twice in any average over splits)."""
    rec = dict(first)
    rec.update(task_id=task["task_id"], split=task["split"], wall_s=0.0,
               notes=[*list(first.get("notes") or []),
                      f"the same split as holdout {first['split']:g} (runs tied in {by}): its record, not refitted"])
    return _json_ready(rec)


def _error_record(task: Mapping[str, Any], error: str) -> dict[str, Any]:
    rec = _empty_record(task)
    rec.update(status="error", error=error, worker=None, summary={}, notes=[])
    return _json_ready(rec)


def _frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in records], columns=list(COLUMNS))
    for c in ("split", *SCORE_COLUMNS, "wall_s"):
        if c not in ("diagnostics_ok",):
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(np.float64)
    frame["diagnostics_ok"] = frame["diagnostics_ok"].astype("boolean")
    frame["error"] = frame["error"].fillna("").astype(str)
    return frame


def _progress_bar(progress: bool | str, total: int, done: int, executor: str):
    show = sys.stderr.isatty() if progress == "auto" else bool(progress)
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=f"sweep ({executor})", unit="task", file=sys.stderr,
                dynamic_ncols=True)

