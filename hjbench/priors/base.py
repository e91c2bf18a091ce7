"""The prior-family contract: ground truth for the HJ problem (docs/method.md sections 2-3).

Notation: x, y in R^dim, t > 0, q(x) = ||x||^2 / 2.

* S(x, t) = inf_y { J(y) + ||x - y||^2 / (2t) }           (Moreau envelope / Hopf-Lax)
* prox_{tJ}(x) = x - t grad_x S(x, t)
* psi(x) = q(x) - t S(x, t) = (tJ + q)^*(x)                (convex for every J)
* g(y) = psi^*(y) = (tJ + q)^**(y),  grad g = (grad psi)^{-1}
* J_bvs(y) = (g(y) - q(y)) / t  <=  J(y)                   (proximal hull; = J iff tJ+q convex)

A concrete family implements J, S, grad_S and prox in closed form and declares the constants
the max-plus bound needs. psi, g and J_bvs are derived here; g and J_bvs default to a float64
numerical conjugate (see :mod:`hjbench.priors.oracle`) that a family overrides with a closed
form where one exists.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from ..errors import check_int, check_points, check_positive
from ..quadratic import half_sq_norm
from ..solution import Solution

__all__ = ["AbstractPrior", "half_sq_norm"]


class AbstractPrior:
    """A prior family J on R^dim at time t, with its HJ ground truth.

    Subclasses set the class attributes, call ``super().__init__(dim, t)`` and implement
    ``_J``, ``_S``, ``_grad_S``, ``_prox``, ``params``, ``psi_smoothness`` and
    ``psi_lipschitz``. Inputs are checked once in the public methods (shape (..., dim),
    floating dtype); outputs keep the input's device and dtype. Closed forms use ``self.t``
    only through torch arithmetic, so that ``t`` may be a 0-dim tensor (the HJ PDE test
    differentiates S with respect to t by autograd).

    Class attributes:
        name: registry key (set on the instance by the registry).
        tj_plus_q_convex: True when tJ + q is convex for every admissible t, so J_bvs = J.
        regime: which max-plus bound applies (docs/method.md section 7; docs/bounds.md): "smooth" if
            psi has a Lipschitz gradient on bounded boxes; "piecewise_smooth" if psi is a
            maximum of finitely many smooth pieces with convex regions (then the family also
            implements ``psi_piece_smoothness``, ``psi_piece_geometry`` and ``psi_piece_key``);
            else "lipschitz". A family whose regime depends on its parameters sets it on the
            instance in ``__init__``.
        test_params: tiny parameters for smoke runs and the conformance battery.
    """

    name: str = "abstract"
    tj_plus_q_convex: ClassVar[bool] = False
    regime: str = "lipschitz"
    test_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, dim: int, t: float = 1.0):
        self.dim = check_int("dim", dim, minimum=1)
        self.t = check_positive("t", t)

    # -- description --------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Family parameters (JSON-serialisable), excluding ``dim`` and ``t``."""
        return {}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}(dim={self.dim}, t={self.t}{extra})"

    # -- bound constants (docs/method.md section 7) ---------------------------------------
    def psi_smoothness(self, box: float) -> float:
        """Lipschitz constant L of grad psi on [-box, box]^dim; ``math.inf`` if psi is not C^{1,1}."""
        return math.inf

    def psi_lipschitz(self, box: float) -> float:
        """An upper bound G on sup ||grad psi|| = sup ||prox(x)|| over [-box, box]^dim."""
        raise NotImplementedError

    def psi_piece_smoothness(self, box: float) -> float:
        """L = max_i L_i when psi = max_i psi_i on [-box, box]^dim with every piece psi_i
        L_i-smooth there (regime "piecewise_smooth"); ``math.inf`` for other regimes."""
        return math.inf

    def psi_piece_geometry(self, box: float) -> tuple[float, float]:
        """(log f, Delta) for the piecewise_smooth regime: every piece region
        C_i = {x in [-box, box]^dim : psi_i(x) = psi(x)} is convex, with volume at least
        f (2 box)^dim and diameter at most Delta (docs/bounds.md, section 5)."""
        raise NotImplementedError(f"{type(self).__name__} is not in the piecewise_smooth regime")

    def psi_piece_key(self, x: torch.Tensor) -> torch.Tensor:
        """Key of the active piece at x, float64 of shape (..., k): two points have equal
        rows iff the same single piece is active at both; a NaN row where no single piece is
        active (a tie, where the prox selection need not be a piece's gradient)."""
        raise NotImplementedError(f"{type(self).__name__} is not in the piecewise_smooth regime")

    # -- closed forms to implement -----------------------------------------------------------
    def _J(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _S(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _grad_S(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.t * self._grad_S(x)

    def _g_solution(self, y: torch.Tensor) -> Solution:
        """g(y) = sup_x <x, y> - psi(x); default: the float64 numerical conjugate."""
        from .oracle import conjugate

        return conjugate(self.psi, self.prox, y, self.dim)

    # -- public API ---------------------------------------------------------------------------
    def _check(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        return check_points(name, x, self.dim)

    def J(self, x: torch.Tensor) -> torch.Tensor:
        """Prior value J(x); shape (...)."""
        return self._J(self._check(x))

    def S(self, x: torch.Tensor) -> torch.Tensor:
        """HJ solution S(x, t) = inf_y J(y) + ||x - y||^2/(2t); shape (...)."""
        return self._S(self._check(x))

    def grad_S(self, x: torch.Tensor) -> torch.Tensor:
        """grad_x S(x, t) (a selection where S is not differentiable); shape (..., dim)."""
        return self._grad_S(self._check(x))

    def prox(self, x: torch.Tensor) -> torch.Tensor:
        """prox_{tJ}(x) = x - t grad_x S(x, t) = grad psi(x); shape (..., dim)."""
        return self._prox(self._check(x))

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        """psi(x) = q(x) - t S(x, t) = (tJ + q)^*(x), convex; shape (...)."""
        x = self._check(x)
        return half_sq_norm(x) - self.t * self._S(x)

    def g_solution(self, y: torch.Tensor) -> Solution:
        """g(y) = psi^*(y) with solve status (closed forms report converged, 0 iterations)."""
        return self._g_solution(self._check(y, "y"))

    def g(self, y: torch.Tensor) -> torch.Tensor:
        """g(y) = psi^*(y) = (tJ + q)^**(y); shape (...)."""
        return self.g_solution(y).value

    def J_bvs(self, y: torch.Tensor) -> torch.Tensor:
        """Backward viscosity solution J_bvs(y) = (g(y) - q(y)) / t <= J(y); shape (...)."""
        y = self._check(y, "y")
        return (self._g_solution(y).value - half_sq_norm(y)) / self.t

    def grad_g(self, y: torch.Tensor) -> torch.Tensor:
        """grad g(y) = (grad psi)^{-1}(y), the preimage of y under the prox; shape (..., dim)."""
        sol = self.g_solution(y)
        if sol.argument is None:
            raise NotImplementedError(f"{type(self).__name__} gives no preimage map")
        return sol.argument
