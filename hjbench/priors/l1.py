"""The (scaled) l1 prior J(x) = lambda ||x||_1, convex (docs/method.md section 3, first row).

With lambda = ``scale`` and tau = t * lambda (the threshold):

* S(x, t) = sum_i h(x_i),  h(u) = u^2/(2t) if |u| <= tau else lambda |u| - t lambda^2 / 2
  (the Huber function; no extra constant: S(0) = 0);
* grad S(x) = clip(x, -tau, tau) / t;   prox_{tJ}(x) = sign(x) max(|x| - tau, 0) (soft threshold);
* psi(x) = 1/2 dist(x, [-tau, tau]^dim)^2, 1-smooth;
* tJ + q is convex, so g(y) = t lambda ||y||_1 + ||y||^2/2 and J_bvs = J;
  grad g(y) = y + tau sign(y), with the selection sign(0) = 0 (at y_i = 0 every
  x_i in [-tau, tau] is a preimage; 0 is the one returned).

At t = 1, lambda = 1: psi = 1/2 dist(x, [-1, 1]^dim)^2.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import check_positive
from ..solution import Solution
from . import register
from .oracle import closed_form
from .base import AbstractPrior, half_sq_norm

__all__ = ["L1Prior"]


@register("l1")
class L1Prior(AbstractPrior):
    """l1 prior J(x) = scale * ||x||_1 with Huber envelope and soft-threshold prox.

    Args:
        dim: dimension n >= 1 of x.
        t: HJ time t > 0.
        scale: the weight lambda > 0 of the l1 norm (the paper uses 1).
    """

    tj_plus_q_convex = True
    regime = "smooth"
    test_params: dict[str, Any] = {"scale": 1.5}  # off the default, so lambda is exercised

    def __init__(self, dim: int, t: float = 1.0, scale: float = 1.0):
        super().__init__(dim, t)
        self.scale = check_positive("scale", scale)

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale}

    @property
    def _tau(self):
        return self.t * self.scale

    def _J(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.abs().sum(-1)

    def _S(self, x: torch.Tensor) -> torch.Tensor:
        a = x.abs()
        inner = a * a / (2 * self.t)
        outer = self.scale * a - self.t * self.scale ** 2 / 2
        return torch.where(a <= self._tau, inner, outer).sum(-1)

    def _grad_S(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, -self._tau, self._tau) / self.t

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x) * torch.clamp(x.abs() - self._tau, min=0)

    def _g_solution(self, y: torch.Tensor) -> Solution:
        value = self.t * self._J(y) + half_sq_norm(y)
        return closed_form(value, y + self._tau * torch.sign(y))

    # -- bound constants -------------------------------------------------------------------
    def psi_smoothness(self, box: float) -> float:
        """psi = 1/2 dist(., [-tau, tau]^dim)^2 has a 1-Lipschitz gradient everywhere."""
        return 1.0

    def psi_lipschitz(self, box: float) -> float:
        """sup ||prox(x)|| over [-box, box]^dim = sqrt(dim) * max(box - tau, 0)."""
        box = check_positive("box", box)
        return math.sqrt(self.dim) * max(box - float(self._tau), 0.0)
