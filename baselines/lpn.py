"""Learned Proximal Networks with post-hoc inversion (Fang, Buchanan, Sulam, ICLR 2024; BRIEF section 5).

A convex potential psi_theta(x) = s_out f_theta(x / s_in) + m (f_theta an :class:`ICNN`; the
fixed scales s_in, s_out > 0 and offset m come from the data and keep it convex) whose
gradient is the learned prox, trained by ``train_on``:

* ``"prox_pairs"`` (``lpn``, data (x_k, y_k = prox_{tJ}(x_k))), the authors' schedule: with
  r_k = ||grad psi_theta(x_k) - y_k|| / (sigma_y sqrt(dim)) (sigma_y the standard deviation of
  the entries of y, so r_k is a relative RMS error and the schedule is free of units and of
  the dimension),
    - warm-up, the first ``warmup_fraction`` of the steps: mean l1 error
      mean_{k,i} |grad psi_theta(x_k) - y_k|_i / sigma_y;
    - then proximal matching  gamma_j mean_k 1 - exp(-(r_k / gamma_j)^2)  over ``gamma_stages``
      equal stages j = 0, 1, ..., with gamma_j = gamma / 2^j (the authors: half the steps of
      warm-up, 4 stages, gamma 0.1). The factor gamma_j does not move the minimisers; it keeps
      the gradients of the order of the warm-up's, which matters because one Adam run carries
      its moment estimates across the phases (the authors restart the optimiser; without the
      factor the jump in gradient size at the switch throws the fit off). Validation (if any)
      scores every phase by the same mean squared prox error, so the kept state is compared
      like with like.
  Prox pairs fix psi_theta only up to an additive constant, which the potential and the prior
  inherit; the offset m is set after training so that psi_theta(0) = 0 (a convention, exact for
  l1 and the concave quadratic, off by a constant for families with psi(0) != 0: an error
  no learner of prox pairs can avoid).
* ``"values"`` (``lpn_values``, data (x_k, S_k)): mean squared error on psi_k = q(x_k) - t S_k,
  as Stage 1 of the HJ method; the schedule parameters must then be left None.

The prior at y needs a solve (:func:`baselines.inversion.invert`), the method's weak spot:

    x* = argmin_x psi_theta(x) + (alpha/2)||x||^2 - <x, y>,
    J_hat(y) = (<x*, y> - psi_theta(x*) - (alpha/2)||x*||^2 - q(y)) / t,

one iterative solve per query (``solver`` "cg_per_point", the authors' reference, or the
batched "lbfgs" / "newton_cg"), started at x0 = y, to gradient tolerance ``tol`` (authors:
1e-5). The solve runs on a float64 copy of psi_theta: float32 gradients carry rounding of
order 1e-7 |grad| per operation, which makes 1e-5 unreachable in higher dimensions ("lbfgs"
does its first iterations on the float32 network, twice as cheap, and finishes in float64;
see ``coarse`` in :func:`~baselines.inversion.invert`). Points that
did not converge (y outside the range of grad psi_theta, iteration cap) are flagged in
:meth:`prior_solution`, never passed off as converged.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from hjbench import methods
from hjbench.data import Dataset
from hjbench.errors import ConfigError, check_choice, check_int, check_positive
from hjbench.methods import AbstractMethod
from hjbench.methods.training import BUDGET_DEFAULTS, check_budget, budget_of, train
from hjbench.nets.icnn import ICNN
from hjbench.solve import Solution

from .inversion import check_solver, invert

__all__ = ["LearnedProximalNetwork", "ScaledICNN"]

_SCHEDULE = ("warmup_fraction", "gamma", "gamma_stages")
_SCHEDULE_DEFAULTS = {"warmup_fraction": 0.5, "gamma": 0.1, "gamma_stages": 4}


class ScaledICNN(nn.Module):
    """psi(x) = s_out f(x / s_in) + m for an ICNN f; convex for s_in, s_out > 0."""

    def __init__(self, net: ICNN, s_in: float, s_out: float, m: float):
        super().__init__()
        self.net, self.s_in, self.s_out, self.m = net, float(s_in), float(s_out), float(m)

    def get_extra_state(self) -> list[float]:
        return [self.s_in, self.s_out, self.m]

    def set_extra_state(self, state: list[float]) -> None:
        self.s_in, self.s_out, self.m = (float(v) for v in state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s_out * self.net(x / self.s_in) + self.m

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v, g = self.net.value_and_grad(x / self.s_in)
        return self.s_out * v + self.m, (self.s_out / self.s_in) * g

    def hvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (self.s_out / self.s_in ** 2) * self.net.hvp(x / self.s_in, v)


class LearnedProximalNetwork(AbstractMethod):
    """Learned Proximal Network: convex psi_theta, prox = grad psi_theta, prior by inversion.

    Args:
        train_on: "prox_pairs" (authors' l1 warm-up + proximal matching) or "values" (MSE).
        steps, batch_size, lr, lr_decay, lr_decay_every, val_fraction, patience, width, depth:
            the common training budget (:mod:`hjbench.methods.training`).
        beta: softplus sharpness of the ICNN (paper: 5).
        warmup_fraction: fraction in [0, 1) of the steps spent in the l1 warm-up.
        gamma: initial proximal-matching width (relative RMS units, module docstring) > 0.
        gamma_stages: number >= 1 of proximal-matching stages, gamma halved at each.
            (These three only with train_on="prox_pairs"; None there means 0.5, 0.1, 4.)
        solver: inversion solver, one of :data:`baselines.inversion.SOLVERS`.
        tol: gradient tolerance of the inversion (> 0); max_iter: its iteration cap (>= 1).
        alpha: strong-convexity term (>= 0) added in the inversion; biases the prior down.
    """

    provides = frozenset({"prox", "potential", "prior"})
    # tol / max_iter chosen so that a tiny fit has some points converge and some hit the cap
    test_params = {"steps": 200, "width": 32, "depth": 1, "lr": 3e-2, "lr_decay": 0.5, "tol": 1e-3,
                   "max_iter": 6}

    def __init__(self, *, train_on: str = "prox_pairs", steps: int = BUDGET_DEFAULTS["steps"],
                 batch_size: int | None = None, lr: float = BUDGET_DEFAULTS["lr"],
                 lr_decay: float = BUDGET_DEFAULTS["lr_decay"], lr_decay_every: int | None = None,
                 val_fraction: float = 0.0, patience: int | None = None,
                 width: int = BUDGET_DEFAULTS["width"], depth: int = BUDGET_DEFAULTS["depth"],
                 beta: float = 5.0, warmup_fraction: float | None = None,
                 gamma: float | None = None, gamma_stages: int | None = None,
                 solver: str = "lbfgs", tol: float = 1e-5, max_iter: int = 500, alpha: float = 0.0):
        check_choice("train_on", train_on, ("prox_pairs", "values"))
        check_budget(steps=steps, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
                     lr_decay_every=lr_decay_every, val_fraction=val_fraction, patience=patience,
                     width=width, depth=depth)
        check_positive("beta", beta)
        if warmup_fraction is not None:
            check_positive("warmup_fraction", warmup_fraction, strict=False, upper=1.0)
        if gamma is not None:
            check_positive("gamma", gamma)
        if gamma_stages is not None:
            check_int("gamma_stages", gamma_stages, minimum=1)
        given = {k: v for k, v in zip(_SCHEDULE, (warmup_fraction, gamma, gamma_stages)) if v is not None}
        if train_on == "values" and given:
            raise ConfigError(f"{', '.join(f'{k}={v!r}' for k, v in given.items())} applies only to "
                              "train_on='prox_pairs'; with train_on='values' leave it None")
        check_solver(solver, tol, max_iter, alpha)
        self.train_on, self.steps, self.batch_size, self.lr = train_on, steps, batch_size, lr
        self.lr_decay, self.lr_decay_every, self.val_fraction = lr_decay, lr_decay_every, val_fraction
        self.patience, self.width, self.depth, self.beta = patience, width, depth, beta
        self.warmup_fraction, self.gamma, self.gamma_stages = warmup_fraction, gamma, gamma_stages
        self.solver, self.tol, self.max_iter, self.alpha = solver, tol, max_iter, alpha

    @property
    def data_regime(self) -> str:
        return self.train_on

    def _schedule(self) -> dict[str, Any]:
        return {k: (_SCHEDULE_DEFAULTS[k] if getattr(self, k) is None else getattr(self, k))
                for k in _SCHEDULE}

    def _fit(self, data: Dataset, generator: torch.Generator) -> None:
        x = data.x
        s_in = float(x.std().clamp_min(1e-12)) if x.numel() > 1 else 1.0
        net = ICNN(data.dim, self.width, self.depth, self.beta, generator=generator,
                   dtype=x.dtype).to(x.device)
        if self.train_on == "values":
            psi = 0.5 * (x * x).sum(-1) - data.t * data.S
            m = float(psi.mean())
            s_out = float(psi.std().clamp_min(1e-12)) if psi.numel() > 1 else 1.0
            target = (psi - m) / s_out
            loss_fn = lambda idx: torch.mean((net(x[idx] / s_in) - target[idx]) ** 2)  # noqa: E731
        else:
            y = data.prox
            sigma = float(y.std().clamp_min(1e-12)) if y.numel() > 1 else 1.0
            m, s_out = 0.0, s_in * sigma
            loss_fn = self._prox_loss(net, x / s_in, y / sigma)
        log = train(net, loss_fn, data.n_samples, generator=generator, device=x.device,
                    **budget_of(self))
        net.requires_grad_(False)
        if self.train_on == "prox_pairs":
            with torch.no_grad():
                m = -s_out * float(net(torch.zeros(1, data.dim, dtype=x.dtype, device=x.device))[0])
        self.potential_ = ScaledICNN(net, s_in, s_out, m)
        self.loss_curve_ = log.as_dict()
        self._make_solver_copy()

    def _prox_loss(self, net: ICNN, xs: torch.Tensor, ys: torch.Tensor):
        """The authors' schedule as a loss of the training step (counted on gradient calls)."""
        sched = self._schedule()
        n_warm = int(round(sched["warmup_fraction"] * self.steps))
        stage_len = max(1, -(-(self.steps - n_warm) // sched["gamma_stages"]))
        scale = xs.shape[-1] ** 0.5
        step = [0]

        def loss_fn(idx: torch.Tensor) -> torch.Tensor:
            err = net.value_and_grad(xs[idx])[1] - ys[idx]
            if not torch.is_grad_enabled():          # validation: one metric for every phase
                return torch.mean(err ** 2)
            step[0] += 1
            if step[0] <= n_warm:
                return err.abs().mean()
            stage = min((step[0] - n_warm - 1) // stage_len, sched["gamma_stages"] - 1)
            r = torch.linalg.vector_norm(err, dim=-1) / scale
            gamma = sched["gamma"] / 2 ** stage
            return gamma * torch.mean(1 - torch.exp(-(r / gamma) ** 2))

        return loss_fn

    def _make_solver_copy(self) -> None:
        self.solver_potential_ = copy.deepcopy(self.potential_).to(torch.float64)

    # -- queries -----------------------------------------------------------------------------------
    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        return self.potential_.value_and_grad(x.to(self._dtype))[1]

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        return self.potential_(x.to(self._dtype))

    def _prior_solution(self, y: torch.Tensor) -> Solution:
        """J_hat(y) = (<x*, y> - psi_theta(x*) - (alpha/2)||x*||^2 - q(y)) / t, solve status per point."""
        net = self.solver_potential_
        y64 = y.to(device=net.net.w.device, dtype=torch.float64)
        fast = self.solver == "lbfgs" and self._dtype == torch.float32
        sol = invert(net.value_and_grad, y64, hvp=net.hvp, solver=self.solver, tol=self.tol,
                     max_iter=self.max_iter, alpha=self.alpha,
                     coarse=self.potential_.value_and_grad if fast else None)
        value = (sol.value - 0.5 * (y64 * y64).sum(-1)) / self.t_
        dev = y.device
        return Solution(value=value.to(dev), argument=sol.argument.to(device=dev, dtype=y.dtype),
                        converged=sol.converged.to(dev), iterations=sol.iterations.to(dev),
                        residual=sol.residual.to(dev))

    @property
    def _dtype(self) -> torch.dtype:
        return self.potential_.net.w.dtype

    # -- state ---------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"potential": copy.deepcopy(self.potential_.state_dict()),
                "loss_curve": self.loss_curve_}

    def _load_state(self, state: dict[str, Any]) -> None:
        sd = state["potential"]
        ref = sd["net.w"]
        net = ICNN(self.dim_, self.width, self.depth, self.beta, dtype=ref.dtype)
        potential = ScaledICNN(net, 1.0, 1.0, 0.0)
        potential.load_state_dict(sd)
        self.potential_ = potential.to(ref.device).requires_grad_(False)
        self.loss_curve_ = state.get("loss_curve")
        self._make_solver_copy()


methods.register("lpn", LearnedProximalNetwork, train_on="prox_pairs", **_SCHEDULE_DEFAULTS,
                 summary="Learned Proximal Network (Fang et al. 2024): ICNN on prox pairs "
                         "(l1 warm-up, proximal matching), prior by post-hoc inversion")
methods.register("lpn_values", LearnedProximalNetwork, train_on="values",
                 summary="Learned Proximal Network trained on HJ values (MSE), prior by post-hoc inversion")
