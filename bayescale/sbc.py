"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788).

For each replication: draw parameters from the prior of the model ``bs.fit``
builds for a fixed design, simulate losses from it (``bayescale.simulate``), fit
them with the same settings, and record the rank of each true value among
``n_ranks`` posterior draws thinned to be roughly independent. If the sampler
and the model agree, every parameter's ranks are uniform on ``0..n_ranks``.
Uniformity is tested with a chi-square test on ``bins`` equal-width bins,
Bonferroni-corrected over the K parameters tested (pass when p > 0.01/K).

Compilation is amortised: every replication has the same design (shapes and
reference scales), so the model and NUTS settings are identical and
``inference.run_nuts`` reuses the compiled sampler; only the losses change.
Replications with divergences or failed diagnostics are kept and counted:
dropping them would bias the ranks.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SBCResult:
    """Ranks of the true values, one row per replication, one column per parameter.

    Attributes
    ----------
    law, hierarchy : str
    params : tuple of str
        Sampled-site names tested (``E``, ``A_ref``, ``tau_alpha``, ...).
    ranks : ndarray, shape (reps, K)
        Rank of the truth among ``n_ranks`` thinned draws: 0..n_ranks.
    n_ranks : int
    divergences : ndarray, shape (reps,)
    diagnostics_ok : ndarray of bool, shape (reps,)
    min_ess_bulk : ndarray, shape (reps,)
    bins : int
    failed : tuple of (int, str)
        Replications that raised, with their error; left out of ``ranks``.
    """

    law: str
    hierarchy: str
    params: tuple[str, ...]
    ranks: np.ndarray
    n_ranks: int
    divergences: np.ndarray
    diagnostics_ok: np.ndarray
    min_ess_bulk: np.ndarray
    bins: int = 10
    #: (replication, error) of replications that raised; they are not in ``ranks``
    failed: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        if self.ranks.shape != (len(self.divergences), len(self.params)):
            raise ValueError("ranks must have shape (reps, len(params))")
        if self.ranks.size and (self.ranks.min() < 0 or self.ranks.max() > self.n_ranks):
            raise ValueError("ranks must lie in 0..n_ranks")

    @property
    def reps(self) -> int:
        return int(self.ranks.shape[0])

    def counts(self) -> np.ndarray:
        """Rank histogram per parameter, shape (bins, K); bins of equal width."""
        edges = np.linspace(0, self.n_ranks + 1, self.bins + 1)
        return np.stack([np.histogram(self.ranks[:, k], bins=edges)[0] for k in range(len(self.params))], axis=1)

    def table(self) -> pd.DataFrame:
        """Chi-square uniformity test per parameter with the Bonferroni threshold."""
        from scipy import stats

        counts = self.counts()
        k = len(self.params)
        threshold = 0.01 / k
        rows = []
        for j, name in enumerate(self.params):
            chi2, p = stats.chisquare(counts[:, j])
            rows.append({"parameter": name, "chi2": float(chi2), "p_value": float(p), "threshold": threshold,
                         "uniform": bool(p > threshold), "mean_rank_fraction": float(self.ranks[:, j].mean() / self.n_ranks)})
        return pd.DataFrame(rows).set_index("parameter")

    def plot(self, path: str | Path | None = None):
        """Rank histograms with the 99% band of a uniform histogram; saved if ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from scipy import stats

        counts = self.counts()
        k = len(self.params)
        cols = min(4, k)
        rows = int(np.ceil(k / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, constrained_layout=True)
        expected = self.reps / self.bins
        lo, hi = stats.binom.ppf([0.005, 0.995], self.reps, 1 / self.bins)
        table = self.table()
        for j, ax in enumerate(axes.ravel()):
            if j >= k:
                ax.axis("off")
                continue
            ax.axhspan(lo, hi, color="0.85", label="99% band (uniform)")
            ax.axhline(expected, color="0.5", lw=1)
            ax.bar(np.arange(self.bins), counts[:, j], width=0.9, color="C0")
            name = self.params[j]
            ax.set_title(f"{name}  p={table.loc[name, 'p_value']:.3f}", fontsize=9)
            ax.set_xticks([0, self.bins - 1], ["low rank", "high rank"], fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
        fig.suptitle(f"SBC rank histograms: {self.law}, {self.hierarchy} ({self.reps} replications, "
                     f"{self.n_ranks} thinned draws)", fontsize=10)
        if path is not None:
            from .io import atomic_savefig

            atomic_savefig(fig, Path(path))
        return fig


def tested_params(spec) -> tuple[str, ...]:
    """Scalar sampled sites: shared or population values, population scales and sigma."""
    out = []
    for p in spec.law_obj.params:
        if p.name in spec.fixed:
            continue
        mode = spec.pooling[p.name]
        if mode in ("complete", "partial"):
            out.append(p.sampled_name)
        if mode == "partial":
            out.append(f"tau_{p.sampled_name}")
    return (*out, "sigma")


def run_sbc(
    design: pd.DataFrame,
    law: str = "chinchilla",
    hierarchy: str | Mapping[str, str] = "complete",
    reps: int = 100,
    draws: int = 500,
    warmup: int = 500,
    chains: int = 2,
    n_ranks: int = 99,
    bins: int = 10,
    seed: int = 0,
    priors: Mapping[str, Any] | None = None,
    progress: bool = False,
    cache_dir: str | Path | None = None,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
) -> SBCResult:
    """Run simulation-based calibration for one law and hierarchy on a fixed design.

    Each replication is one task (:func:`bayescale.executors.run_tasks`): simulate
    with seed ``seed + r``, fit with seed ``seed + 100000 + r``, rank. Tasks pin
    float32 and one chain method (:func:`bayescale.executors.pinned`, ``CHAIN_METHOD``), so
    ``executor="local"``, ``"processes"`` and ``"ray"`` give the same ranks. Every
    process runs with JAX's persistent compilation cache (``inference.enable_compilation_cache``:
    ``cache_dir`` if given, else the one this process already has, else the default
    folder), shared with worker processes, so that replications after the first load the
    compiled sampler from disk.

    A replication that raises is left out of ``ranks`` and listed in
    :attr:`SBCResult.failed` with its error (with a warning): the others still count.
    """
    from .executors import check_executor, current_cache_dir, run_tasks

    check_executor(executor, workers, address)
    if chains * draws < n_ranks:
        raise ValueError(f"need at least n_ranks={n_ranks} posterior draws, got {chains * draws}")
    if cache_dir is not None:
        cache: str | None = str(cache_dir)
        if executor == "local":
            from .runtime import enable_compilation_cache

            enable_compilation_cache(cache_dir)
    else:  # this process's cache, else each worker's default (a cluster's workers resolve their own)
        cache = current_cache_dir() if address is None else None
    shared = {"design": design, "law": law, "hierarchy": hierarchy, "priors": None if priors is None else dict(priors),
              "draws": draws, "warmup": warmup, "chains": chains, "n_ranks": n_ranks, "seed": seed, "cache_dir": cache}
    results: dict[int, dict[str, Any]] = {}
    failed: list[tuple[int, str]] = []
    for i, value, error in run_tasks(_sbc_replication, list(range(reps)), shared, executor=executor, workers=workers,
                                     address=address):
        if error is not None:
            failed.append((i, error))
            if progress:
                print(f"  rep {i + 1}/{reps}: failed: {error}", flush=True)
            continue
        results[i] = value
        if progress:
            print(f"  rep {i + 1}/{reps}: divergences {value['divergences']}, min ESS {value['min_ess_bulk']:.0f}",
                  flush=True)
    if failed:
        warnings.warn(f"{len(failed)} of {reps} SBC replications failed and are left out; first: {failed[0][1]}",
                      stacklevel=2)
    order = sorted(results)
    params = results[order[0]]["params"] if order else ()
    label = hierarchy if isinstance(hierarchy, str) else ",".join(f"{k}:{v}" for k, v in hierarchy.items())
    return SBCResult(law=law, hierarchy=label, params=tuple(params),
                     ranks=np.asarray([results[r]["ranks"] for r in order], dtype=int).reshape(len(order), len(params)),
                     n_ranks=n_ranks, divergences=np.asarray([results[r]["divergences"] for r in order], dtype=int),
                     diagnostics_ok=np.asarray([results[r]["ok"] for r in order], dtype=bool),
                     min_ess_bulk=np.asarray([results[r]["min_ess_bulk"] for r in order], dtype=float), bins=bins,
                     failed=tuple(sorted(failed)))


def _sbc_replication(shared: Mapping[str, Any], r: int) -> dict[str, Any]:
    """One replication (a task): simulate from the prior, fit, rank the truth."""
    from .executors import CHAIN_METHOD, pinned
    from .fitting import fit as bayes_fit
    from .simulate import simulate

    s = shared
    with pinned(s["cache_dir"]):
        sim = simulate(s["design"], law=s["law"], hierarchy=s["hierarchy"], seed=s["seed"] + r, priors=s["priors"])
        params = tested_params(sim.spec)
        fit = bayes_fit(sim.runs, law=s["law"], hierarchy=s["hierarchy"], priors=s["priors"], draws=s["draws"],
                        warmup=s["warmup"], chains=s["chains"], seed=s["seed"] + 100_000 + r, progress=False,
                        warn=False, chain_method=CHAIN_METHOD, discrepancy=None)
        post = fit.datatree["posterior"]
        # evenly spaced draws across all chains: with min ESS >= n_ranks they are about independent
        idx = np.linspace(0, s["chains"] * s["draws"] - 1, s["n_ranks"]).round().astype(int)
        ranks = [int(np.sum(post[name].values.reshape(-1)[idx] < float(np.asarray(sim.truth[name]))))
                 for name in params]
        d = fit.diagnose()
    return {"params": list(params), "ranks": ranks, "divergences": int(d.divergences), "ok": bool(d.ok),
            "min_ess_bulk": float(d.min_ess_bulk)}
