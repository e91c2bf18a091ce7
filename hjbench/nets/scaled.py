"""An input-convex network on affinely standardised inputs and outputs.

    psi(x) = s_out f(x / s_in) + m,        s_in, s_out > 0,

with f an :class:`~hjbench.nets.ICNN`. Positive scalings and an offset keep psi convex in x, and
    grad psi(x) = (s_out / s_in) grad f(x / s_in),
    hess psi(x) v = (s_out / s_in^2) hess f(x / s_in) v.
The learned methods fit f to standardised data, (x / s_in, (v - m) / s_out, p s_in / s_out),
which keeps the trained weights of order one for any scale of the problem; s_in, s_out and m
are plain numbers of each fitted member (an ensemble member has its own), saved with the state.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import check_positive
from .icnn import ICNN

__all__ = ["ScaledICNN"]


class ScaledICNN(nn.Module):
    """psi(x) = s_out f(x / s_in) + m for an ICNN f; convex for s_in, s_out > 0.

    Args:
        net: the ICNN f (its parameters are this module's).
        s_in, s_out: positive input and output scales; m: output offset.
    """

    def __init__(self, net: ICNN, s_in: float = 1.0, s_out: float = 1.0, m: float = 0.0):
        super().__init__()
        self.net = net
        self.s_in = check_positive("s_in", float(s_in))
        self.s_out = check_positive("s_out", float(s_out))
        self.m = float(m)

    def get_extra_state(self) -> list[float]:
        return [self.s_in, self.s_out, self.m]

    def set_extra_state(self, state: list[float]) -> None:
        self.s_in, self.s_out, self.m = (float(v) for v in state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """psi(x), shape (...) for x of shape (..., dim)."""
        return self.s_out * self.net(x / self.s_in) + self.m

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(psi(x), grad psi(x)) by the ICNN's explicit backward pass."""
        v, g = self.net.value_and_grad(x / self.s_in)
        return self.s_out * v + self.m, (self.s_out / self.s_in) * g

    def hvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """hess psi(x) v, shape (..., dim); no side effects."""
        return (self.s_out / self.s_in ** 2) * self.net.hvp(x / self.s_in, v)
