"""Observation models for log loss.

Losses are modelled on the log scale, ``log L_obs ~ F(log L_law, sigma)``, so the
noise is relative (a 1% seed-to-seed wobble is the same at 4 nats and at 2 nats)
and the law's positive prediction stays positive.

- ``student_t`` (default): Student-t with nu = 4 fixed. Heavy tails keep a few
  bad runs (diverged, mis-digitised) from dragging the law, the role the Huber
  loss plays in Hoffmann et al. 2022 and Besiroglu et al. 2024.
- ``gaussian``: Normal.
- ``laplace``: Laplace; the limit of a Huber objective with a small delta
  (Huber delta 1e-3 on log loss, as Hoffmann et al. and Muennighoff et al. use),
  so it matches the published point fits' objective.

The scale ``sigma`` is learned, with prior ``HalfNormal(0.1)``: seed-to-seed
variation of final loss is up to ~3.5-4% (Choshen et al. 2024, arXiv:2410.11840),
and digitised losses add error, so 0.1 on the log scale is a generous upper
range, not a guess at the value.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .priors import Prior

NAMES = ("student_t", "gaussian", "laplace")
STUDENT_T_NU = 4.0
SIGMA_PRIOR = Prior("HalfNormal", scale=0.1)


@functools.cache
def _student_t_class(nu: float) -> type:
    """numpyro's ``StudentT`` with its normalising constant computed once in Python.

    numpyro evaluates ``lgamma(nu / 2) - lgamma((nu + 1) / 2)`` inside the traced density,
    over the broadcast ``nu`` of every row; with ``nu`` fixed that is a constant, and
    leaving JAX's ``lgamma`` out of the program cut XLA's compilation of the sampler from
    6.3 s to 4.2 s (``jax_log_compiles``; chinchilla law on Gadre, complete pooling). The
    density is numpyro's formula, the same number (``tests/test_model.py``).
    """
    import jax.numpy as jnp
    import numpyro.distributions as nd

    # a class per nu, so the constant survives numpyro flattening the distribution (vmap, jit)
    log_norm = math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi)

    class StudentTFixedDf(nd.StudentT):
        def log_prob(self, value: Any) -> Any:
            y = (value - self.loc) / self.scale
            return log_norm - jnp.log(self.scale) - 0.5 * (nu + 1.0) * jnp.log1p(y**2 / nu)

    return StudentTFixedDf


@dataclass(frozen=True)
class Likelihood:
    """A location-scale observation model on log loss."""

    name: str = "student_t"
    nu: float = STUDENT_T_NU

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise ValueError(f"unknown likelihood {self.name!r}; use one of {', '.join(NAMES)}")

    def dist(self, loc: Any, scale: Any) -> Any:
        """numpyro distribution of log loss given the law's log loss and sigma."""
        import numpyro.distributions as nd

        if self.name == "student_t":
            return _student_t_class(float(self.nu))(self.nu, loc, scale)
        if self.name == "gaussian":
            return nd.Normal(loc, scale)
        return nd.Laplace(loc, scale)

    def standard_noise(self, seed: int, shape: tuple[int, ...]) -> np.ndarray:
        """Draws of the standardised noise (loc 0, scale 1) for predictive draws.

        numpy, not ``jax.random``: these are drawn outside any jitted function, where
        JAX's eager Student-t sampler took ~3 s for 4000 x 245 draws (numpy: ~30 ms).
        """
        rng = np.random.default_rng(seed)
        if self.name == "student_t":
            return rng.standard_t(self.nu, shape)
        if self.name == "gaussian":
            return rng.standard_normal(shape)
        return rng.laplace(0.0, 1.0, shape)

    def unit_variance(self) -> float:
        """Variance of the standardised noise: Student-t nu / (nu - 2), Laplace 2, Gaussian 1.

        Exact, not a sample variance: a sample of t_4 draws has no finite variance of its own.
        """
        if self.name == "student_t":
            return self.nu / (self.nu - 2.0) if self.nu > 2.0 else float("inf")
        return 2.0 if self.name == "laplace" else 1.0
