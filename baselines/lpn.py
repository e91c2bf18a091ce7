"""Learned Proximal Networks with post-hoc inversion (Fang, Buchanan, Sulam, ICLR 2024; docs/method.md section 5).

A convex potential psi_theta(x) = s_out f_theta(x / s_in) + m (f_theta an ICNN, psi_theta a
:class:`hjbench.nets.ScaledICNN`; the fixed scales s_in, s_out > 0 and offset m come from the
data and keep it convex) whose gradient is the learned prox, trained by ``train_on`` through
:func:`hjbench.training.fit_potentials` (torch or JAX ``backend``, ensembles by ``fit_many``):

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
      like with like. This is ``LossSpec("prox_matching", scale=1)`` on the standardised
      targets y / sigma_y (:mod:`hjbench.training.losses`).
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
from typing import Any, Literal

import torch

from hjbench import methods
from hjbench.errors import ConfigError, check_choice, check_int, check_positive
from hjbench.methods import AbstractMethod
from hjbench.methods.hj import backend_skip_reason
from hjbench.nets import ICNN, ScaledICNN
from hjbench.solution import Solution
from hjbench.training import Budget, LossSpec, fit_potentials
from hjbench.training.icnn import BACKENDS

from .inversion import check_solver, invert

__all__ = ["LearnedProximalNetwork"]

_SCHEDULE = ("warmup_fraction", "gamma", "gamma_stages")
_SCHEDULE_DEFAULTS = {"warmup_fraction": 0.5, "gamma": 0.1, "gamma_stages": 4}


class LearnedProximalNetwork(AbstractMethod):
    """Learned Proximal Network: convex psi_theta, prox = grad psi_theta, prior by inversion.

    Args:
        train_on: "prox_pairs" (authors' l1 warm-up + proximal matching) or "values" (MSE).
        budget: the common training budget (:class:`hjbench.training.Budget` or a dict).
        beta: softplus sharpness of the ICNN (paper: 5).
        warmup_fraction: fraction in [0, 1) of the steps spent in the l1 warm-up.
        gamma: initial proximal-matching width (relative RMS units, module docstring) > 0.
        gamma_stages: number >= 1 of proximal-matching stages, gamma halved at each.
            (These three only with train_on="prox_pairs"; None there means 0.5, 0.1, 4.)
        solver: inversion solver, one of :data:`baselines.inversion.SOLVERS`.
        tol: gradient tolerance of the inversion (> 0); max_iter: its iteration cap (>= 1).
        alpha: strong-convexity term (>= 0) added in the inversion; biases the prior down.
        backend: training backend, "torch" or "jax".
    """

    provides = frozenset({"prox", "potential", "prior"})
    # tol / max_iter chosen so that a tiny fit has some points converge and some hit the cap
    test_params = {"budget": {"steps": 200, "width": 32, "depth": 1, "lr": 3e-2, "lr_decay": 0.5},
                   "tol": 1e-3, "max_iter": 6}

    def __init__(self, *, train_on: str = "prox_pairs", budget: Budget | dict | None = None,
                 beta: float = 5.0, warmup_fraction: float | None = None,
                 gamma: float | None = None, gamma_stages: int | None = None,
                 solver: str = "lbfgs", tol: float = 1e-5, max_iter: int = 500, alpha: float = 0.0,
                 backend: Literal["torch", "jax"] = "torch"):
        check_choice("train_on", train_on, ("prox_pairs", "values"))
        self.budget = Budget.coerce(budget)
        check_positive("beta", beta)
        given = {k: v for k, v in zip(_SCHEDULE, (warmup_fraction, gamma, gamma_stages)) if v is not None}
        if train_on == "values" and given:
            raise ConfigError(f"{', '.join(f'{k}={v!r}' for k, v in given.items())} applies only to "
                              "train_on='prox_pairs'; with train_on='values' leave it None")
        if warmup_fraction is not None:
            check_positive("warmup_fraction", warmup_fraction, strict=False, upper=1.0)
        if gamma_stages is not None:
            check_int("gamma_stages", gamma_stages, minimum=1)
        check_solver(solver, tol, max_iter, alpha)
        check_choice("backend", backend, BACKENDS)
        self.train_on, self.beta = train_on, beta
        self.warmup_fraction, self.gamma, self.gamma_stages = warmup_fraction, gamma, gamma_stages
        self.solver, self.tol, self.max_iter, self.alpha = solver, tol, max_iter, alpha
        self.backend = backend
        self._loss()   # validates gamma (> 0) through LossSpec

    @property
    def data_regime(self) -> str:
        return self.train_on

    def skip(self, *, device, dim: int) -> str | None:
        return backend_skip_reason(self.backend)

    def _loss(self) -> LossSpec:
        if self.train_on == "values":
            return LossSpec("mse")
        sched = {k: (_SCHEDULE_DEFAULTS[k] if getattr(self, k) is None else getattr(self, k))
                 for k in _SCHEDULE}
        return LossSpec("prox_matching", scale=1.0, **sched)

    def _fit_ensemble(self, members, datasets, generators) -> None:
        """All members' potentials as one ensemble; prox-pair potentials pinned at psi(0) = 0."""
        x = torch.stack([d.x for d in datasets])
        if self.train_on == "values":
            t = torch.tensor([d.t for d in datasets], dtype=x.dtype, device=x.device)
            psi = 0.5 * (x * x).sum(-1) - t[:, None] * torch.stack([d.S for d in datasets])
            values, grads = psi, None
        else:
            values, grads = None, torch.stack([d.prox for d in datasets])
        potentials, logs = fit_potentials(x, values, grads, loss=self._loss(), budget=self.budget,
                                          beta=self.beta, generators=generators,
                                          backend=self.backend)
        for member, potential, log in zip(members, potentials, logs):
            if self.train_on == "prox_pairs":
                with torch.no_grad():
                    zero = torch.zeros(1, x.shape[-1], dtype=x.dtype, device=x.device)
                    potential.m = -potential.s_out * float(potential.net(zero)[0])
            member.potential_ = potential
            member.training_, member.backend_ = {"fit": log}, self.backend
            member._make_solver_copy()

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
        return {"potential": copy.deepcopy(self.potential_.state_dict())}

    def _load_state(self, state: dict[str, Any]) -> None:
        sd = state["potential"]
        ref = sd["net.w"]
        potential = ScaledICNN(ICNN(self.dim_, self.budget.width, self.budget.depth, self.beta,
                                    dtype=ref.dtype))
        potential.load_state_dict(sd)
        self.potential_ = potential.to(ref.device).requires_grad_(False)
        self._make_solver_copy()


methods.register("lpn", LearnedProximalNetwork, train_on="prox_pairs", **_SCHEDULE_DEFAULTS,
                 summary="Learned Proximal Network (Fang et al. 2024): ICNN on prox pairs "
                         "(l1 warm-up, proximal matching), prior by post-hoc inversion")
methods.register("lpn_values", LearnedProximalNetwork, train_on="values",
                 summary="Learned Proximal Network trained on HJ values (MSE), prior by post-hoc inversion")
