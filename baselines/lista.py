"""Unrolled shrinkage network (LISTA family), a prox learned from (x, prox x) pairs (docs/method.md section 5).

The unrolled iteration.  ISTA for the prox problem of J = lambda ||.||_1,

    prox_{tJ}(x) = argmin_y  lambda ||y||_1 + ||y - x||^2 / (2t),

with step s = r t (0 < r <= 1) reads, from y_0 = 0,

    y_{k+1} = soft((1 - r) y_k + r x,  s lambda),     soft(u, theta) = sign(u) max(|u| - theta, 0),

and converges to soft(x, t lambda) with error contracting by (1 - r) per step. LISTA unrolls K
such steps and learns every weight: with a latent code z in R^m, m = dim + width,

    z_0 = 0,    z_{k+1} = eta_k(W_k z_k + B_k x + c_k),    k = 0, ..., K - 1,
    prox_theta(x) = D z_K + d,

W_k (m, m), B_k (m, dim), c_k (m,), D (dim, m), d (dim,) all learned. The code z holds the
dim signal coordinates and ``width`` extra atoms of an overcomplete dictionary (rows of B_k and
columns of D); the extra atoms let the map depend on directions other than the axes.

The learned shrinkage.  eta_k acts coordinate by coordinate as a sum of signed soft thresholds

    eta_k(u)_i = sum_{j=0}^{depth} a_{k,j,i} soft(u_i, theta_{k,j,i}),

with amplitudes a and thresholds theta learned and of either sign: theta >= 0 shrinks,
theta < 0 expands (soft(u, -tau) = u + tau sign(u), a jump of 2 tau at 0). Each eta_k is an odd
piecewise-linear function of u with kinks at +-theta_{k,j} (a jump at 0 if some theta < 0); the
``depth`` extra knots give it up to depth + 1 kink pairs.

What it can represent.  Every map of the network is piecewise affine in x (continuous where all
thresholds are >= 0, with jumps across hyperplanes where some are negative). Already with K = 1 it
represents exactly the proxes of the separable families: l1 and scaled l1 (soft threshold), neg_l1
(x + t sign(x): threshold -t), the concave quadratic (2x / (2 - t): threshold 0, B = 2/(2 - t) I),
a box indicator (clip(u) = u - soft(u, 1), needs depth >= 1), the elastic net (scaled soft
threshold), and the two-component min-plus mixture with equal sigma_i, the paper's
(affine plus a step across one hyperplane, from two extra atoms); later layers can pass the code
through unchanged (W = I, B = 0, theta = 0). Nonseparable proxes with curved switching surfaces it only
approximates. It gives a prox and nothing else: no potential and no prior (their metrics are
"not applicable", never zero).

Analytic initialisation.  Training starts from the ISTA weights above for lambda = ``l1_weight``:
W_k = (1 - r) I, B_k = r [I; R] (R random unit rows for the extra atoms), c_k = 0,
theta_{k,0} = s lambda, a_{k,0} = 1, extra knots with zero amplitude at thresholds j t, D = [I 0],
d = 0. The extra atoms and knots then contribute exactly zero, so the network reproduces the
unlearned iteration to the last bit (tested). The default lambda = 0 starts at the map
(1 - (1 - r)^K) x, close to the identity, so that no family's answer is built into the start.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hjbench import methods
from hjbench.errors import check_int, check_points, check_positive
from hjbench.methods.base import AbstractMethod
from hjbench.training import Budget, train_ensemble

__all__ = ["soft_threshold", "UnrolledShrinkage", "LISTA"]


def soft_threshold(u: torch.Tensor, theta: torch.Tensor | float) -> torch.Tensor:
    """Signed soft threshold sign(u) max(|u| - theta, 0); theta < 0 expands by |theta|."""
    return torch.sign(u) * torch.relu(u.abs() - theta)


class UnrolledShrinkage(nn.Module):
    """K unrolled learned shrinkage layers, initialised at K steps of ISTA (module docstring).

    Args:
        dim: signal dimension n.
        n_layers: K, the number of unrolled iterations.
        n_atoms: extra dictionary atoms beyond the n signal coordinates (m = n + n_atoms).
        n_knots: extra soft-threshold knots per coordinate of eta_k.
        t: the prox time t of the analytic iteration.
        step: r = s / t in (0, 1], the ISTA step as a fraction of t.
        l1_weight: lambda >= 0 of the analytic l1 prior.
        generator: draws the random directions R of the extra atoms.
        dtype: parameter dtype.
    """

    def __init__(self, dim: int, n_layers: int, n_atoms: int, n_knots: int, *, t: float,
                 step: float, l1_weight: float, generator: torch.Generator,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=1)
        K = check_int("n_layers", n_layers, minimum=1)
        n_atoms = check_int("n_atoms", n_atoms, minimum=0)
        J = check_int("n_knots", n_knots, minimum=0) + 1
        t = check_positive("t", t)
        r = check_positive("step", step, upper=1.0, upper_strict=False)
        lam = check_positive("l1_weight", l1_weight, strict=False)
        m = dim + n_atoms
        R = torch.randn(K, n_atoms, dim, generator=generator, dtype=torch.float64)
        R = R / torch.linalg.vector_norm(R, dim=-1, keepdim=True).clamp_min(1e-12)
        eye_m = torch.eye(m, dtype=dtype)
        B = torch.zeros(K, m, dim, dtype=dtype)
        B[:, :dim] = r * torch.eye(dim, dtype=dtype)
        B[:, dim:] = r * R.to(dtype)
        theta = torch.zeros(K, J, m, dtype=dtype)
        theta[:, 0] = r * t * lam
        for j in range(1, J):
            theta[:, j] = j * t
        amp = torch.zeros(K, J, m, dtype=dtype)
        amp[:, 0] = 1.0
        D = torch.zeros(dim, m, dtype=dtype)
        D[:, :dim] = torch.eye(dim, dtype=dtype)
        self.W = nn.Parameter(((1.0 - r) * eye_m).expand(K, m, m).clone())
        self.B = nn.Parameter(B)
        self.c = nn.Parameter(torch.zeros(K, m, dtype=dtype))
        self.theta = nn.Parameter(theta)
        self.amp = nn.Parameter(amp)
        self.D = nn.Parameter(D)
        self.d = nn.Parameter(torch.zeros(dim, dtype=dtype))

    @property
    def n_layers(self) -> int:
        return int(self.W.shape[0])

    def shrink(self, u: torch.Tensor, k: int) -> torch.Tensor:
        """eta_k(u) = sum_j a_{k,j} soft(u, theta_{k,j}) coordinate-wise; u of shape (B, m)."""
        return (self.amp[k] * soft_threshold(u.unsqueeze(-2), self.theta[k])).sum(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """prox_theta(x), shape (..., dim) for x of shape (..., dim)."""
        check_points("x", x, self.dim)
        xf = x.reshape(-1, self.dim).to(self.W.dtype)
        z = xf.new_zeros(xf.shape[0], self.W.shape[-1])
        for k in range(self.n_layers):
            u = z @ self.W[k].T + xf @ self.B[k].T + self.c[k]
            z = self.shrink(u, k)
        out = z @ self.D.T + self.d
        return out.reshape(x.shape).to(x.dtype)


class LISTA(AbstractMethod):
    """Unrolled learned shrinkage (LISTA family) trained on prox pairs by mean squared error.

    Loss: mean over samples and coordinates of (prox_theta(x_k) - prox_{tJ}(x_k))^2.

    Args:
        n_layers: K >= 1 unrolled layers.
        step: r = s / t in (0, 1], the ISTA step of the analytic initialisation.
        l1_weight: lambda >= 0 of the analytic initialisation (0: start near the identity).
        budget: the common training budget (:class:`hjbench.training.Budget` or a dict); its
            ``width`` is the number of extra dictionary atoms (latent size m = dim + width) and
            its ``depth`` the number of extra soft-threshold knots per coordinate of each eta_k.
    """

    provides = frozenset({"prox"})
    test_params = {"n_layers": 3, "budget": {"steps": 100, "width": 4, "depth": 1, "lr": 1e-2}}

    def __init__(self, *, n_layers: int = 5, step: float = 0.5, l1_weight: float = 0.0,
                 budget: Budget | dict | None = None):
        self.budget = Budget.coerce(budget)
        check_int("n_layers", n_layers, minimum=1)
        check_positive("step", step, upper=1.0, upper_strict=False)
        check_positive("l1_weight", l1_weight, strict=False)
        self.n_layers, self.step, self.l1_weight = n_layers, step, l1_weight

    @property
    def data_regime(self) -> str:
        return "prox_pairs"

    def _network(self, dim: int, t: float, generator: torch.Generator,
                 dtype: torch.dtype) -> UnrolledShrinkage:
        return UnrolledShrinkage(dim, self.n_layers, self.budget.width, self.budget.depth, t=t,
                                 step=self.step, l1_weight=self.l1_weight, generator=generator,
                                 dtype=dtype)

    @staticmethod
    def _objective(net, batch, step) -> torch.Tensor:
        x, y = batch
        return torch.mean((net(x) - y) ** 2)

    def _fit_ensemble(self, members, datasets, generators) -> None:
        """Train every member's unrolled network as one ensemble."""
        nets = [self._network(d.dim, d.t, g, d.x.dtype).to(d.x.device)
                for d, g in zip(datasets, generators)]
        logs = train_ensemble(nets, self._objective, [(d.x, d.prox) for d in datasets],
                              budget=self.budget, generators=generators)
        for member, net, log in zip(members, nets, logs):
            member.net_ = net.requires_grad_(False)
            member.training_, member.backend_ = {"fit": log}, "torch"

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        return self.net_(x)

    def _state(self) -> dict[str, Any]:
        return {"net": {k: v.detach().clone() for k, v in self.net_.state_dict().items()}}

    def _load_state(self, state: dict[str, Any]) -> None:
        sd = state["net"]
        net = self._network(self.dim_, self.t_, torch.Generator().manual_seed(0), sd["W"].dtype)
        net.load_state_dict(sd)
        self.net_ = net.to(sd["W"].device).requires_grad_(False)


methods.register("lista", LISTA,
                 summary="Unrolled learned shrinkage (LISTA family) trained on prox pairs; prox only")
