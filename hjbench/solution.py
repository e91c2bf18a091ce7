"""Results of inner numerical solves, as values (docs/method.md, convention C10).

Every iterative solve in hjbench (conjugate maximisation for ground truth, post-hoc inversion
of a learned potential, unrolled iterations) returns a :class:`Solution` instead of raising or
silently returning its last iterate. Callers decide: raise, or record ``n_failed`` in a
results row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Solution"]


@dataclass(frozen=True)
class Solution:
    """Outcome of a batched solve over query points of batch shape ``B``.

    Attributes:
        value: the quantity solved for, shape ``B`` (scalar per point) or ``B + (dim,)``.
        argument: the optimiser's point (e.g. the preimage x* with grad psi(x*) = y),
            shape ``B + (dim,)``, or ``None`` when the solve has no such point.
        converged: bool tensor of shape ``B``; False where the tolerance was not met.
        iterations: int tensor of shape ``B``, iterations each point used.
        residual: tensor of shape ``B``, the solver's optimality residual per point
            (e.g. ``||grad psi(x*) - y||`` or a duality gap), NaN where none is defined.
    """

    value: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor
    argument: torch.Tensor | None = None

    @property
    def n_failed(self) -> int:
        """Number of query points whose solve did not converge."""
        return int((~self.converged).sum())

    @property
    def ok(self) -> bool:
        return self.n_failed == 0

    @classmethod
    def exact(cls, value: torch.Tensor, batch_shape: torch.Size | tuple[int, ...] | None = None,
              residual: torch.Tensor | None = None) -> "Solution":
        """Wrap a closed-form or single-pass value: converged everywhere, zero iterations."""
        shape = value.shape if batch_shape is None else torch.Size(batch_shape)
        return cls(
            value=value,
            converged=torch.ones(shape, dtype=torch.bool, device=value.device),
            iterations=torch.zeros(shape, dtype=torch.long, device=value.device),
            residual=(torch.full(shape, float("nan"), dtype=value.dtype, device=value.device)
                      if residual is None else residual),
        )
