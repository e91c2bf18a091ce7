"""Input-convex potential network, the "learned proximal network" form (BRIEF section 4).

    z_1     = s(W_0 x + b_0)
    z_{l+1} = s(W_l z_l + A_l x + b_l),        l = 1, ..., L
    f(x)    = w^T z_{L+1} + a^T x + b

with s the softplus of sharpness ``beta`` (convex, non-decreasing), W_l (l >= 1) and w
non-negative, and W_0, A_l, b_l, a, b free. Each z_{l+1} is then a convex, non-decreasing
function of convex functions of x, so f is convex in x.

Convexity holds by construction: the forward pass uses ``W.clamp(min=0)`` of the stored
weights, so no set of stored weights can give a non-convex f. The library's training loop
additionally calls :meth:`ICNN.project_` after each optimiser step, which makes the stored
weights equal to the used ones (projected gradient, as in the authors' code) and keeps
gradients alive at the boundary.

The gradient is computed by an explicit backward pass written with ordinary tensor
operations: it is differentiable with respect to the parameters (for losses on gradients),
needs no ``requires_grad`` on the input and leaves no ``.grad`` anywhere.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import check_int, check_points, check_positive

__all__ = ["ICNN"]


def _uniform(shape, bound, generator, dtype):
    return (2 * torch.rand(shape, generator=generator, dtype=dtype) - 1) * bound


class ICNN(nn.Module):
    """Convex potential f: R^dim -> R.

    Args:
        dim: input dimension.
        width: hidden width (paper: 256).
        depth: number L of hidden layers after the first (paper: 2).
        beta: softplus sharpness (paper: 5).
        generator: seeds the initialisation (a fresh default generator if None).
        dtype: parameter dtype.
    """

    def __init__(self, dim: int, width: int = 256, depth: int = 2, beta: float = 5.0, *,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=1)
        self.width = check_int("width", width, minimum=1)
        self.depth = check_int("depth", depth, minimum=0)
        self.beta = check_positive("beta", beta)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        bx, bz = 1 / math.sqrt(dim), 1 / math.sqrt(width)
        self.W0 = nn.Parameter(_uniform((width, dim), bx, g, dtype))
        self.b0 = nn.Parameter(_uniform((width,), bx, g, dtype))
        # non-negative weights with mean 1/width keep activations O(1) through depth
        self.W = nn.ParameterList([nn.Parameter(torch.rand((width, width), generator=g, dtype=dtype) * 2 / width)
                                   for _ in range(depth)])
        self.A = nn.ParameterList([nn.Parameter(_uniform((width, dim), bx, g, dtype))
                                   for _ in range(depth)])
        self.b = nn.ParameterList([nn.Parameter(_uniform((width,), bz, g, dtype)) for _ in range(depth)])
        self.w = nn.Parameter(torch.rand((width,), generator=g, dtype=dtype) * 2 / width)
        self.a = nn.Parameter(torch.zeros(dim, dtype=dtype))
        self.c = nn.Parameter(torch.zeros((), dtype=dtype))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, width={self.width}, depth={self.depth}, beta={self.beta}"

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp the stored non-negative weights in place (called by the training loop)."""
        for W in self.W:
            W.clamp_(min=0)
        self.w.clamp_(min=0)

    def _layers(self, x: torch.Tensor):
        """Pre-activations u_l and activations z_l of every layer, for a flat batch x (B, dim)."""
        us, zs = [], []
        u = F.linear(x, self.W0, self.b0)
        z = F.softplus(u, beta=self.beta)
        us.append(u)
        zs.append(z)
        for W, A, b in zip(self.W, self.A, self.b):
            u = F.linear(z, W.clamp(min=0), b) + F.linear(x, A)
            z = F.softplus(u, beta=self.beta)
            us.append(u)
            zs.append(z)
        return us, zs

    def _flat(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
        check_points("x", x, self.dim)
        return x.reshape(-1, self.dim).to(self.w.dtype), x.shape[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), shape (...) for x of shape (..., dim)."""
        xf, batch = self._flat(x)
        _, zs = self._layers(xf)
        out = zs[-1] @ self.w.clamp(min=0) + xf @ self.a + self.c
        return out.reshape(batch).to(x.dtype)

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x), grad f(x)) by an explicit backward pass; differentiable in the parameters."""
        xf, batch = self._flat(x)
        us, zs = self._layers(xf)
        w = self.w.clamp(min=0)
        value = zs[-1] @ w + xf @ self.a + self.c
        dz = w.expand_as(zs[-1])
        gx = self.a.expand_as(xf)
        for layer in range(len(us) - 1, 0, -1):
            du = dz * torch.sigmoid(self.beta * us[layer])
            gx = gx + du @ self.A[layer - 1]
            dz = du @ self.W[layer - 1].clamp(min=0)
        du = dz * torch.sigmoid(self.beta * us[0])
        gx = gx + du @ self.W0
        return value.reshape(batch).to(x.dtype), gx.reshape(*batch, self.dim).to(x.dtype)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """grad f(x), shape (..., dim): the learned prox when f is a potential psi."""
        return self.value_and_grad(x)[1]

    def hvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product  (d^2 f / dx^2)(x) v, shape (..., dim); no side effects.

        Computed as a forward-mode derivative of the explicit gradient, so neither ``x`` nor
        the parameters get ``requires_grad`` or ``.grad`` changes.
        """
        check_points("v", v, self.dim)
        _, out = torch.func.jvp(self.grad, (x.detach(),), (v.detach().to(x.dtype),))
        return out
