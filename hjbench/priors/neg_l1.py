"""The negative l1 prior J(x) = -||x||_1, nonconvex (docs/method.md section 3, second row).

Per coordinate, inf_y -|y| + (u - y)^2/(2t) is attained at y = u + t sign(u) with value
-|u| - t/2, so, summed over the dim coordinates,

* S(x, t) = -||x||_1 - dim * t / 2        (the constant is dim * t/2, not t/2);
* grad S(x) = -sign(x);  prox_{tJ}(x) = x + t sign(x);
* psi(x) = q(x) + t ||x||_1 + dim * t^2 / 2, kinked at every x_i = 0 (not C^{1,1}), and
  psi = max_s psi_s over sign patterns s in {-1, 1}^dim, psi_s(x) = q(x) + t <s, x> + dim t^2/2:
  each piece is 1-smooth and active on the orthant {s_i x_i >= 0} (regime "piecewise_smooth");
* g = (tJ + q)^** per coordinate: g(v) = max(|v| - t, 0)^2 / 2 - t^2 / 2, summed;
  grad g(v) = sign(v) max(|v| - t, 0) (the preimage; 0 on the gap |v| <= t);
* J_bvs(y) = sum_i j(y_i), j(u) = -|u| if |u| > t else -(t^2 + u^2)/(2t), strictly below J
  on the gap |u| < t.

Selection at the kink: at x_i = 0 the prox is the set {-t, +t} and S is not differentiable.
We use sign(0) = 0, so grad S(x)_i = 0 and prox(x)_i = 0 there. That value is not a minimiser
of the prox problem but it is the subgradient of psi at 0 of least norm (partial psi(0)_i =
[-t, t]), i.e. a valid selection of the convexified prox; the set {x_i = 0} has measure zero.
At t = 1: psi = q + ||x||_1 + dim/2.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import check_positive
from ..solution import Solution
from . import register
from .base import AbstractPrior
from .oracle import closed_form

__all__ = ["NegL1Prior"]


@register("neg_l1")
class NegL1Prior(AbstractPrior):
    """Negative l1 prior J(x) = -||x||_1: affine S, prox pushing away from 0, J_bvs < J near 0.

    Args:
        dim: dimension n >= 1 of x.
        t: HJ time t > 0.
    """

    tj_plus_q_convex = False
    regime = "piecewise_smooth"
    test_params: dict[str, Any] = {}

    def __init__(self, dim: int, t: float = 1.0):
        super().__init__(dim, t)

    def params(self) -> dict[str, Any]:
        return {}

    def _J(self, x: torch.Tensor) -> torch.Tensor:
        return -x.abs().sum(-1)

    def _S(self, x: torch.Tensor) -> torch.Tensor:
        return -x.abs().sum(-1) - self.dim * self.t / 2

    def _grad_S(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.sign(x)

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.t * torch.sign(x)

    def _g_solution(self, y: torch.Tensor) -> Solution:
        excess = torch.clamp(y.abs() - self.t, min=0)
        value = (0.5 * excess * excess).sum(-1) - self.dim * self.t ** 2 / 2
        return closed_form(value, torch.sign(y) * excess)

    # -- bound constants -------------------------------------------------------------------
    def psi_smoothness(self, box: float) -> float:
        """psi is kinked on every coordinate hyperplane: not C^{1,1}."""
        return math.inf

    def psi_lipschitz(self, box: float) -> float:
        """sup ||prox(x)|| over [-box, box]^dim = sqrt(dim) * (box + t)."""
        box = check_positive("box", box)
        return math.sqrt(self.dim) * (box + self.t)

    def psi_piece_smoothness(self, box: float) -> float:
        """Every piece q + t <s, x> + dim t^2/2 has Hessian I: L = 1 (for every t and box)."""
        check_positive("box", box)
        return 1.0

    def psi_piece_geometry(self, box: float) -> tuple[float, float]:
        """Piece regions are the 2^dim orthant cubes of side box: f = 2^-dim, Delta = box sqrt(dim)."""
        box = check_positive("box", box)
        return -self.dim * math.log(2.0), box * math.sqrt(self.dim)

    def psi_piece_key(self, x: torch.Tensor) -> torch.Tensor:
        """The sign pattern sign(x) (the active piece s); NaN where some x_i = 0 (a tie)."""
        key = torch.sign(self._check(x).detach().to(torch.float64))
        return torch.where((key == 0).any(-1, keepdim=True), torch.full_like(key, math.nan), key)
