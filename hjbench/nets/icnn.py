"""Input-convex potential network, the "learned proximal network" form (docs/method.md section 4).

    z_1     = s(W_0 x + b_0)                   (b_0 optional: ``first_bias``)
    z_{l+1} = s(W_l z_l + A_l x + b_l),        l = 1, ..., L
    f(x)    = w^T z_{L+1} + a^T x + c

with s the softplus of sharpness ``beta`` (convex, non-decreasing), W_l (l >= 1) and w
non-negative, and W_0, A_l, b_l, a, c free. Each z_{l+1} is then a convex, non-decreasing
function of convex functions of x, so f is convex in x.

Convexity by construction.  The class declares its sign-constrained parameters in
:attr:`ICNN.nonnegative`; the library's training loop (:mod:`hjbench.training.loop`) projects
them onto W >= 0 after every optimiser step (projected gradient, as in the authors' code), and
the constructor projects the initial weights. The forward pass additionally reads the weights
through ``clamp(min=0)``, so that no set of stored weights (a hand-edited state, a foreign
optimiser) can give a non-convex f. That clamp is cheap: one elementwise pass over the
width x width weights per call (not per sample; :meth:`value_and_grad` computes it once and
reuses it in its backward pass), against a B x width x width product per layer; it is the
identity on projected weights, and its derivative (1 on W >= 0, boundary included) lets the
projected-gradient iteration move weights off zero exactly as an unclamped forward would.

Initialisation (``init``):

* ``"scaled"`` (hjbench's default): W_0, b_0, A_l uniform(+-1/sqrt(dim)), b_l uniform(+-1/sqrt(width)),
  W_l and w uniform(0, 2/width) (mean 1/width keeps activations O(1) through depth), a = c = 0;
* ``"torch"`` (the authors'): every weight and bias as PyTorch's ``nn.Linear`` default for the
  layer it belongs to, uniform(+-1/sqrt(fan_in)) (kaiming-uniform with a = sqrt 5): fan_in = dim
  for W_0, A_l, b_l (b_l is the bias of the A_l layer), a and c; fan_in = width for W_l and w;
  then W_l, w projected onto >= 0 (the authors' clamp, applied before the first step).

The gradient is computed by an explicit backward pass written with ordinary tensor
operations: it is differentiable with respect to the parameters (for losses on gradients),
needs no ``requires_grad`` on the input and leaves no ``.grad`` anywhere.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import check_choice, check_int, check_points, check_positive

__all__ = ["ICNN", "INITS", "project_nonnegative_"]

INITS: tuple[str, ...] = ("scaled", "torch")


def project_nonnegative_(module: nn.Module) -> None:
    """Clamp in place, to >= 0, the parameters a module class declares in ``nonnegative``.

    ``nonnegative`` lists parameter names or name prefixes ("W" covers "W.0", "W.1", ...).
    """
    names = getattr(type(module), "nonnegative", ())
    with torch.no_grad():
        for name, p in module.named_parameters():
            if any(name == n or name.startswith(n + ".") for n in names):
                p.clamp_(min=0)


class ICNN(nn.Module):
    """Convex potential f: R^dim -> R.

    Args:
        dim: input dimension.
        width: hidden width (paper: 256).
        depth: number L of hidden layers after the first (paper: 2).
        beta: softplus sharpness (paper: 5).
        init: "scaled" or "torch" (module docstring).
        first_bias: whether the first layer has a bias b_0 (the paper's network has none).
        generator: seeds the initialisation (a fresh default generator if None).
        dtype: parameter dtype.
    """

    #: parameters kept >= 0 (names or prefixes); the training loop projects them after each step
    nonnegative: ClassVar[tuple[str, ...]] = ("W", "w")

    def __init__(self, dim: int, width: int = 256, depth: int = 2, beta: float = 5.0, *,
                 init: Literal["scaled", "torch"] = "scaled", first_bias: bool = True,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=1)
        self.width = check_int("width", width, minimum=1)
        self.depth = check_int("depth", depth, minimum=0)
        self.beta = check_positive("beta", beta)
        self.init = check_choice("init", init, INITS)
        self.first_bias = bool(first_bias)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        bx, bz = 1 / math.sqrt(dim), 1 / math.sqrt(width)
        torch_init = init == "torch"

        def sym(shape, bound):  # uniform(-bound, bound)
            return nn.Parameter((2 * torch.rand(shape, generator=g, dtype=dtype) - 1) * bound)

        def pos(shape):  # sign-constrained weights ("torch": projected below)
            if torch_init:
                return sym(shape, bz)
            return nn.Parameter(torch.rand(shape, generator=g, dtype=dtype) * 2 / width)

        self.W0 = sym((width, dim), bx)
        self.register_parameter("b0", sym((width,), bx) if first_bias else None)
        self.W = nn.ParameterList([pos((width, width)) for _ in range(depth)])
        self.A = nn.ParameterList([sym((width, dim), bx) for _ in range(depth)])
        self.b = nn.ParameterList([sym((width,), bx if torch_init else bz) for _ in range(depth)])
        self.w = pos((width,))
        if torch_init:
            self.a, self.c = sym((dim,), bx), sym((), bx)
        else:
            self.a = nn.Parameter(torch.zeros(dim, dtype=dtype))
            self.c = nn.Parameter(torch.zeros((), dtype=dtype))
        project_nonnegative_(self)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, width={self.width}, depth={self.depth}, beta={self.beta}, "
                f"init={self.init!r}, first_bias={self.first_bias}")

    def project_(self) -> None:
        """Clamp the stored non-negative weights in place (what the training loop does)."""
        project_nonnegative_(self)

    def _layers(self, x: torch.Tensor, Ws: list[torch.Tensor]):
        """Pre-activations u_l and activations z_l of every layer, for a flat batch x (B, dim)."""
        u = F.linear(x, self.W0, self.b0)
        us, zs = [u], [F.softplus(u, beta=self.beta)]
        for W, A, b in zip(Ws, self.A, self.b):
            u = F.linear(zs[-1], W, b) + F.linear(x, A)
            us.append(u)
            zs.append(F.softplus(u, beta=self.beta))
        return us, zs

    def _flat(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
        check_points("x", x, self.dim)
        return x.reshape(-1, self.dim).to(self.w.dtype), x.shape[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), shape (...) for x of shape (..., dim)."""
        xf, batch = self._flat(x)
        _, zs = self._layers(xf, [W.clamp(min=0) for W in self.W])
        out = zs[-1] @ self.w.clamp(min=0) + xf @ self.a + self.c
        return out.reshape(batch).to(x.dtype)

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x), grad f(x)) by an explicit backward pass; differentiable in the parameters."""
        xf, batch = self._flat(x)
        Ws = [W.clamp(min=0) for W in self.W]
        us, zs = self._layers(xf, Ws)
        w = self.w.clamp(min=0)
        value = zs[-1] @ w + xf @ self.a + self.c
        dz = w.expand_as(zs[-1])
        gx = self.a.expand_as(xf)
        for layer in range(len(us) - 1, 0, -1):
            du = dz * torch.sigmoid(self.beta * us[layer])
            gx = gx + du @ self.A[layer - 1]
            dz = du @ Ws[layer - 1]
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
