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
from collections.abc import Mapping, Sequence
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

    def __post_init__(self) -> None:
        if self.ranks.shape != (len(self.divergences), len(self.params)):
            raise ValueError("ranks must have shape (reps, len(params))")
        if self.ranks.min() < 0 or self.ranks.max() > self.n_ranks:
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
) -> SBCResult:
    """Run simulation-based calibration for one law and hierarchy on a fixed design.

    Turns on JAX's persistent compilation cache (``inference.enable_compilation_cache``)
    so that replications after the first load the compiled sampler from disk.
    """

    import bayescale as bs

    from .inference import enable_compilation_cache
    from .simulate import simulate

    enable_compilation_cache(cache_dir)
    if chains * draws < n_ranks:
        raise ValueError(f"need at least n_ranks={n_ranks} posterior draws, got {chains * draws}")
    params: Sequence[str] | None = None
    ranks, divs, oks, ess = [], [], [], []
    for r in range(reps):
        sim = simulate(design, law=law, hierarchy=hierarchy, seed=seed + r, priors=priors)
        if params is None:
            params = tested_params(sim.spec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bs.fit(sim.runs, law=law, hierarchy=hierarchy, priors=priors, draws=draws, warmup=warmup,
                         chains=chains, seed=seed + 100_000 + r, progress=False, warn=False)
        post = fit.datatree["posterior"]
        # evenly spaced draws across all chains: with min ESS >= n_ranks they are about independent
        idx = np.linspace(0, chains * draws - 1, n_ranks).round().astype(int)
        row = []
        for name in params:
            thinned = post[name].values.reshape(-1)[idx]
            row.append(int(np.sum(thinned < float(np.asarray(sim.truth[name])))))
        ranks.append(row)
        d = fit.diagnose()
        divs.append(d.divergences)
        oks.append(d.ok)
        ess.append(d.min_ess_bulk)
        if progress:
            print(f"  rep {r + 1}/{reps}: divergences {d.divergences}, min ESS {d.min_ess_bulk:.0f}", flush=True)
    label = hierarchy if isinstance(hierarchy, str) else ",".join(f"{k}:{v}" for k, v in hierarchy.items())
    return SBCResult(law=law, hierarchy=label, params=tuple(params or ()), ranks=np.asarray(ranks, dtype=int),
                     n_ranks=n_ranks, divergences=np.asarray(divs), diagnostics_ok=np.asarray(oks),
                     min_ess_bulk=np.asarray(ess, dtype=float), bins=bins)
