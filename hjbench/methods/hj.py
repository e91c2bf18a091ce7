"""The Hamilton-Jacobi method of arXiv 2512.23829 (BRIEF section 4).

Data: x_k uniform on a box with S_k = S(x_k, t) (and, for the improved variants, grad S_k).

Stage 1 (forward HJ / prox).  Fit an input-convex network psi_theta to the targets
    psi_k = q(x_k) - t S_k
by mean squared error ("mse"), or by a value-plus-gradient ("sobolev") loss that also matches
grad psi_theta(x_k) to prox_k = x_k - t grad S_k.  The learned prox is grad psi_theta.

Stage 2 (backward HJ / prior).  Form conjugate samples
    y_k = grad psi_theta(x_k),    G_k = <y_k, x_k> - psi_theta(x_k)      ("learned", the paper)
or, when gradients are given, the exact ones y_k = prox_k, G_k = <y_k, x_k> - psi_k ("exact";
by Fenchel-Young these are exact values of g = psi^* at y_k), and fit a second input-convex
network G_phi to (y_k, G_k) by mean squared error.

Prior read-out, no inversion:  J_hat(y) = (G_phi(y) - q(y)) / t, one forward pass.
Certificate: grad G_phi approximates the inverse prox, so r(y) = ||grad psi_theta(grad G_phi(y)) - y||
is a free residual (reported by :meth:`HJMethod.prior_solution`).

Both networks are trained on affinely standardised data, psi_theta(x) = s_out f(x / s_in) + m
with s_out, s_in > 0, which keeps them convex in x.

Registered configurations:
    ``hj``                  the authors' method (values only, learned conjugate samples)
    ``hj_exact_conjugate``  Stage 2 on exact conjugate samples (needs gradients)
    ``hj_sobolev``          Sobolev Stage 1 loss on values and gradients (needs gradients)
The authors' full protocol (width 256, depth 2, beta 5, full batch, 500k steps, lr cut by 10
every 100k) is ``configs/paper.toml``; the budget parameters make the same code run in seconds.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data import Dataset
from ..errors import check_choice, check_positive
from ..nets import ICNN
from ..ops import half_sq_norm
from ..solve import Solution
from . import register
from .base import AbstractMethod
from .training import BUDGET_DEFAULTS, budget_of, check_budget, train

__all__ = ["HJMethod"]


class _Standardised(torch.nn.Module):
    """psi(x) = s_out f(x / s_in) + m_out: an ICNN f on standardised inputs and outputs."""

    def __init__(self, net: ICNN, s_in: float, s_out: float, m_out: float):
        super().__init__()
        self.net = net
        self.s_in, self.s_out, self.m_out = float(s_in), float(s_out), float(m_out)

    def get_extra_state(self) -> list[float]:
        return [self.s_in, self.s_out, self.m_out]

    def set_extra_state(self, state: list[float]) -> None:
        self.s_in, self.s_out, self.m_out = (float(v) for v in state)

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v, g = self.net.value_and_grad(x / self.s_in)
        return self.s_out * v + self.m_out, (self.s_out / self.s_in) * g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s_out * self.net(x / self.s_in) + self.m_out


def _fit_convex(x: torch.Tensor, target: torch.Tensor, grad_target: torch.Tensor | None, *,
                sobolev_weight: float, generator: torch.Generator, width: int, depth: int, beta: float,
                budget: dict[str, Any]) -> tuple[_Standardised, dict]:
    """Fit an ICNN to values (and optionally gradients) by (Sobolev) mean squared error."""
    s_in = float(x.detach().std().clamp_min(1e-12)) if x.numel() > 1 else 1.0
    m_out = float(target.mean())
    s_out = float(target.std().clamp_min(1e-12)) if target.numel() > 1 else 1.0
    net = ICNN(x.shape[-1], width, depth, beta, generator=generator, dtype=x.dtype).to(x.device)
    xs = x / s_in
    ys = (target - m_out) / s_out
    gs = None if grad_target is None else grad_target * (s_in / s_out)

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        if gs is None:
            return torch.mean((net(xs[idx]) - ys[idx]) ** 2)
        v, g = net.value_and_grad(xs[idx])
        return torch.mean((v - ys[idx]) ** 2) + sobolev_weight * torch.mean((g - gs[idx]) ** 2)

    log = train(net, loss_fn, x.shape[0], generator=generator, device=x.device, **budget)
    for p in net.parameters():
        p.requires_grad_(False)
    return _Standardised(net, s_in, s_out, m_out), log.as_dict()


class HJMethod(AbstractMethod):
    """Hamilton-Jacobi method: convex psi_theta from HJ values, prior from conjugate samples.

    Args:
        steps, batch_size, lr, lr_decay, lr_decay_every, val_fraction, patience, width, depth:
            the common training budget (:mod:`hjbench.methods.training`), used by both stages.
        beta: softplus sharpness of both networks (paper: 5).
        stage2_steps: Stage 2 steps (default: ``steps``).
        stage1_loss: "mse" on values (paper) or "sobolev" on values and gradients.
        sobolev_weight: weight of the gradient term of the Sobolev loss.
        conjugate_samples: "learned" (paper: y_k = grad psi_theta(x_k)) or "exact"
            (y_k = prox_k from the data's gradients).
    """

    provides = frozenset({"prox", "potential", "prior"})
    test_params = {"steps": 200, "width": 16, "depth": 1, "lr": 2e-2, "lr_decay": 0.3}

    def __init__(self, *, steps: int = BUDGET_DEFAULTS["steps"], batch_size: int | None = None,
                 lr: float = BUDGET_DEFAULTS["lr"], lr_decay: float = BUDGET_DEFAULTS["lr_decay"],
                 lr_decay_every: int | None = None, val_fraction: float = 0.0,
                 patience: int | None = None, width: int = BUDGET_DEFAULTS["width"],
                 depth: int = BUDGET_DEFAULTS["depth"], beta: float = 5.0,
                 stage2_steps: int | None = None, stage1_loss: str = "mse",
                 sobolev_weight: float = 1.0, conjugate_samples: str = "learned"):
        check_budget(steps=steps, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
                     lr_decay_every=lr_decay_every, val_fraction=val_fraction, patience=patience,
                     width=width, depth=depth)
        check_positive("beta", beta)
        if stage2_steps is not None:
            check_budget(steps=stage2_steps, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
                         lr_decay_every=lr_decay_every, val_fraction=val_fraction,
                         patience=patience, width=width, depth=depth)
        check_choice("stage1_loss", stage1_loss, ("mse", "sobolev"))
        check_positive("sobolev_weight", sobolev_weight)
        check_choice("conjugate_samples", conjugate_samples, ("learned", "exact"))
        self.steps, self.batch_size, self.lr, self.lr_decay = steps, batch_size, lr, lr_decay
        self.lr_decay_every, self.val_fraction, self.patience = lr_decay_every, val_fraction, patience
        self.width, self.depth, self.beta, self.stage2_steps = width, depth, beta, stage2_steps
        self.stage1_loss, self.sobolev_weight = stage1_loss, sobolev_weight
        self.conjugate_samples = conjugate_samples

    @property
    def data_regime(self) -> str:
        needs_grad = self.stage1_loss == "sobolev" or self.conjugate_samples == "exact"
        return "values_and_gradients" if needs_grad else "values"

    def _fit(self, data: Dataset, generator: torch.Generator) -> None:
        x, t = data.x, data.t
        psi = half_sq_norm(x) - t * data.S
        prox = None if data.grad_S is None else x - t * data.grad_S
        arch = dict(width=self.width, depth=self.depth, beta=self.beta, generator=generator)
        self.potential_, log1 = _fit_convex(
            x, psi, prox if self.stage1_loss == "sobolev" else None,
            sobolev_weight=self.sobolev_weight, budget=budget_of(self), **arch)
        with torch.no_grad():
            if self.conjugate_samples == "exact":
                y, psi_k = prox, psi
            else:
                psi_k, y = self.potential_.value_and_grad(x)
            G = (y * x).sum(-1) - psi_k
        steps2 = self.stage2_steps if self.stage2_steps is not None else self.steps
        self.prior_net_, log2 = _fit_convex(y, G, None, sobolev_weight=0.0,
                                            budget=budget_of(self, steps=steps2), **arch)
        self.loss_curve_ = {"stage1": log1, "stage2": log2}

    # -- queries ---------------------------------------------------------------------------------
    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        return self.potential_.value_and_grad(x.to(self._dtype))[1]

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        return self.potential_(x.to(self._dtype))

    def _prior_value(self, y: torch.Tensor) -> torch.Tensor:
        y = y.to(self._dtype)
        return (self.prior_net_(y) - half_sq_norm(y)) / self.t_

    def _prior_solution(self, y: torch.Tensor) -> Solution:
        """J_hat(y) with the inverse-prox certificate ||grad psi_theta(grad G_phi(y)) - y||."""
        yd = y.to(self._dtype)
        G, x_pre = self.prior_net_.value_and_grad(yd)
        residual = torch.linalg.vector_norm(self.potential_.value_and_grad(x_pre)[1] - yd, dim=-1)
        value = (G - half_sq_norm(yd)) / self.t_
        sol = Solution.exact(value, residual=residual)
        return Solution(sol.value, sol.converged, sol.iterations, sol.residual, argument=x_pre)

    def prior(self, y: torch.Tensor) -> torch.Tensor:
        """J_hat(y) = (G_phi(y) - q(y)) / t: one forward pass, no inversion."""
        y = self._query("prior", y, "y")
        with torch.no_grad():
            return self._prior_value(y).to(y.dtype)

    @property
    def _dtype(self) -> torch.dtype:
        return self.potential_.net.w.dtype

    # -- state -------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"potential": self.potential_.state_dict(), "prior_net": self.prior_net_.state_dict(),
                "dtype": str(self._dtype).removeprefix("torch.")}

    def _load_state(self, state: dict[str, Any]) -> None:
        dtype = getattr(torch, state["dtype"])
        nets = []
        for key in ("potential", "prior_net"):
            sd = state[key]
            net = _Standardised(ICNN(self.dim_, self.width, self.depth, self.beta, dtype=dtype), 1.0, 1.0, 0.0)
            net.load_state_dict(sd)
            net.to(sd["net.w"].device)
            for p in net.parameters():
                p.requires_grad_(False)
            nets.append(net)
        self.potential_, self.prior_net_ = nets


register("hj", HJMethod, summary="HJ method (arXiv 2512.23829): psi from HJ values, prior from learned conjugate samples")
register("hj_exact_conjugate", HJMethod, conjugate_samples="exact",
         summary="HJ method, Stage 2 on exact conjugate samples (needs gradients)")
register("hj_sobolev", HJMethod, stage1_loss="sobolev",
         summary="HJ method, value-plus-gradient (Sobolev) Stage 1 loss (needs gradients)")
