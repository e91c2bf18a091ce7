"""Small pure tensor operations shared across roles."""

from __future__ import annotations

import torch

__all__ = ["half_sq_norm"]


def half_sq_norm(x: torch.Tensor) -> torch.Tensor:
    """q(x) = ||x||^2 / 2 over the last axis (the *squared* norm: a historical bug used ||x||/2)."""
    return 0.5 * (x * x).sum(-1)
