"""Plug-and-play denoisers used as a prox (docs/method.md section 5).

``pnp``: an unconstrained residual MLP D_theta(x) = x + MLP(x) (:class:`hjbench.nets.ResidualMLP`)
trained on prox pairs (x_k, prox_{tJ}(x_k)) by mean squared error,

    L(theta) = mean_{k,i} (D_theta(x_k) - prox_{tJ}(x_k))_i^2,

and used as the prox. Nothing ties D_theta to a potential, so it provides the prox only.

``pnp_gradient_step``: the gradient-step denoiser D_theta = I - grad g_theta with g_theta an
unconstrained scalar network (Hurault, Leclaire, Papadakis, ICLR 2022). Since
prox_{tJ} = grad psi and psi = q - t S, the denoiser D_theta = grad psi_theta has the explicit
potential

    psi_theta(x) = q(x) - g_theta(x),        g_theta ~ t S(., t),

which is not convex in general (g_theta is unconstrained). A potential is fixed by prox pairs
only up to an additive constant, so this method is trained in the ``values_and_gradients``
regime with a value-plus-gradient loss that identifies it completely:

    L(theta) = mean_{k,i} (D_theta(x_k) - prox_k)_i^2
               + (value_weight / sigma_x^2) mean_k (psi_theta(x_k) - psi_k)^2,

prox_k = x_k - t grad S(x_k, t), psi_k = q(x_k) - t S(x_k, t), sigma_x^2 the variance of the
training inputs (values scale like x^2 where prox errors scale like x, so this makes the balance
of the two terms independent of the units of x; it is the balance of ``hj_sobolev``'s
standardised loss at equal weight). The first term is the authors' denoising loss on prox
pairs; the second pins the constant (and the shape) of psi_theta. It provides the prox and the
potential, not the prior.

grad g_theta is an explicit backward pass through the MLP written with tensor operations
(:class:`ScalarMLP`): differentiable in the parameters for training, and evaluation needs no
``requires_grad`` on any input and leaves no ``.grad`` anywhere.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hjbench import methods
from hjbench.data import Dataset
from hjbench.errors import check_int, check_points, check_positive
from hjbench.methods.base import AbstractMethod
from hjbench.nets import ResidualMLP
from hjbench.training import Budget, train_ensemble
from hjbench.priors.base import half_sq_norm

__all__ = ["ScalarMLP", "PlugAndPlay", "GradientStepDenoiser"]


def _silu_prime(u: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(u)
    return s * (1 + u * (1 - s))


class ScalarMLP(nn.Module):
    """g(x) = s_out (w^T h_L(x / s_in) + c), h_l = silu(W_l h_{l-1} + b_l), h_0 = x / s_in.

    ``depth`` hidden layers of ``width`` units. The fixed scales s_in, s_out > 0 (set from the
    data by the caller; buffers, so saved with the state and per member in an ensemble) keep
    the trained weights of order one. ``w``
    starts at zero and ``c`` at ``offset / s_out``, so the initial g is the constant ``offset``
    and the initial denoiser x - grad g(x) is the identity.
    """

    def __init__(self, dim: int, width: int, depth: int, *, s_in: float = 1.0, s_out: float = 1.0,
                 offset: float = 0.0, generator: torch.Generator, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=1)
        check_int("width", width, minimum=1)
        check_int("depth", depth, minimum=1)
        self.register_buffer("s_in", torch.tensor(check_positive("s_in", s_in), dtype=dtype))
        self.register_buffer("s_out", torch.tensor(check_positive("s_out", s_out), dtype=dtype))
        sizes = [dim] + [width] * depth
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter((2 * torch.rand(fan_out, fan_in, generator=generator, dtype=dtype) - 1) * bound))
            self.biases.append(nn.Parameter((2 * torch.rand(fan_out, generator=generator, dtype=dtype) - 1) * bound))
        self.w = nn.Parameter(torch.zeros(width, dtype=dtype))
        self.c = nn.Parameter(torch.tensor(float(offset) / s_out, dtype=dtype))

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(g(x), grad g(x)) of shapes (...) and (..., dim), by an explicit backward pass."""
        check_points("x", x, self.dim)
        h = x.reshape(-1, self.dim).to(self.w.dtype) / self.s_in
        us = []
        for W, b in zip(self.weights, self.biases):
            u = F.linear(h, W, b)
            us.append(u)
            h = F.silu(u)
        value = self.s_out * (h @ self.w + self.c)
        dh = self.w.expand_as(h)
        for W, u in zip(reversed(self.weights), reversed(us)):
            dh = (dh * _silu_prime(u)) @ W
        grad = (self.s_out / self.s_in) * dh
        return value.reshape(x.shape[:-1]).to(x.dtype), grad.reshape(x.shape).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value_and_grad(x)[0]


class _Learned:
    """Budget storage, ensemble training and state shared by both plug-and-play methods."""

    def _store_budget(self, budget: Budget | dict | None) -> None:
        self.budget = Budget.coerce(budget)
        check_int("budget.depth", self.budget.depth, minimum=1)

    def _fit_ensemble(self, members, datasets, generators) -> None:
        """Train every member's network as one ensemble (:func:`hjbench.training.train_ensemble`)."""
        nets = [self._member_network(d, g) for d, g in zip(datasets, generators)]
        data = [self._member_data(d) for d in datasets]
        logs = train_ensemble(nets, self._objective, data, budget=self.budget, generators=generators)
        for member, net, log in zip(members, nets, logs):
            member.net_ = net.requires_grad_(False)
            member.training_, member.backend_ = {"fit": log}, "torch"

    def _state(self) -> dict[str, Any]:
        return {"net": copy.deepcopy(self.net_.state_dict())}

    def _load_state(self, state: dict[str, Any]) -> None:
        sd = state["net"]
        ref = next(v for v in sd.values() if isinstance(v, torch.Tensor))
        net = self._network(self.dim_, torch.Generator().manual_seed(0), ref.dtype)
        net.load_state_dict(sd)
        self.net_ = net.to(ref.device).requires_grad_(False)


class PlugAndPlay(_Learned, AbstractMethod):
    """Residual-MLP denoiser trained to map x to prox_{tJ}(x); prox only (module docstring).

    Args:
        budget: the common training budget (:class:`hjbench.training.Budget` or a dict);
            ``width``, ``depth`` (>= 1) are the hidden width and layers of the residual MLP.
    """

    provides = frozenset({"prox"})
    test_params = {"budget": {"steps": 150, "width": 16, "depth": 1, "lr": 1e-2}}

    def __init__(self, *, budget: Budget | dict | None = None):
        self._store_budget(budget)

    @property
    def data_regime(self) -> str:
        return "prox_pairs"

    def _network(self, dim: int, generator: torch.Generator, dtype: torch.dtype) -> ResidualMLP:
        return ResidualMLP(dim, self.budget.width, self.budget.depth, generator=generator, dtype=dtype)

    def _member_network(self, data: Dataset, generator: torch.Generator) -> ResidualMLP:
        return self._network(data.dim, generator, data.x.dtype).to(data.x.device)

    def _member_data(self, data: Dataset) -> tuple[torch.Tensor, ...]:
        return data.x, data.prox

    @staticmethod
    def _objective(net, batch, step) -> torch.Tensor:
        """mean_{k,i} (D_theta(x_k) - prox_k)_i^2."""
        x, y = batch
        return torch.mean((net(x) - y) ** 2)

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        return self.net_(x)


class GradientStepDenoiser(_Learned, AbstractMethod):
    """Gradient-step denoiser D = I - grad g_theta with potential psi_theta = q - g_theta.

    Trained on values and gradients (module docstring), so the potential is identified.

    Args:
        value_weight: weight (> 0) of the potential-value term of the loss.
        budget: the common training budget (:class:`hjbench.training.Budget` or a dict);
            ``width``, ``depth`` (>= 1) are the hidden width and layers of g_theta.
    """

    provides = frozenset({"prox", "potential"})
    test_params = {"budget": {"steps": 300, "width": 16, "depth": 1, "lr": 1e-2}}

    def __init__(self, *, value_weight: float = 1.0, budget: Budget | dict | None = None):
        check_positive("value_weight", value_weight)
        self.value_weight = value_weight
        self._store_budget(budget)

    @property
    def data_regime(self) -> str:
        return "values_and_gradients"

    def _network(self, dim: int, generator: torch.Generator, dtype: torch.dtype,
                 **scales: float) -> ScalarMLP:
        return ScalarMLP(dim, self.budget.width, self.budget.depth, generator=generator,
                         dtype=dtype, **scales)

    def _member_network(self, data: Dataset, generator: torch.Generator) -> ScalarMLP:
        """g_theta with s_in = sigma_x, and output scale and offset from t S (constant start)."""
        x, tS = data.x, data.t * data.S
        var_x = float(x.var().clamp_min(1e-24)) if x.numel() > 1 else 1.0
        scales = dict(s_in=var_x ** 0.5, offset=float(tS.mean()),
                      s_out=float(tS.std().clamp_min(1e-12)) if tS.numel() > 1 else 1.0)
        return self._network(data.dim, generator, x.dtype, **scales).to(x.device)

    def _member_data(self, data: Dataset) -> tuple[torch.Tensor, ...]:
        x, t = data.x, data.t
        return x, x - t * data.grad_S, half_sq_norm(x) - t * data.S

    def _objective(self, net, batch, step) -> torch.Tensor:
        """Prox term + (value_weight / sigma_x^2) value term; sigma_x = the network's s_in."""
        x, prox, psi = batch
        g, grad_g = net.value_and_grad(x)
        prox_term = torch.mean((x - grad_g - prox) ** 2)
        value_term = torch.mean((half_sq_norm(x) - g - psi) ** 2)
        return prox_term + self.value_weight * value_term / net.s_in ** 2

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.net_.value_and_grad(x)[1]

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        return half_sq_norm(x) - self.net_(x)


methods.register("pnp", PlugAndPlay,
                 summary="Plug-and-play residual-MLP denoiser trained on prox pairs; prox only")
methods.register("pnp_gradient_step", GradientStepDenoiser,
                 summary="Gradient-step denoiser I - grad g_theta with potential q - g_theta; "
                         "trained on values and gradients")
