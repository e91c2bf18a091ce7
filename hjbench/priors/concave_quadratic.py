"""The concave quadratic prior J(x) = -(c/2) ||x||^2 (docs/method.md section 3, third row).

With c = ``c`` > 0 (the paper: c = 1/2, J = -||x||^2/4) and t c < 1 (for c = 1/2: t < 2), the
prox problem inf_y -(c/2)||y||^2 + ||x - y||^2/(2t) is strongly convex, minimised at
y = x / (1 - c t), so

* S(x, t) = -||x||^2 / (2 (1/c - t)) = -c ||x||^2 / (2 (1 - c t));
* grad S(x) = -c x / (1 - c t);  prox_{tJ}(x) = x / (1 - c t);
* psi(x) = ||x||^2 / (2 (1 - c t)), smooth with L = 1/(1 - c t);
* tJ + q = (1 - c t) ||y||^2 / 2 is convex, so g = tJ + q, grad g(y) = (1 - c t) y, J_bvs = J.

For t c >= 1 the prox problem is unbounded below and S = -inf: refused at construction.
At t = 1, c = 1/2: psi = ||x||^2.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError, check_positive
from ..solution import Solution
from . import register
from .base import AbstractPrior
from .oracle import closed_form

__all__ = ["ConcaveQuadraticPrior"]


@register("concave_quadratic")
class ConcaveQuadraticPrior(AbstractPrior):
    """Concave quadratic prior J(x) = -(c/2)||x||^2, defined for t < 1/c.

    Args:
        dim: dimension n >= 1 of x.
        t: HJ time, 0 < t < 1/c (t < 2 for the default c = 0.5).
        c: the curvature c > 0 of -J (the paper: 0.5, i.e. J = -||x||^2/4).
    """

    tj_plus_q_convex = True
    regime = "smooth"
    test_params: dict[str, Any] = {"c": 0.4}  # off the default, so c is exercised

    def __init__(self, dim: int, t: float = 1.0, c: float = 0.5):
        super().__init__(dim, t)
        self.c = check_positive("c", c)
        if self.t * self.c >= 1:
            raise ConfigError(
                f"t={self.t!r} must satisfy t * c < 1 for concave_quadratic (c={self.c!r}), else S = -inf; "
                f"allowed: 0 < t < {1 / self.c!r}")

    def params(self) -> dict[str, Any]:
        return {"c": self.c}

    @property
    def _shrink(self):
        """1 - c t, in (0, 1]."""
        return 1 - self.c * self.t

    def _J(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.c * (x * x).sum(-1)

    def _S(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.c * (x * x).sum(-1) / self._shrink

    def _grad_S(self, x: torch.Tensor) -> torch.Tensor:
        return x * (-self.c / self._shrink)

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        return x / self._shrink

    def _g_solution(self, y: torch.Tensor) -> Solution:
        value = 0.5 * self._shrink * (y * y).sum(-1)
        return closed_form(value, y * self._shrink)

    # -- bound constants -------------------------------------------------------------------
    def psi_smoothness(self, box: float) -> float:
        """grad psi = x / (1 - c t) is (1/(1 - c t))-Lipschitz."""
        return 1.0 / (1.0 - self.c * self.t)

    def psi_lipschitz(self, box: float) -> float:
        """sup ||prox(x)|| over [-box, box]^dim = sqrt(dim) * box / (1 - c t)."""
        box = check_positive("box", box)
        return math.sqrt(self.dim) * box / (1.0 - self.c * self.t)
