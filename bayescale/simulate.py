"""Simulate tables of training runs from a scaling law's own Bayesian model.

The simulator draws "true" parameters from the prior of exactly the model
:func:`bayescale.fit` would build for a design (same law, priors, hierarchy,
reference scales and likelihood: :func:`bayescale.inference.build_spec` and
:func:`bayescale.inference.make_model`), then draws log losses from that model's
likelihood. A table made this way is an exact prior-predictive draw, so a fit of
it with the same settings must give calibrated posteriors: over many simulated
tables, central 90% intervals cover the true value 90% of the time (Cook, Gelman
and Rubin 2006; Talts et al. 2018, arXiv:1804.06788). ``tests/test_recovery.py``
and ``benchmarks/recovery.py`` check that.

Three steps, each usable on its own:

- :func:`ladder`: a Chinchilla-style design, model sizes N log-uniform and
  tokens-per-parameter D/N log-uniform (Hoffmann et al. 2022, arXiv:2203.15556,
  trained 70M-16B models at 5-80+ tokens per parameter);
- :func:`draw_truth`: parameters from the model's prior, by tracing the numpyro
  model with ``log_y=None``;
- :func:`simulate`: losses given a truth (drawn or supplied).

Nothing here imports JAX or numpyro at module import time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .data import ScalingData, validate

if TYPE_CHECKING:  # pragma: no cover
    from .inference import ModelSpec
    from .models import Prior

__all__ = ["Simulated", "design_data", "design_spec", "draw_truth", "ladder", "simulate"]

#: Placeholder loss used to validate a design that has no loss column yet.
_PLACEHOLDER_LOSS = 1.0


@dataclass(frozen=True)
class Simulated:
    """A simulated table of runs and the truth behind it.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per run with columns ``N`` (parameters), ``D`` (tokens seen),
        ``U`` (unique tokens), ``family``, ``loss`` (nats/token, with noise) and
        ``loss_law`` (the law's noise-free loss for the run's true parameters),
        in the design's row order. Pass it to :func:`bayescale.fit` as is
        (``loss_law`` is an extra column and is ignored).
    truth : dict of str to numpy.ndarray
        True values by site name: every site the fit's posterior holds
        (``E``, ``tau_E``, ``E_f``, ``A_ref``, ..., ``sigma``; family vectors
        in the order of ``spec.families``) plus the paper-convention amplitudes
        ``A``, ``A_f``, ``B``, ``B_f`` derived from them.
    spec : bayescale.inference.ModelSpec
        The model the table was drawn from (built on the whole design).
    """

    runs: pd.DataFrame
    truth: dict[str, np.ndarray]
    spec: ModelSpec

    def __post_init__(self) -> None:
        missing = [c for c in ("N", "D", "U", "family", "loss") if c not in self.runs.columns]
        if missing:
            raise ValueError(f"Simulated.runs lacks column(s) {', '.join(missing)}")
        if "sigma" not in self.truth:
            raise ValueError("Simulated.truth lacks 'sigma'")


# --------------------------------------------------------------------------- #
# Designs                                                                      #
# --------------------------------------------------------------------------- #


def ladder(
    n_runs_per_family: int | Sequence[int],
    families: int | Sequence[str] = 4,
    N_range: tuple[float, float] = (1e7, 1e10),
    tokens_per_param: tuple[float, float] = (5.0, 80.0),
    seed: int = 0,
) -> pd.DataFrame:
    """A Chinchilla-style ladder of training-run designs (no losses).

    For each run, ``log N ~ Uniform(log N_min, log N_max)`` and the
    tokens-per-parameter ratio ``r ~ LogUniform(r_min, r_max)``, so
    ``D = r N``; every run sees its data once (``U = D``).

    Parameters
    ----------
    n_runs_per_family : int or sequence of int
        Runs per family; one number for all families or one per family.
    families : int or sequence of str, default 4
        A number of families (named ``"f0"``, ``"f1"``, ...) or their names.
    N_range : (float, float), default (1e7, 1e10)
        Smallest and largest model size, parameters.
    tokens_per_param : (float, float), default (5, 80)
        Smallest and largest D/N (Hoffmann et al. 2022 found ~20 compute-optimal).
    seed : int, default 0
        Seed of the numpy generator.

    Returns
    -------
    pandas.DataFrame
        Columns ``N``, ``D``, ``U`` (float64) and ``family`` (str), families in
        blocks in the given order.
    """
    names = [f"f{i}" for i in range(families)] if isinstance(families, int | np.integer) else [str(f) for f in families]
    if not names:
        raise ValueError("ladder needs at least one family")
    if len(set(names)) != len(names):
        raise ValueError(f"family names repeat: {names}")
    counts = [int(n_runs_per_family)] * len(names) if np.isscalar(n_runs_per_family) else [int(n) for n in n_runs_per_family]
    if len(counts) != len(names):
        raise ValueError(f"{len(counts)} run counts for {len(names)} families")
    if min(counts) < 1:
        raise ValueError(f"every family needs at least one run, got {counts}")
    (n_lo, n_hi), (r_lo, r_hi) = N_range, tokens_per_param
    if not 0 < n_lo <= n_hi or not 0 < r_lo <= r_hi:
        raise ValueError(f"need 0 < low <= high in N_range={N_range} and tokens_per_param={tokens_per_param}")
    rng = np.random.default_rng(seed)
    total = sum(counts)
    N = np.exp(rng.uniform(np.log(n_lo), np.log(n_hi), total))
    D = N * np.exp(rng.uniform(np.log(r_lo), np.log(r_hi), total))
    family = np.repeat(np.asarray(names, dtype=object), counts)
    return pd.DataFrame({"N": N, "D": D, "U": D.copy(), "family": family.astype(str)})


def design_data(design: pd.DataFrame | ScalingData) -> ScalingData:
    """A design as :class:`~bayescale.data.ScalingData` (a placeholder loss is added if absent).

    The loss never enters the model's prior or reference scales, so the
    placeholder has no effect on anything drawn from the prior.
    """
    if isinstance(design, ScalingData):
        return design
    frame = pd.DataFrame(design).copy()
    if "loss" not in frame.columns:
        frame["loss"] = _PLACEHOLDER_LOSS
    return validate(frame, check_duplicates=False)


def design_spec(
    design: pd.DataFrame | ScalingData,
    law: str = "chinchilla",
    hierarchy: str | Mapping[str, str] = "partial",
    priors: Mapping[str, str | Prior] | None = None,
    fixed: Mapping[str, float] | None = None,
    likelihood: str = "student_t",
) -> ModelSpec:
    """The :class:`~bayescale.inference.ModelSpec` that ``bs.fit`` builds for this design."""
    from .inference import build_spec

    return build_spec(law, design_data(design), hierarchy=hierarchy, priors=priors, fixed=fixed,
                      likelihood=likelihood)


# --------------------------------------------------------------------------- #
# Truth from the prior                                                         #
# --------------------------------------------------------------------------- #


def draw_truth(
    design: pd.DataFrame | ScalingData,
    law: str = "chinchilla",
    hierarchy: str | Mapping[str, str] = "partial",
    seed: int = 0,
    priors: Mapping[str, str | Prior] | None = None,
    fixed: Mapping[str, float] | None = None,
    likelihood: str = "student_t",
) -> dict[str, np.ndarray]:
    """Draw one set of "true" parameters from the prior of the model ``bs.fit`` builds.

    The numpyro model of :func:`bayescale.inference.make_model` is run forward
    (``numpyro.handlers.seed`` + ``trace``, ``log_y=None``), so the draw has
    exactly the fit's priors, pooling and reparametrisation. The design fixes
    the families and the reference scales (``A_ref`` is the size of the
    ``A / N**alpha`` term at the design's geometric-mean N).

    Parameters
    ----------
    design : DataFrame or ScalingData
        Runs with ``N``, ``D``, optional ``U`` and ``family`` (a loss column is
        not needed).
    law, hierarchy, priors, fixed, likelihood
        As in :func:`bayescale.fit`.
    seed : int
        Seed of the JAX PRNG key.

    Returns
    -------
    dict of str to numpy.ndarray
        The fit's posterior sites (``E``, ``tau_E``, ``E_f`` (per family), ...,
        ``sigma``) and the paper-convention ``A``, ``B`` (and ``A_f``, ``B_f``),
        as float64 scalars (0-d arrays) or family vectors.
    """
    import jax

    data = design_data(design)
    spec = design_spec(data, law, hierarchy, priors, fixed, likelihood)
    return _draw_truth(spec, data, jax.random.PRNGKey(seed))


def _draw_truth(spec: ModelSpec, data: ScalingData, key: Any) -> dict[str, np.ndarray]:
    import numpyro

    from .inference import make_model, model_args, paper_draws, posterior_sites

    model = make_model(spec)
    tr = numpyro.handlers.trace(numpyro.handlers.seed(model, rng_seed=key)).get_trace(*model_args(data), log_y=None)
    sites = {name: np.asarray(tr[name]["value"], dtype=np.float64) for name in posterior_sites(spec)}
    out = dict(sites)
    for name, value in paper_draws(spec, sites).items():
        out.setdefault(name, np.asarray(value, dtype=np.float64))
    return out


# --------------------------------------------------------------------------- #
# Losses                                                                       #
# --------------------------------------------------------------------------- #


def simulate(
    design: pd.DataFrame | ScalingData,
    law: str = "chinchilla",
    hierarchy: str | Mapping[str, str] = "partial",
    seed: int = 0,
    truth: Mapping[str, Any] | None = None,
    likelihood: str = "student_t",
    priors: Mapping[str, str | Prior] | None = None,
    fixed: Mapping[str, float] | None = None,
) -> Simulated:
    """Simulate final losses for a design from the model ``bs.fit`` would build.

    .. math::

        \\theta \\sim p(\\theta), \\qquad
        \\log L_i \\sim F(\\log L_{law}(\\theta_{f(i)}; N_i, D_i, U_i), \\sigma)

    with ``p`` the fit's prior (law priors at the design's reference scales,
    pooling, ``sigma ~ HalfNormal(0.1)``) and ``F`` its likelihood on log loss
    (Student-t with nu = 4 by default). The law's mean and the noise are
    computed with the same functions the fitted model calls
    (:func:`bayescale.inference.law_params`, ``law.log_loss``,
    ``Likelihood.dist``), so with ``truth=None`` a table is an exact draw from
    the fit's prior predictive distribution.

    Parameters
    ----------
    design : DataFrame or ScalingData
        Runs with ``N``, ``D``, optional ``U`` and ``family``; e.g. from
        :func:`ladder`. Any ``loss`` column is ignored.
    law : str, default "chinchilla"
    hierarchy : str or dict, default "partial"
        As in :func:`bayescale.fit`.
    seed : int, default 0
        One seed for the truth (if drawn) and the noise.
    truth : dict, optional
        True values by site name (as returned in :attr:`Simulated.truth`): for
        each free parameter its sampled name (``E``, ``A_ref``) under complete
        pooling or ``<name>_f`` (a family vector) otherwise, plus ``sigma``.
        ``None`` draws them from the prior with :func:`draw_truth`.
    likelihood : {"student_t", "gaussian", "laplace"}, default "student_t"
    priors : dict, optional
        Prior overrides passed to the model, as in :func:`bayescale.fit`. The
        truth is drawn from these priors, so a calibration check must fit with
        the same ``priors``; tightening them is a way to keep simulated truths
        in a realistic range (e.g. ``{"sigma": "HalfNormal(0.02)"}`` for
        seed-to-seed noise of a few percent) without breaking calibration.
    fixed : dict, optional
        Parameters held fixed, as in :func:`bayescale.fit`.

    Returns
    -------
    Simulated
        ``runs`` (design plus ``loss`` and ``loss_law``), ``truth`` and ``spec``.
    """
    import jax

    from .inference import law_params, model_args

    data = design_data(design)
    spec = design_spec(data, law, hierarchy, priors, fixed, likelihood)
    k_truth, k_noise = jax.random.split(jax.random.PRNGKey(seed))
    if truth is None:
        true = _draw_truth(spec, data, k_truth)
    else:
        true = _complete_truth(spec, truth)
    logN, logD, logU, fam = model_args(data)
    mu = spec.law_obj.log_loss(law_params(spec, true, fam), logN, logD, logU)
    log_y = spec.lik.dist(mu, float(true["sigma"])).sample(k_noise)
    runs = data.frame[["N", "D", "U", "family"]].reset_index(drop=True).copy()
    runs["loss"] = np.exp(np.asarray(log_y, dtype=np.float64))
    runs["loss_law"] = np.exp(np.asarray(mu, dtype=np.float64))
    return Simulated(runs=runs, truth=true, spec=spec)


def _complete_truth(spec: ModelSpec, truth: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check a user-supplied truth has every site the model needs; add paper-convention values."""
    from .inference import paper_draws

    n_fam = len(spec.families)
    need = ["sigma"]
    for p in spec.law_obj.params:
        if p.name in spec.fixed:
            continue
        need.append(p.sampled_name if spec.pooling[p.name] == "complete" else f"{p.sampled_name}_f")
    missing = [n for n in need if n not in truth]
    if missing:
        raise ValueError(f"truth lacks site(s) {', '.join(missing)}; needs {', '.join(need)}")
    out = {k: np.asarray(v, dtype=np.float64) for k, v in truth.items()}
    for name in need:
        if name.endswith("_f") and out[name].shape != (n_fam,):
            raise ValueError(f"truth[{name!r}] must have shape ({n_fam},), got {out[name].shape}")
    for name, value in paper_draws(spec, out).items():
        out.setdefault(name, np.asarray(value, dtype=np.float64))
    return out
