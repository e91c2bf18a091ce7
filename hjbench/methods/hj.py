"""The Hamilton-Jacobi method of arXiv 2512.23829 (docs/method.md section 4).

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
with s_out, s_in > 0, which keeps them convex in x (:class:`hjbench.nets.ScaledICNN`; off
with ``standardise=False``, the authors' raw data).

Registered configurations:
    ``hj``                  the improved default: standardised data, hjbench's scaled ICNN
                            initialisation with a first-layer bias (values only, learned
                            conjugate samples, as the paper)
    ``hj_paper``            the authors' method as they ran it: raw inputs and targets,
                            PyTorch's default nn.Linear initialisation, no first-layer bias
                            (docs/hj_paper.md lists every difference and its measured effect)
    ``hj_exact_conjugate``  Stage 2 on exact conjugate samples (needs gradients)
    ``hj_sobolev``          Sobolev Stage 1 loss on values and gradients (needs gradients)
All four share the common budget (full batch, Adam, lr cut by ``lr_decay`` every ``steps // 5``
steps by default: the paper's 500k-step, x0.1-every-100k schedule scaled to any budget); the
authors' full protocol is ``configs/paper.toml``. Members of an ensemble (``fit_many``) are
trained together, stage by stage, on the torch or the JAX backend (``backend``).
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

import torch

from ..data import Dataset
from ..errors import check_choice, check_positive
from ..nets import ICNN, ScaledICNN
from ..nets.icnn import INITS
from ..quadratic import half_sq_norm
from ..solution import Solution
from ..training import Budget, LossSpec, fit_potentials
from ..training.icnn import BACKENDS
from . import register
from .base import AbstractMethod

__all__ = ["HJMethod", "backend_skip_reason"]


def backend_skip_reason(backend: str) -> str | None:
    """Why the JAX training backend cannot run here, or None."""
    if backend != "jax":
        return None
    from ..jax_bridge import jax_available

    if not jax_available():
        return "backend='jax' needs JAX, which does not import here"
    if importlib.util.find_spec("hjbench.training.jax_loop") is None:
        return "backend='jax' needs hjbench.training.jax_loop, which is not installed"
    return None


def _stack(datasets: list[Dataset], field: str) -> torch.Tensor | None:
    values = [getattr(d, field) for d in datasets]
    return None if values[0] is None else torch.stack(values)


class HJMethod(AbstractMethod):
    """Hamilton-Jacobi method: convex psi_theta from HJ values, prior from conjugate samples.

    Args:
        budget: the common training budget (:class:`hjbench.training.Budget`, a dict of its
            fields, or None for the defaults), used by both stages.
        beta: softplus sharpness of both networks (paper: 5).
        stage2_steps: Stage 2 steps (default: ``budget.steps``).
        stage1_loss: "mse" on values (paper) or "sobolev" on values and gradients.
        sobolev_weight: weight of the gradient term of the Sobolev loss.
        conjugate_samples: "learned" (paper: y_k = grad psi_theta(x_k)) or "exact"
            (y_k = prox_k from the data's gradients).
        standardise: train on standardised data (True) or on the raw data (the authors).
        init: ICNN initialisation, "scaled" (hjbench) or "torch" (nn.Linear's default, the authors').
        first_bias: whether the ICNN's first layer has a bias (the authors' has none).
        backend: training backend, "torch" or "jax" (:mod:`hjbench.training.jax_loop`).
    """

    provides = frozenset({"prox", "potential", "prior"})
    test_params = {"budget": {"steps": 200, "width": 16, "depth": 1, "lr": 2e-2, "lr_decay": 0.3}}

    def __init__(self, *, budget: Budget | dict | None = None, beta: float = 5.0,
                 stage2_steps: int | None = None, stage1_loss: str = "mse",
                 sobolev_weight: float = 1.0, conjugate_samples: str = "learned",
                 standardise: bool = True, init: Literal["scaled", "torch"] = "scaled",
                 first_bias: bool = True, backend: Literal["torch", "jax"] = "torch"):
        self.budget = Budget.coerce(budget)
        check_positive("beta", beta)
        if stage2_steps is not None:
            self.budget.replace(steps=stage2_steps)   # validates stage2_steps as budget.steps
        check_choice("stage1_loss", stage1_loss, ("mse", "sobolev"))
        check_positive("sobolev_weight", sobolev_weight)
        check_choice("conjugate_samples", conjugate_samples, ("learned", "exact"))
        check_choice("standardise", standardise, (True, False))
        check_choice("init", init, INITS)
        check_choice("first_bias", first_bias, (True, False))
        check_choice("backend", backend, BACKENDS)
        self.beta, self.stage2_steps, self.stage1_loss = beta, stage2_steps, stage1_loss
        self.sobolev_weight, self.conjugate_samples = sobolev_weight, conjugate_samples
        self.standardise, self.init, self.first_bias = standardise, init, first_bias
        self.backend = backend

    @property
    def data_regime(self) -> str:
        needs_grad = self.stage1_loss == "sobolev" or self.conjugate_samples == "exact"
        return "values_and_gradients" if needs_grad else "values"

    def skip(self, *, device, dim: int) -> str | None:
        return backend_skip_reason(self.backend)

    def _fit_ensemble(self, members, datasets, generators) -> None:
        """Stage 1 for every member as one ensemble, then Stage 2 likewise."""
        x = _stack(datasets, "x")
        t = torch.tensor([d.t for d in datasets], dtype=x.dtype, device=x.device)
        psi = half_sq_norm(x) - t[:, None] * _stack(datasets, "S")
        grad_S = _stack(datasets, "grad_S")
        prox = None if grad_S is None else x - t[:, None, None] * grad_S
        sobolev = self.stage1_loss == "sobolev"
        loss1 = LossSpec("sobolev", weight=self.sobolev_weight) if sobolev else LossSpec("mse")
        arch = dict(beta=self.beta, generators=generators, backend=self.backend, init=self.init,
                    first_bias=self.first_bias, standardise=self.standardise)
        potentials, logs1 = fit_potentials(x, psi, prox if sobolev else None, loss=loss1,
                                           budget=self.budget, **arch)
        with torch.no_grad():
            if self.conjugate_samples == "exact":
                y, psi_k = prox, psi
            else:
                pairs = [p.value_and_grad(x[r]) for r, p in enumerate(potentials)]
                psi_k, y = torch.stack([v for v, _ in pairs]), torch.stack([g for _, g in pairs])
            G = (y * x).sum(-1) - psi_k
        steps2 = self.stage2_steps if self.stage2_steps is not None else self.budget.steps
        priors_, logs2 = fit_potentials(y, G, None, loss=LossSpec("mse"),
                                        budget=self.budget.replace(steps=steps2), **arch)
        for r, m in enumerate(members):
            m.potential_, m.prior_net_ = potentials[r], priors_[r]
            m.training_ = {"stage1": logs1[r], "stage2": logs2[r]}
            m.backend_ = self.backend

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
            net = ScaledICNN(ICNN(self.dim_, self.budget.width, self.budget.depth, self.beta,
                                  init=self.init, first_bias=self.first_bias, dtype=dtype))
            net.load_state_dict(sd)
            net.to(sd["net.w"].device)
            for p in net.parameters():
                p.requires_grad_(False)
            nets.append(net)
        self.potential_, self.prior_net_ = nets


register("hj", HJMethod, summary="HJ method (arXiv 2512.23829): psi from HJ values, prior from "
                                 "learned conjugate samples; standardised data, scaled init")
register("hj_paper", HJMethod, standardise=False, init="torch", first_bias=False,
         summary="HJ method as the authors ran it: raw data, nn.Linear default init, no "
                 "first-layer bias, full batch, W clipped >= 0 after each step")
register("hj_exact_conjugate", HJMethod, conjugate_samples="exact",
         summary="HJ method, Stage 2 on exact conjugate samples (needs gradients)")
register("hj_sobolev", HJMethod, stage1_loss="sobolev",
         summary="HJ method, value-plus-gradient (Sobolev) Stage 1 loss (needs gradients)")
