"""Fit: the posterior of a scaling law and what users ask of it.

``bs.fit`` validates the table (before JAX is imported, so bad input fails fast),
builds the model (inference.py), runs NUTS and wraps the result in a ``Fit``:
``summary``, ``diagnose``, ``predict``, ``predictive_draws``, ``surface``,
``save``; ``load_fit`` reads a saved fit back and predicts identically.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from .data import DataError, ScalingData, extrapolation_decades, new_points, validate
from .io import atomic_path

FORMAT_VERSION = 1
R_HAT_MAX = 1.01
ESS_MIN = 400
PRIOR_DOMINATED_FAMILIES = 3


class FitFileError(ValueError):
    """A file that is not a readable bayescale fit."""


class DiagnosticsWarning(UserWarning):
    """The sampler's diagnostics failed: the posterior may not be trustworthy."""


class DiagnosticsError(RuntimeError):
    """Raised instead of the warning by ``fit(..., strict=True)``; ``.fit`` holds the result."""

    def __init__(self, message: str, fit: Fit) -> None:
        super().__init__(message)
        self.fit = fit


@dataclass(frozen=True)
class Diagnostics:
    """Convergence checks of a fit.

    ``ok`` needs R-hat <= 1.01, bulk and tail ESS >= 400 for every reported
    parameter, and no divergent transitions (Vehtari et al. 2021).
    """

    ok: bool
    divergences: int
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    messages: tuple[str, ...]
    #: what failed at the defaults and how ``bs.fit`` refitted once (``fit(remedy=True)``), or None
    remedy: str | None = None


def _version() -> str:
    from . import __version__

    return __version__


class Fit:
    """A fitted scaling law: posterior draws plus the model that made them.

    Attributes
    ----------
    law : str
        Registry name of the law.
    spec : ModelSpec
        Priors, fixed values, pooling, likelihood and reference scales.
    data : ScalingData
        The validated runs the posterior was conditioned on.
    datatree : xarray.DataTree
        arviz DataTree with groups posterior, sample_stats, log_likelihood,
        posterior_predictive, observed_data and constant_data.
    sampler : SamplerConfig
    """

    def __init__(self, spec, data: ScalingData, datatree: xr.DataTree, sampler) -> None:
        self.spec = spec
        self.data = data
        self.datatree = datatree
        self.sampler = sampler

    @classmethod
    def from_draws(
        cls,
        draws: Mapping[str, Any],
        data: Any,
        law: str = "chinchilla",
        sigma: float | Sequence[float] | None = None,
        likelihood: str = "student_t",
        seed: int = 0,
    ) -> Fit:
        """A Fit whose posterior is given draws (or a point mass), without sampling.

        For planning and predicting from published estimates (a point mass at a
        paper's values) or from bootstrap replicates, and for tests that need an
        exactly known posterior. One law for every family (complete pooling).

        Parameters
        ----------
        draws : mapping
            Every law parameter in the paper's convention (``E``, ``A``, ``B``,
            ``alpha``, ...), each a scalar (all mass at that value) or a 1-D
            array of S draws; scalars broadcast to S. Amplitudes are mapped to
            the data's reference scale (``A_ref = A / N0**alpha``) as in a fit.
        data : DataFrame, path or ScalingData
            The runs the values refer to: they set the reference scales, the
            extrapolation distances and the stored ``log_likelihood``.
        law : str
            Registry name of the law.
        sigma : float or array, optional
            Noise scale of log loss for ``kind="observation"``; default, per
            draw, the root-mean-square residual of log loss on ``data``.
        likelihood : {"student_t", "gaussian", "laplace"}
        seed : int
            Seed of the stored posterior-predictive draws.

        Returns
        -------
        Fit
            One chain of S draws. Its diagnostics are not MCMC diagnostics (no
            R-hat from one chain) and ``log_prior`` is NaN: there was no prior.

        Examples
        --------
        Muennighoff et al. (2023)'s C4 fit as a point mass::

            fit = Fit.from_draws({"E": 1.869, "A": 520.8, "B": 1487.7, "alpha": 0.3527,
                                  "beta": 0.3527, "R_D_star": 15.39, "R_N_star": 5.31},
                                 bs.datasets.load("datablations"), law="data_constrained")
        """
        from .inference import SamplerConfig, build_spec, log_mean_draws, model_args
        from .models import get_law

        sd = data if isinstance(data, ScalingData) else validate(data, check_duplicates=False)
        law_obj = get_law(law)
        names = set(law_obj.param_names)
        unknown = sorted(set(draws) - names)
        missing = [n for n in law_obj.param_names if n not in draws]
        if unknown or missing:
            raise DataError(
                f"draws for law {law_obj.name!r} need exactly {', '.join(law_obj.param_names)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in draws.items()}
        sizes = {a.size for a in arrays.values() if a.size > 1}
        if len(sizes) > 1 or any(a.ndim != 1 for a in arrays.values()):
            raise DataError(f"draws must be scalars or 1-D arrays of one length; got sizes {sorted(sizes)}")
        n = sizes.pop() if sizes else 1
        paper = {k: np.broadcast_to(a, (n,)).copy() for k, a in arrays.items()}
        for k, a in paper.items():
            p = law_obj.spec(k)
            bad = ~np.isfinite(a) | ((a <= 0) if p.support == "positive" else False)
            if p.support == "unit":
                bad |= (a <= 0) | (a >= 1)
            if bad.any():
                raise DataError(f"draws of {k!r} must be finite and in its support ({p.support})")
        required = {}
        for k in law_obj.required_fixed:
            if np.unique(paper[k]).size > 1:
                raise DataError(f"{k!r} is a constant of law {law_obj.name!r}: give one value, not draws")
            required[k] = float(paper[k][0])
        spec = build_spec(law_obj, sd, hierarchy="complete", fixed=required or None, likelihood=likelihood)
        sites: dict[str, np.ndarray] = {}
        for p in law_obj.params:
            if p.name in required:
                continue
            value = paper[p.name]
            if p.ref is not None:
                shift = sum(
                    coef * (1.0 if e is None else paper[e]) * spec.ctx.log_ref(axis) for e, axis, coef in p.ref_terms
                )
                value = np.exp(np.log(value) - shift)
            sites[p.sampled_name] = value
        fam = model_args(sd)[3]
        mu = log_mean_draws(spec, sites, np.log(sd.N), np.log(sd.D), np.log(np.minimum(sd.U, sd.D)), fam)
        if sigma is None:
            sig = np.sqrt(np.mean((np.log(sd.loss)[None, :] - mu) ** 2, axis=1))
            sig = np.maximum(sig, 1e-6)
        else:
            sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n,)).copy()
            if not (np.isfinite(sig).all() and (sig > 0).all()):
                raise DataError(f"sigma must be positive and finite, got {sigma!r}")
        sites["sigma"] = sig
        samples = {k: v.reshape(1, n) for k, v in sites.items()}
        extra = {
            "diverging": np.zeros((1, n), bool), "num_steps": np.zeros((1, n), np.int64),
            "accept_prob": np.ones((1, n)), "energy": np.zeros((1, n)), "log_joint": np.full((1, n), np.nan),
        }
        cfg = SamplerConfig(draws=n, warmup=0, chains=1, seed=seed)
        out = cls(spec, sd, build_datatree(spec, sd, samples, extra, seed), cfg)
        # given draws have no sampler to diagnose (and a point mass has no ESS at all)
        out.__dict__["_diagnostics"] = Diagnostics(
            True, 0, float("nan"), float("nan"), float("nan"),
            ("posterior given as draws (Fit.from_draws): no sampler diagnostics apply",),
        )
        return out

    @property
    def law(self) -> str:
        return self.spec.law

    @property
    def families(self) -> tuple[str, ...]:
        return self.spec.families

    @property
    def source(self) -> dict[str, str]:
        """Where the runs came from: ``name``, and ``citation`` / ``license`` for a
        bundled dataset or a frame carrying them in ``df.attrs`` (empty when unknown).
        Stored in the fit file, so a report written from a saved fit can cite it."""
        return dict(json.loads(self.datatree.attrs.get("data_source", "{}")))

    def __repr__(self) -> str:
        d = self.diagnose()
        approx = f" APPROXIMATE={self.approximate}" if self.approximate else ""
        disc = self.discrepancy
        cal = f"discrepancy={disc.design}" if disc is not None else "discrepancy=None (plain)"
        return (
            f"<Fit law={self.law} rows={self.data.n_rows} families={len(self.families)} "
            f"draws={self.n_draws}{approx} {cal} diagnostics={'ok' if d.ok else 'FAILED'}>"
        )

    # ------------------------------------------------------------ discrepancy
    @cached_property
    def discrepancy(self):
        """The learned model discrepancy (:class:`bayescale.discrepancy.Discrepancy`), or
        ``None`` for a plain fit (``fit(..., discrepancy=None)``)."""
        from .discrepancy import Discrepancy

        text = self.datatree.attrs.get("discrepancy")
        return Discrepancy.from_json(text) if text else None

    def with_discrepancy(self, design: Any) -> Fit:
        """The same posterior with another discrepancy design, or plain (``None``).

        ``design`` re-reads the fit's internal leave-future-out evidence (no refit):
        ``"centre"``, ``"edge"`` or ``"constant"`` (``bayescale.discrepancy``). A
        :class:`~bayescale.discrepancy.Discrepancy` is used as given (e.g. one learned
        on a larger table of runs).
        """
        from .discrepancy import Discrepancy, parse_design

        dt = self.datatree.copy(deep=False)
        dt.attrs = dict(self.datatree.attrs)
        if design is None:
            dt.attrs.pop("discrepancy", None)
        elif isinstance(design, Discrepancy):
            dt.attrs["discrepancy"] = design.to_json()
        else:
            try:
                parse_design(design)
            except ValueError as exc:
                raise DataError(f"{exc}; or None for the plain model") from None
            if self.discrepancy is None:
                raise DataError("this fit was made with discrepancy=None: refit with discrepancy='auto' to learn one")
            dt.attrs["discrepancy"] = self.discrepancy.with_design(design, np.log10(self.data.C)).to_json()
        return Fit(self.spec, self.data, dt, self.sampler)

    # ------------------------------------------------------------------ draws
    @property
    def n_draws(self) -> int:
        post = self.datatree["posterior"]
        return int(post.sizes["chain"] * post.sizes["draw"])

    @cached_property
    def _flat(self) -> dict[str, np.ndarray]:
        """Sampled sites with chain and draw flattened: ``(S,)`` or ``(S, F)``."""
        from .inference import posterior_sites

        post = self.datatree["posterior"]
        out = {}
        for name in posterior_sites(self.spec):
            arr = post[name].values
            out[name] = arr.reshape((-1,) + arr.shape[2:])
        return out

    # ---------------------------------------------------------------- summary
    def summary(self) -> pd.DataFrame:
        """Posterior summary in the paper's convention.

        Rows: shared or population parameters by name (``E``, ``A``, ``alpha``),
        reference-scale amplitudes (``A_ref``), population scales (``tau_*``),
        the noise scale ``sigma``, and per-family values as ``alpha[c4]``.
        Columns: mean, sd, q5, q50, q95, ess_bulk, ess_tail, mcse_mean, r_hat,
        note. Fixed parameters appear with sd 0 and note "fixed".
        """
        return self._summary.copy()

    @cached_property
    def _summary(self) -> pd.DataFrame:
        return _summarise(self._summary_rows)

    def named_draws(self) -> dict[str, np.ndarray]:
        """Draws of every row of ``summary()`` by its name (``alpha``, ``alpha[c4]``,
        ``tau_alpha``, ``sigma``), chains flattened; fixed values as one repeated value."""
        return {name: np.asarray(x).reshape(-1) for name, x, _ in self._summary_rows}

    @cached_property
    def _summary_rows(self) -> list[tuple[str, np.ndarray, str]]:
        """(name, draws of shape (chain, draw), note) per summary row."""
        from .inference import paper_draws

        post = self.datatree["posterior"]
        by_chain = {k: post[k].values for k in post.data_vars}
        paper = paper_draws(self.spec, by_chain)
        law = self.spec.law_obj
        order = [p.name for p in law.params] + [p.sampled_name for p in law.params if p.ref]
        order += [f"tau_{p.sampled_name}" for p in law.params] + ["sigma"]
        rows: list[tuple[str, np.ndarray, str]] = []
        few = len(self.families) <= PRIOR_DOMINATED_FAMILIES
        for name in order:
            if name in self.spec.fixed:
                rows.append((name, np.full((1, 2), self.spec.fixed[name]), "fixed"))
                continue
            src = paper if name in paper else by_chain
            if name in src:
                note = ""
                if name.startswith("tau_") and few:
                    note = f"population scale from {len(self.families)} families: mostly prior"
                elif self.spec.pooling.get(name, self.spec.pooling.get(name.removesuffix("_ref"))) == "partial":
                    note = "population"
                rows.append((name, src[name], note))
        for name in order:
            src = paper if f"{name}_f" in paper else by_chain
            if f"{name}_f" in src:
                fixed_here = self.spec.fixed_family.get(name, {})
                ref_of_fixed = self.spec.fixed_family.get(name.removesuffix("_ref"), {}) if name.endswith("_ref") else {}
                for j, fam in enumerate(self.families):
                    if fam in ref_of_fixed:
                        continue
                    if fam in fixed_here:
                        rows.append((f"{name}[{fam}]", np.full((1, 2), fixed_here[fam]), "fixed"))
                    else:
                        rows.append((f"{name}[{fam}]", src[f"{name}_f"][..., j], ""))
        return rows

    def diagnose(self) -> Diagnostics:
        """Convergence diagnostics (R-hat, bulk/tail ESS, divergences)."""
        return self._diagnostics

    @property
    def approximate(self) -> str | None:
        """``"laplace"`` for a fit made with ``approx="laplace"``; ``None`` for NUTS."""
        method = getattr(self.sampler, "method", "nuts")
        return None if method == "nuts" else method

    @cached_property
    def _diagnostics(self) -> Diagnostics:
        s = self._summary[self._summary["note"] != "fixed"]
        if self.approximate:
            converged = self.datatree.attrs.get("approx_converged", "0") == "1"
            msgs = [f"APPROXIMATE posterior ({self.approximate}: a normal at the posterior mode in the sampler's "
                    "unconstrained coordinates); no MCMC diagnostics apply: check against NUTS before "
                    "trusting tails or far extrapolations"]
            if not converged:
                why = self.datatree.attrs.get("approx_message", "")
                msgs.append(f"the mode search failed ({why or 'non-finite or degenerate draws'}): use NUTS")
            return Diagnostics(converged, 0, float("nan"), float(s["ess_bulk"].min()), float(s["ess_tail"].min()),
                               tuple(msgs))
        div = int(self.datatree["sample_stats"]["diverging"].values.sum())
        max_r = float(s["r_hat"].max())
        min_bulk = float(s["ess_bulk"].min())
        min_tail = float(s["ess_tail"].min())
        msgs = []
        if div:
            ta = float(getattr(self.sampler, "target_accept", DEFAULT_TARGET_ACCEPT))
            raise_ta = (f"raise target_accept (it was {ta:g}; e.g. "
                        f"{PARTIAL_TARGET_ACCEPT if ta < PARTIAL_TARGET_ACCEPT else 0.99:g}), or " if ta < 0.99
                        else f"target_accept is already {ta:g}: ")
            msgs.append(
                f"{div} divergent transitions{self._divergence_site()}: the posterior geometry is hard for NUTS "
                f"there; {raise_ta}reparametrise: centred=True/False for partially pooled parameters, "
                "hierarchy='complete' for a parameter the families' runs cannot pin, a narrower prior, or fix it"
            )
        if s["r_hat"].isna().all():
            msgs.append("R-hat needs at least 2 chains: run chains >= 2 to check convergence")
        elif not max_r <= R_HAT_MAX:
            worst = s["r_hat"].idxmax()
            msgs.append(f"R-hat {max_r:.3f} > {R_HAT_MAX} (worst: {worst}): chains disagree; run more warmup and "
                        f"draws{self._pooling_hint(worst)}")
        for kind, val in (("bulk", min_bulk), ("tail", min_tail)):
            if s[f"ess_{kind}"].isna().all():
                msgs.append(f"{kind} ESS undefined: the draws do not vary (a point-mass posterior)")
            elif not val >= ESS_MIN:
                worst = s[f"ess_{kind}"].idxmin()
                msgs.append(f"{kind} ESS {val:.0f} < {ESS_MIN} (worst: {worst}): run more draws{self._pooling_hint(worst)}")
        remedy = None
        if "remedy" in self.datatree.attrs:
            r = json.loads(self.datatree.attrs["remedy"])
            remedy = (f"the default settings failed ({'; '.join(r['failed'])}); refitted once with warmup "
                      f"{r['refit']['warmup']}, draws {r['refit']['draws']}, target_accept {r['refit']['target_accept']:g}")
        return Diagnostics(not msgs, div, max_r, min_bulk, min_tail, tuple(msgs), remedy)

    def _pooling_hint(self, name: str) -> str:
        """For a partially pooled parameter (``B[fam]``, ``tau_B_ref``, ``B``): the hierarchy that
        shares it, in case the families' runs cannot pin their own values (Gemstones' shapes,
        one decade of D each: R-hat 1.06 partially pooled, clean with B and beta shared)."""
        base = name.split("[")[0].removeprefix("tau_").removesuffix("_ref")
        if self.spec.pooling.get(base) != "partial":
            return ""
        rest = {k: v for k, v in self.spec.pooling.items() if k != base and v != "complete"}
        shared = f"hierarchy={rest!r}" if rest else "hierarchy='complete'"  # unnamed parameters: complete
        return f"; if it persists, the families' runs may not pin their own {base}: {shared} shares it"

    def _divergence_site(self) -> str:
        """Where the divergent draws sit: the parameter whose divergent draws lie furthest from
        its median (mean percentile rank among all draws), e.g. " (at small tau_E: mean
        percentile 9 of its draws)"; empty when no parameter stands out (within 0.15 of 0.5)."""
        mask = np.asarray(self.datatree["sample_stats"]["diverging"].values, bool)
        best, where = "", 0.5
        names = {name for name, _, _ in self._summary_rows}
        for name, draws, note in self._summary_rows:
            x = np.asarray(draws, np.float64)
            # the sampler's own coordinates: A_ref rather than A, which moves with its exponent
            if note == "fixed" or x.shape != mask.shape or f"{name}_ref" in names:
                continue
            pct = (np.argsort(np.argsort(x, axis=None)).reshape(x.shape)[mask] + 0.5) / x.size
            if abs(pct.mean() - 0.5) > abs(where - 0.5):
                best, where = name, float(pct.mean())
        if not best or abs(where - 0.5) < 0.15:
            return ""
        return f" (at {'small' if where < 0.5 else 'large'} {best}: mean percentile {100 * where:.0f} of its draws)"

    # ------------------------------------------------------------- prediction
    def _points(self, new: Any) -> pd.DataFrame:
        pts = new_points(new)
        if "family" not in pts.columns or pts["family"].isna().all():
            if len(self.families) > 1:
                raise DataError(
                    f"column 'family' is needed to predict from a fit with {len(self.families)} families "
                    f"({', '.join(self.families)}); a name not among them predicts for a new family"
                )
            pts["family"] = self.families[0]
        return pts

    def _site_draws_for(self, families: Sequence[str], seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per-draw site values with unseen families appended from the population."""
        import jax

        from .models import hierarchy as hier

        known = {f: i for i, f in enumerate(self.families)}
        unseen = sorted({f for f in families if f not in known})
        idx = np.array([known.get(f, len(self.families) + (unseen.index(f) if f in unseen else 0)) for f in families])
        sites = dict(self._flat)
        if not unseen:
            return sites, idx
        law = self.spec.law_obj
        unpooled = [n for n, mode in self.spec.pooling.items() if mode == "independent"]
        if unpooled:
            raise DataError(
                f"cannot predict for unseen family {unseen[0]!r}: parameter(s) {', '.join(unpooled)} are not "
                "partially pooled, so there is no population to borrow from; refit with hierarchy='partial'"
            )
        key = jax.random.PRNGKey(seed + 7919)
        for p in law.params:
            if self.spec.pooling.get(p.name) != "partial":
                continue
            s = p.sampled_name
            key, sub = jax.random.split(key)
            z = np.asarray(jax.random.normal(sub, (self.n_draws, len(unseen))))
            w = np.asarray(hier.to_working(p, sites[s]))[:, None] + sites[f"tau_{s}"][:, None] * z
            sites[f"{s}_f"] = np.concatenate([sites[f"{s}_f"], np.asarray(hier.from_working(p, w))], axis=1)
        return sites, idx

    def _log_draws(self, pts: pd.DataFrame, kind: str, seed: int) -> np.ndarray:

        from .inference import log_mean_draws

        if kind not in ("observation", "mean"):
            raise ValueError(f"kind must be 'observation' or 'mean', got {kind!r}")
        sites, idx = self._site_draws_for(list(pts["family"].astype(str)), seed)
        N, D, U = (pts[c].to_numpy(np.float64) for c in ("N", "D", "U"))
        logs = log_mean_draws(self.spec, sites, np.log(N), np.log(D), np.log(np.minimum(U, D)), idx)
        if kind == "observation":
            noise = np.asarray(self.spec.lik.standard_noise(seed, logs.shape))
            logs = logs + sites["sigma"][:, None] * noise
        if self.discrepancy is not None:
            logs = logs + self.discrepancy.draws(np.log10(6.0 * N * D), logs.shape[0], seed)
        return logs

    def uncertainty(self, new: Any, seed: int = 0) -> pd.DataFrame:
        """Where a prediction's uncertainty comes from, per row, as sds of log loss
        (about relative error): ``sd_parameter`` (the law's mean across posterior draws),
        ``sd_noise`` (run-to-run noise of the likelihood), ``sd_model`` (the learned
        discrepancy, 0 for a plain fit), ``sd_total`` (root sum of squares) and each
        part's share of the total variance (``share_parameter``, ...)."""
        from .inference import log_mean_draws

        pts = self._points(new)
        sites, idx = self._site_draws_for(list(pts["family"].astype(str)), seed)
        N, D, U = (pts[c].to_numpy(np.float64) for c in ("N", "D", "U"))
        mu = log_mean_draws(self.spec, sites, np.log(N), np.log(D), np.log(np.minimum(U, D)), idx)
        var_par = mu.var(axis=0)
        var_noise = np.full(len(pts), float(np.mean(sites["sigma"] ** 2) * self.spec.lik.unit_variance()))
        disc = self.discrepancy
        var_model = np.zeros(len(pts)) if disc is None else disc.sd(np.log10(6.0 * N * D)) ** 2
        total = var_par + var_noise + var_model
        out = pts[["N", "D", "U", "family"]].copy()
        for name, var in (("parameter", var_par), ("noise", var_noise), ("model", var_model)):
            out[f"sd_{name}"] = np.sqrt(var)
        out["sd_total"] = np.sqrt(total)
        for name, var in (("parameter", var_par), ("noise", var_noise), ("model", var_model)):
            out[f"share_{name}"] = var / total
        return out

    def predictive_draws(self, new: Any, kind: Literal["observation", "mean"] = "observation", seed: int = 0) -> xr.DataArray:
        """Posterior predictive draws of loss (nats/token), dims ``(sample, row)``.

        ``kind="mean"`` gives the law's loss per draw (parameter uncertainty);
        ``kind="observation"`` adds run-to-run noise from the likelihood.
        """
        pts = self._points(new)
        draws = np.exp(self._log_draws(pts, kind, seed))
        return xr.DataArray(draws, dims=("sample", "row"), name="loss", attrs={"units": "nats/token", "kind": kind})

    def predict(
        self,
        new: Any,
        interval: float | Sequence[float] = 0.9,
        kind: Literal["observation", "mean"] = "observation",
        seed: int = 0,
    ) -> pd.DataFrame:
        """Predicted loss with central credible (``kind="mean"``) or predictive intervals.

        Parameters
        ----------
        new : DataFrame or mapping
            Rows with ``N`` and ``D`` (or ``C``), optional ``U`` and ``family``.
            A family not in the fit is predicted from the population distribution.
        interval : float or list of float
            Central interval mass(es). One value gives columns ``lower``/``upper``;
            several give ``lower_90``/``upper_90`` and so on.
        kind : {"observation", "mean"}

        Returns
        -------
        DataFrame
            The input columns plus ``mean``, ``median``, interval bounds (loss in
            nats/token), ``extrapolation`` (decades of compute C = 6ND beyond
            the range of the fitted runs; 0 inside it) and the split of the
            uncertainty as sds of log loss: ``sd_parameter``, ``sd_noise``,
            ``sd_model`` (see :meth:`uncertainty`). ``attrs["discrepancy"]`` names
            the discrepancy design, or ``"none (plain model)"``.

        Notes
        -----
        A fit with a learned discrepancy (the default, ``fit(discrepancy="auto")``)
        adds the law's own error, growing with the compute extrapolated, to both
        kinds: ``"mean"`` is then the expected loss of a run at the point, not the
        law's curve. ``fit.with_discrepancy(None)`` predicts from the plain model.
        """
        pts = self._points(new)
        out = self._summarise_draws(pts, self._log_draws(pts, kind, seed), interval, kind)
        parts = self.uncertainty(pts, seed)
        for c in ("sd_parameter", "sd_noise", "sd_model"):
            out[c] = parts[c].to_numpy() if kind == "observation" or c != "sd_noise" else 0.0
        out.attrs["discrepancy"] = self.discrepancy.design if self.discrepancy is not None else "none (plain model)"
        return out

    def _summarise_draws(self, pts: pd.DataFrame, logs: np.ndarray, interval: float | Sequence[float],
                         kind: str) -> pd.DataFrame:
        """The prediction table from log-loss draws ``(S, rows)``; shared with ``ModelAverage``."""
        return summarise_log_draws(pts, logs, interval, kind, self.data.compute_range, self.law)

    def extrapolation(self, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        """Decades of compute (C = 6ND) outside the fitted runs' range; 0 inside."""
        return extrapolation_decades(N, D, self.data.compute_range)

    def surface(
        self,
        N: Sequence[float],
        D: Sequence[float],
        U: float | None = None,
        family: str | None = None,
        quantiles: Sequence[float] = (0.05, 0.5, 0.95),
        kind: Literal["observation", "mean"] = "mean",
        seed: int = 0,
    ) -> xr.Dataset:
        """Loss quantiles over the grid N x D (unique tokens U, one family).

        Returns a Dataset with ``mean`` (dims N, D) and ``loss`` (dims quantile,
        N, D), in nats/token.
        """
        Ng, Dg = np.meshgrid(np.asarray(N, float), np.asarray(D, float), indexing="ij")
        frame = pd.DataFrame({"N": Ng.ravel(), "D": Dg.ravel()})
        if U is not None:
            frame["U"] = float(U)
        if family is not None:
            frame["family"] = family
        logs = self._log_draws(self._points(frame), kind, seed)
        shape = Ng.shape
        q = np.exp(np.quantile(logs, list(quantiles), axis=0)).reshape((len(quantiles),) + shape)
        return xr.Dataset(
            {
                "mean": (("N", "D"), np.exp(logs).mean(axis=0).reshape(shape)),
                "loss": (("quantile", "N", "D"), q),
            },
            coords={"N": np.asarray(N, float), "D": np.asarray(D, float), "quantile": list(quantiles)},
            attrs={"units": "nats/token", "kind": kind, "U": "D (one epoch)" if U is None else float(U),
                   "family": family or self.families[0]},
        )

    # ---------------------------------------------------------------- saving
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit to netCDF atomically (temporary file, then rename).

        The file holds the posterior, diagnostics, data, the model spec (law,
        priors, fixed values, pooling, likelihood) and the sampler settings, so
        ``load_fit`` rebuilds a Fit that predicts identically.
        """
        path = Path(path)
        dt = self.datatree.copy()
        dt.attrs.update(
            {
                "bayescale_format": FORMAT_VERSION,
                "bayescale_version": _version(),
                "law": self.law,
                "model_spec": self.spec.to_json(),
                "sampler": json.dumps(asdict(self.sampler)),
            }
        )
        with atomic_path(path) as tmp:
            dt.to_netcdf(tmp, engine="h5netcdf")
        return path


def summarise_log_draws(
    pts: pd.DataFrame,
    logs: np.ndarray,
    interval: float | Sequence[float],
    kind: str,
    compute_range: tuple[float, float],
    law: str,
) -> pd.DataFrame:
    """Prediction table from log-loss draws ``(S, rows)``: the input columns plus mean,
    median, central interval bounds (nats/token) and the extrapolation distance.

    One level gives ``lower``/``upper``; several give ``lower_90``/``upper_90`` and so on.
    Used by ``Fit``, ``ModelAverage`` and the Huber baseline so all predict alike.
    """
    out = pts.copy()
    out["mean"] = np.exp(logs).mean(axis=0)
    out["median"] = np.exp(np.median(logs, axis=0))
    levels = [interval] if np.isscalar(interval) else list(interval)
    for lev in levels:
        if not 0 < float(lev) < 1:
            raise ValueError(f"interval must be in (0, 1), got {lev}")
        lo, hi = np.exp(np.quantile(logs, [(1 - lev) / 2, (1 + lev) / 2], axis=0))
        suffix = "" if len(levels) == 1 else f"_{round(100 * lev):d}"
        out[f"lower{suffix}"], out[f"upper{suffix}"] = lo, hi
    out["extrapolation"] = extrapolation_decades(out["N"].to_numpy(), out["D"].to_numpy(), compute_range)
    out.attrs.update({"kind": kind, "interval": levels, "units": "nats/token", "law": law})
    return out


def _summarise(rows: list[tuple[str, np.ndarray, str]]) -> pd.DataFrame:
    """Statistics of (chain, draw) arrays; convergence statistics from
    :func:`bayescale.diagnostics.chain_stats` (Vehtari et al. 2021, as arviz-stats, without
    its 0.6 s import in every fit)."""
    from dataclasses import asdict

    from .diagnostics import chain_stats

    records = []
    for name, arr, note in rows:
        arr = np.asarray(arr, dtype=np.float64)
        q5, q50, q95 = np.quantile(arr, [0.05, 0.5, 0.95])
        rec = {"mean": arr.mean(), "sd": arr.std(ddof=1) if arr.size > 1 else 0.0, "q5": q5, "q50": q50, "q95": q95}
        if note == "fixed":
            rec.update(sd=0.0, ess_bulk=np.nan, ess_tail=np.nan, mcse_mean=0.0, r_hat=np.nan)
        else:
            rec.update(asdict(chain_stats(arr)))
        rec["note"] = note
        records.append((name, rec))
    frame = pd.DataFrame([r for _, r in records], index=[n for n, _ in records])
    frame.index.name = "parameter"
    return frame


# ---------------------------------------------------------------------- fit


#: NUTS' target acceptance at the defaults, and with any partially pooled parameter
DEFAULT_TARGET_ACCEPT = 0.8
PARTIAL_TARGET_ACCEPT = 0.95


def default_target_accept(spec: Any) -> float:
    """NUTS' target acceptance for a model: the law's own (``Law.target_accept``), raised to
    ``PARTIAL_TARGET_ACCEPT`` when any parameter is partially pooled."""
    from .models import get_law

    partial = "partial" in spec.pooling.values()
    return max(PARTIAL_TARGET_ACCEPT if partial else DEFAULT_TARGET_ACCEPT, get_law(spec.law).target_accept)


def remedied(cfg: Any, diag: Diagnostics) -> Any:
    """Sampler settings for one refit after ``diag`` failed: divergences (a step size too
    large for part of the posterior) raise the target acceptance to 0.95, or 0.99 from
    0.95 and above, and double the warmup; R-hat or ESS failures alone (chains that had
    not mixed, or too few effective draws) double the warmup and the draws. Both keep
    the posterior; they only cost time."""
    from dataclasses import replace

    if diag.divergences:
        ta = 0.99 if cfg.target_accept >= PARTIAL_TARGET_ACCEPT else PARTIAL_TARGET_ACCEPT
        return replace(cfg, target_accept=ta, warmup=2 * cfg.warmup)
    return replace(cfg, warmup=2 * cfg.warmup, draws=2 * cfg.draws)


def fit(
    df: Any,
    law: str = "chinchilla",
    hierarchy: str | Mapping[str, str] = "auto",
    priors: Mapping[str, Any] | None = None,
    fixed: Mapping[str, float] | None = None,
    likelihood: str = "student_t",
    draws: int = 1000,
    warmup: int = 1000,
    chains: int = 4,
    seed: int = 0,
    progress: bool | str = "auto",
    columns: Mapping[str, str] | None = None,
    target_accept: float | None = None,
    dense_mass: bool = True,
    chain_method: str = "auto",
    centred: bool | None = None,
    warn: bool = True,
    strict: bool = False,
    approx: str | None = None,
    discrepancy: str | None = "auto",
    remedy: bool = True,
) -> Fit:
    """Fit a scaling law to a table of training runs with NUTS.

    Parameters
    ----------
    df : DataFrame or path to a CSV
        Runs with columns N (parameters), D (tokens seen) or C (FLOPs), loss
        (nats/token), optional U (unique tokens) and family; see ``bayescale.data``.
    law : str
        A name from ``bayescale.models.law_names()``.
    hierarchy : "auto", "complete", "independent", "partial" or dict
        Pooling across families (``bayescale.models.hierarchy``).
    priors : dict, optional
        Overrides by sampled name, e.g. ``{"alpha": "LogNormal(-1.2, 0.3)"}``.
    fixed : dict, optional
        Parameters held at given values, e.g. ``{"E": 1.869}``.
    likelihood : {"student_t", "gaussian", "laplace"}
    draws, warmup, chains, seed : int
        NUTS settings (per chain).
    progress : bool or "auto"
        Progress bar; "auto" shows it only on a terminal.
    columns : dict, optional
        Column renames, ``{"N": "params"}``.
    target_accept : float, optional
        NUTS' target acceptance; default the law's own (``Law.target_accept``: 0.8,
        0.9 for the data-constrained laws, whose ``min`` kink gives divergences at 0.8),
        and ``PARTIAL_TARGET_ACCEPT`` (0.95) when any parameter is partially pooled: with
        2-3 families the population scales keep a funnel-like neck that 0.8 explores
        poorly (Gadre, 3 families: tail ESS 201 at 0.8, 1210-1718 at 0.95 over three
        seeds; README, Speed). Raise it when a fit reports divergences.
    dense_mass, chain_method
        NUTS settings.
    centred : bool or dict, optional
        Parametrisation of partially pooled values: True centred, False non-centred, or
        ``{sampled name: weight per family}``; default: weights read off each family's
        runs (``inference.centring``, ``models.hierarchy``).
    warn : bool
        Warn (``DiagnosticsWarning``) when the fit fails its diagnostics.
    strict : bool
        Raise ``DiagnosticsError`` instead of warning.
    approx : {None, "laplace"}
        ``"laplace"``: no MCMC; a normal approximation at the posterior mode
        (``inference.run_laplace``), ``draws`` independent draws in one chain, in
        well under a second once compiled. Labelled approximate everywhere
        (``Fit.approximate``, ``diagnose().messages``, the CLI). Good for a first
        look with plenty of runs; hierarchical scales and far tails need NUTS.
    discrepancy : {"auto", "centre", "edge", "constant", None}
        The law's own error, growing with the compute extrapolated
        (:mod:`bayescale.discrepancy`), learned by leave-future-out inside the runs:
        four more fits of the same model on the smaller runs (shares
        ``INTERNAL_HOLDOUTS`` held out), with the same compiled sampler. ``"auto"``
        takes the design whose internal leave-future-out evidence is largest;
        ``None`` keeps the plain model (parameter and
        noise uncertainty only), labelled as such in predictions. It changes
        predictions, never the posterior of the law's parameters.

    remedy : bool
        When a fit at the default sampler settings (draws, warmup and target acceptance
        not given) fails its diagnostics, refit once with the safe remedy
        (:func:`remedied`: on divergences a higher target acceptance and a longer warmup,
        otherwise twice the warmup and draws) and keep the refit;
        ``fit.diagnose().remedy`` and the saved file record what failed and what was
        changed. False hands back the first fit as it is.

    Returns
    -------
    Fit
    """
    from .models import hierarchy as hier

    raw_modes = [hierarchy] if isinstance(hierarchy, str) else list(dict(hierarchy).values())
    data = validate(df, columns=columns, min_runs_per_family=hier.min_runs_per_family(dict(enumerate(raw_modes))))
    _check_int("draws", draws, 1)
    _check_int("warmup", warmup, 0)
    _check_int("chains", chains, 1)

    if approx not in (None, "laplace"):
        raise DataError(f"approx must be None or 'laplace', got {approx!r}")
    from .discrepancy import DEFAULT_DESIGN, DESIGNS, STRUCTURES, parse_design

    if discrepancy is not None:
        try:
            parse_design(discrepancy)
        except ValueError:
            raise DataError(f"discrepancy must be 'auto', one of {', '.join(DESIGNS)} (either optionally followed "
                            f"by /{' or /'.join(STRUCTURES)}), or None; got {discrepancy!r}") from None

    from .runtime import prepare

    prepare(chains)  # before JAX starts: a device per chain, the compilation cache
    from .inference import SamplerConfig, build_spec, centring, run_laplace, run_nuts

    spec = build_spec(law, data, hierarchy=hierarchy, priors=priors, fixed=fixed, likelihood=likelihood,
                      centred=centred)
    if centred is None and approx is None:
        spec = centring(spec, data, seed)
    explicit_ta = target_accept
    if approx == "laplace":
        cfg = SamplerConfig(draws=draws, warmup=0, chains=1, seed=seed, method="laplace")
        samples, extra = run_laplace(spec, data, cfg)
    else:
        explicit_ta = target_accept
        if target_accept is None:
            target_accept = default_target_accept(spec)
        if not 0.0 < float(target_accept) < 1.0:
            raise DataError(f"target_accept must be between 0 and 1 (exclusive), got {target_accept!r}")
        cfg = SamplerConfig(
            draws=draws, warmup=warmup, chains=chains, seed=seed, dense_mass=dense_mass,
            target_accept=target_accept, chain_method=chain_method,
        )
        samples, extra = run_nuts(spec, data, cfg, progress=progress)
    result = Fit(spec, data, build_datatree(spec, data, samples, extra, seed), cfg)
    # (diagnose() is cached: an approximate fit is diagnosed only once its attrs are complete)
    first = None if approx else result.diagnose()
    if first is not None and not first.ok and remedy and draws == 1000 and warmup == 1000 and explicit_ta is None:
        # the defaults failed: one refit with the safe remedy (never for settings the user chose)
        cfg = remedied(cfg, first)
        samples, extra = run_nuts(spec, data, cfg, progress=progress)
        result = Fit(spec, data, build_datatree(spec, data, samples, extra, seed), cfg)
        result.datatree.attrs["remedy"] = json.dumps({
            "failed": list(first.messages), "refit": {"warmup": cfg.warmup, "draws": cfg.draws,
                                                      "target_accept": cfg.target_accept}})
    result.datatree.attrs["data_source"] = json.dumps(data_source(df))
    if discrepancy is not None:
        from .discrepancy import learn_discrepancy

        design = DEFAULT_DESIGN if discrepancy == "auto" else discrepancy
        learned = learn_discrepancy(spec, data, cfg, design=design, method="laplace" if approx else "nuts",
                                    warm=extra.get("warm"))
        # the internal evidence picked the design (never the runs to be predicted)
        result.datatree.attrs["discrepancy"] = learned.to_json()
    if approx:
        result.datatree.attrs["approx_converged"] = "1" if extra["converged"] else "0"
        result.datatree.attrs["approx_message"] = str(extra["message"])
    diag = result.diagnose()
    if not diag.ok:
        message = "fit failed its diagnostics: " + "; ".join(diag.messages)
        if strict:
            raise DiagnosticsError(message, result)
        if warn:
            warnings.warn(message, DiagnosticsWarning, stacklevel=2)
    return result


def data_source(df: Any) -> dict[str, str]:
    """Name, citation and license of a table of runs, from a path or ``DataFrame.attrs``
    (bundled datasets set them; see ``bayescale.datasets``)."""
    if isinstance(df, str | os.PathLike):
        return {"name": Path(df).name}
    attrs = getattr(df, "attrs", None) or {}
    return {k: str(attrs[k]) for k in ("name", "citation", "license") if attrs.get(k)}


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}, got {value!r}")


def build_datatree(spec, data: ScalingData, samples: Mapping[str, np.ndarray], extra: Mapping[str, np.ndarray], seed: int) -> xr.DataTree:
    """Assemble the arviz DataTree: posterior (sampled and paper-convention
    variables), sample_stats, log_likelihood, posterior_predictive, observed and
    constant data."""
    import arviz_base as azb

    from .inference import log_mean_draws, model_args, paper_draws

    chains, ndraw = next(iter(samples.values())).shape[:2]
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
    logN, logD, logU, fam = model_args(data)
    mu = log_mean_draws(spec, flat, logN, logD, logU, fam)
    sigma = flat["sigma"][:, None]
    log_y = np.log(data.loss)
    loglik = np.asarray(spec.lik.dist(mu, sigma).log_prob(log_y))
    noise = np.asarray(spec.lik.standard_noise(seed + 1, mu.shape))
    yrep = mu + sigma * noise
    # paper_draws also carries per-family fixed values in place of the sampler's stand-ins
    posterior = {**samples, **paper_draws(spec, samples)}
    shape = (chains, ndraw, data.n_rows)
    stats = {
        "diverging": extra["diverging"].astype(bool),
        "n_steps": extra["num_steps"],
        "acceptance_rate": extra["accept_prob"],
        "energy": extra["energy"],
    }
    dims = {k: ["family"] for k in posterior if k.endswith("_f")}
    dims.update({k: ["row"] for k in ("log_loss", "N", "D", "U", "loss", "family_name")})
    return azb.from_dict(
        {
            "posterior": posterior,
            "sample_stats": stats,
            "log_likelihood": {"log_loss": loglik.reshape(shape)},
            # the joint minus the likelihood: what arviz-stats' psense power-scales as the prior
            "log_prior": {"log_prior": extra["log_joint"] - loglik.reshape(shape).sum(axis=-1)},
            "posterior_predictive": {"log_loss": yrep.reshape(shape)},
            "observed_data": {"log_loss": log_y},
            "constant_data": {
                "N": data.N, "D": data.D, "U": data.U, "loss": data.loss,
                "family_name": np.array([data.families[i] for i in data.family_idx], dtype=str),
            },
        },
        dims=dims,
        coords={"family": list(data.families), "row": np.arange(data.n_rows)},
    )


def load_fit(path: str | os.PathLike) -> Fit:
    """Read a fit written by ``Fit.save``; it predicts exactly as the original."""
    from .runtime import compilation_cache

    compilation_cache()  # before JAX starts: predictions compile once per shape, then load from disk
    from .inference import ModelSpec, SamplerConfig

    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"{path}: no such file")
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            dt = tree.load()
    except Exception as exc:  # h5py/xarray raise many types for a bad file
        raise FitFileError(f"{path}: not a readable netCDF fit file ({type(exc).__name__}: {exc})") from None
    attrs = dt.attrs
    if "bayescale_format" not in attrs:
        raise FitFileError(f"{path}: a netCDF file, but not one written by bayescale (no 'bayescale_format' attribute)")
    if int(attrs["bayescale_format"]) != FORMAT_VERSION:
        raise FitFileError(
            f"{path}: written in bayescale file format {attrs['bayescale_format']} "
            f"(bayescale {attrs.get('bayescale_version', '?')}); this version reads format {FORMAT_VERSION}"
        )
    try:
        spec = ModelSpec.from_json(attrs["model_spec"])
        sampler = SamplerConfig(**json.loads(attrs["sampler"]))
        cd = dt["constant_data"]
        frame = pd.DataFrame(
            {
                "N": cd["N"].values, "D": cd["D"].values, "U": cd["U"].values,
                "loss": cd["loss"].values, "family": cd["family_name"].values.astype(str),
            }
        )
        data = validate(frame, check_duplicates=False)
        for group in ("posterior", "sample_stats"):
            dt[group]
    except (KeyError, ValueError, TypeError) as exc:
        raise FitFileError(f"{path}: bayescale fit file is incomplete or corrupted ({type(exc).__name__}: {exc})") from None
    return Fit(spec, data, dt, sampler)
