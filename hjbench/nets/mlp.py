"""An unconstrained residual MLP, the plug-and-play denoiser network at these sizes."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import check_int, check_points

__all__ = ["ResidualMLP"]


class ResidualMLP(nn.Module):
    """x -> x + MLP(x): ``depth`` hidden layers of ``width`` units with SiLU activations.

    The identity skip makes the untrained map close to the identity, the natural starting
    point of a denoiser; the last layer starts at zero so the initial map is exactly x.
    """

    def __init__(self, dim: int, width: int = 256, depth: int = 2, *,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=1)
        self.width = check_int("width", width, minimum=1)
        self.depth = check_int("depth", depth, minimum=1)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        sizes = [dim] + [width] * depth
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter((2 * torch.rand(fan_out, fan_in, generator=g, dtype=dtype) - 1) * bound))
            self.biases.append(nn.Parameter((2 * torch.rand(fan_out, generator=g, dtype=dtype) - 1) * bound))
        self.out = nn.Parameter(torch.zeros(dim, width, dtype=dtype))
        self.out_bias = nn.Parameter(torch.zeros(dim, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_points("x", x, self.dim)
        h = x.to(self.out.dtype)
        for W, b in zip(self.weights, self.biases):
            h = F.silu(F.linear(h, W, b))
        return (x.to(self.out.dtype) + F.linear(h, self.out, self.out_bias)).to(x.dtype)
