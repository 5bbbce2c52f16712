r"""Cost model: FLOPs of training (and optionally serving) a model, and their price.

Training a dense transformer with N parameters on D tokens costs
:math:`C_{train} = k N D` FLOPs with k = 6 (2 for the forward pass, 4 for the
backward pass; Kaplan et al. 2020, Sec. 2.1; Hoffmann et al. 2022, App. F).
Serving it for T tokens costs :math:`C_{inf} = 2 N T` (one forward pass per
token). A budget C fixes the tokens a model of size N can be trained on:

.. math:: D(N) = \frac{C - 2 N T}{k N}

so a model that will serve many tokens is better made smaller and trained
longer (Sardana et al. 2023, "Beyond Chinchilla-Optimal", arXiv:2401.00448).
With a price per FLOP, budgets can be stated in money.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CostModel:
    """FLOPs per parameter per token for training and serving, and a price.

    Parameters
    ----------
    flops_per_param_token : float
        k in C = k N D; 6 for dense transformers.
    price_per_flop : float, optional
        Money per FLOP (any currency) so budgets can be given in money.
    inference_tokens : float
        Tokens the model will serve over its life (T); 0 ignores serving.
    inference_flops_per_param_token : float
        FLOPs per parameter per served token; 2 for a forward pass.
    """

    flops_per_param_token: float = 6.0
    price_per_flop: float | None = None
    inference_tokens: float = 0.0
    inference_flops_per_param_token: float = 2.0

    def __post_init__(self) -> None:
        for name in ("flops_per_param_token", "inference_flops_per_param_token"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"CostModel.{name} must be a positive number, got {v!r}")
        t = self.inference_tokens
        if not (isinstance(t, int | float) and math.isfinite(t) and t >= 0):
            raise ValueError(f"CostModel.inference_tokens must be >= 0, got {t!r}")
        p = self.price_per_flop
        if p is not None and not (isinstance(p, int | float) and math.isfinite(p) and p > 0):
            raise ValueError(f"CostModel.price_per_flop must be a positive number or None, got {p!r}")

    # ------------------------------------------------------------- FLOPs
    def training_flops(self, N: Any, D: Any) -> Any:
        """:math:`k N D` FLOPs."""
        return self.flops_per_param_token * np.asarray(N, float) * np.asarray(D, float)

    def inference_flops(self, N: Any) -> Any:
        """:math:`2 N T` FLOPs of serving T tokens (0 without serving)."""
        return self.inference_flops_per_param_token * np.asarray(N, float) * float(self.inference_tokens)

    def total_flops(self, N: Any, D: Any) -> Any:
        """Training plus serving FLOPs."""
        return self.training_flops(N, D) + self.inference_flops(N)

    def tokens(self, N: Any, budget: float) -> Any:
        """Training tokens a budget buys for a model of size N: :math:`(C - 2NT)/(kN)`.

        Not positive where serving alone uses up the budget.
        """
        N = np.asarray(N, float)
        return (float(budget) - self.inference_flops(N)) / (self.flops_per_param_token * N)

    def max_params(self, budget: float) -> float:
        """Largest N whose serving cost leaves training tokens: :math:`C / (2T)` (inf without serving)."""
        if self.inference_tokens <= 0:
            return math.inf
        return float(budget) / (self.inference_flops_per_param_token * self.inference_tokens)

    def params_for_ratio(self, budget: float, tokens_per_param: float) -> float:
        r"""N with D = r N that spends the budget: root of :math:`k r N^2 + 2 T N - C = 0`."""
        a = self.flops_per_param_token * tokens_per_param
        b = self.inference_flops_per_param_token * self.inference_tokens
        return (-b + math.sqrt(b * b + 4.0 * a * float(budget))) / (2.0 * a)

    # ------------------------------------------------------------- money
    def flops_for(self, money: float) -> float:
        """FLOPs a sum of money buys (needs ``price_per_flop``)."""
        if self.price_per_flop is None:
            raise ValueError("a budget in money needs CostModel(price_per_flop=...)")
        return float(money) / self.price_per_flop

    def price(self, flops: float) -> float | None:
        """Money for ``flops`` FLOPs, or None without a price."""
        return None if self.price_per_flop is None else float(flops) * self.price_per_flop

    def describe(self) -> str:
        """One line: the formula with this model's constants."""
        k = f"{self.flops_per_param_token:g}"
        text = f"C = {k}ND"
        if self.inference_tokens > 0:
            text += f" + {self.inference_flops_per_param_token:g}N x {self.inference_tokens:.3g} served tokens"
        if self.price_per_flop is not None:
            text += f"; {self.price_per_flop:.3g} per FLOP"
        return text
