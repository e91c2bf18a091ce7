"""Proximal solvers that call a prox (exact or learned) at its fixed time t (docs/method.md section 8).

Every solver minimises F(x) = f(x) + J(x) of an :class:`~hjbench.tasks.problems.InverseProblem`
(f = ||A x - y||^2 / (2 sigma^2), L = ||A||^2 / sigma^2) and touches J only through
``prox(v) = prox_{tJ}(v)`` (and, for ``"fista_ls"``, a prior value ``prior(v) ~ J(v)``),
batched over signals, shape (B, n). Step sizes are tied to the prox time: for the objective
f + lambda J a proximal step of size s needs prox_{s lambda J}, so with the one prox a method
was fitted for, s lambda = t. The MAP weight is lambda = 1, hence

* ``"ista"`` / ``"fista"``: proximal gradient with step s = t, x+ = prox(z - t grad f(z)); z = x
  for ISTA; FISTA extrapolates z with Beck-Teboulle momentum, restarted per signal when
  <z - x+, x+ - x> > 0 (gradient restart, O'Donoghue and Candes 2015). Valid when t <= 1/L,
  i.e. t ||A||^2 <= sigma^2; refused otherwise (:class:`~hjbench.errors.ConfigError`).
* ``"fista_ls"``: FISTA with a monotone check on F_hat = f + prior (MFISTA, Beck and Teboulle
  2009, with a line search along the step): the extrapolated candidate u = prox(z - t grad f(z))
  is kept if F_hat(u) <= F_hat(x); otherwise momentum restarts, d = prox(x - t grad f(x)) - x,
  and x+ = x + alpha d with the largest alpha in {1, 1/2, ..., 2^-7} that does not increase
  F_hat. For the exact prox of J and t <= 1/L, alpha = 1 always passes (sufficient decrease of
  a proximal gradient step, convex or not); a learned prox that is not a descent step is caught
  by the check. A signal with no decreasing alpha stops, not converged.
* ``"admm"``: x = (A^T A / sigma^2 + I/t)^{-1} (A^T y / sigma^2 + (z - u)/t), z+ = prox(x + u),
  u += x - z+: scaled ADMM with penalty rho = 1/t (the z-step is prox_{J/rho} = prox_{tJ}).
  Valid for every t > 0.

Each returns a :class:`~hjbench.solution.Solution` per signal: value = the estimate, iterations,
converged, residual. A signal stops when its step ||x+ - z|| (t times the gradient mapping;
ADMM: max of primal ||x - z+|| and dual ||z+ - z|| residuals) falls to ``tol`` (absolute,
Euclidean norm per signal). residual = the fixed-point residual ||x - prox(x - t grad f(x))||
for the proximal-gradient solvers, the last max(primal, dual) for ADMM. A learned prox need
not be nonexpansive, so non-convergence is a recorded outcome, never an exception.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import ConfigError, check_choice, check_int, check_positive
from ..solution import Solution
from .problems import InverseProblem

__all__ = ["solve", "SOLVERS", "step_rule"]

SOLVERS = ("ista", "fista", "fista_ls", "admm")
Prox = Callable[[torch.Tensor], torch.Tensor]
_BACKTRACK = 8           # alphas 1, 1/2, ..., 2^-7
_SLACK = 1e-12           # F_hat(u) <= F_hat(x) + slack (1 + |F_hat(x)|): rounding, not descent


def _apply(fn: Prox, v: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return fn(v).to(v.dtype)


def step_rule(problem: InverseProblem, t: float, solver: str) -> str | None:
    """Why ``solver`` cannot take the step t on ``problem`` (t L > 1 for proximal gradient), or None."""
    if solver == "admm":
        return None
    L = problem.lipschitz
    if t * L > 1 + 1e-9:
        return (f"{solver}: step t={t:g} exceeds 1/L = sigma^2/||A||^2 = {1 / L:.3g}; proximal gradient "
                f"with prox_{{tJ}} needs sigma >= sqrt(t) ||A|| (use admm)")
    return None


def _momentum(gap, x, x_prev, momentum):
    """Beck-Teboulle extrapolation weight with gradient restart, per signal."""
    restart = (gap * (x - x_prev)).sum(-1) < 0
    m_new = (1 + torch.sqrt(1 + 4 * momentum ** 2)) / 2
    beta = torch.where(restart, torch.zeros_like(m_new), (momentum - 1) / m_new)
    return beta, torch.where(restart, torch.ones_like(m_new), m_new)


def _prox_gradient(prox, problem, t, max_iter, tol, accelerated):
    y = problem.y
    x = torch.zeros(y.shape[0], problem.A.shape[1], dtype=y.dtype, device=y.device)
    z = x
    momentum = torch.ones(x.shape[0], dtype=y.dtype, device=y.device)
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    iterations = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for _ in range(max_iter):
        x_new = _apply(prox, z - t * problem.grad_f(z))
        gap = x_new - z                      # t times the gradient mapping at z
        step = torch.linalg.vector_norm(gap, dim=-1)
        x_prev, x = x, torch.where(active[:, None], x_new, x)
        iterations += active.long()
        active = active & ~(step <= tol)
        if accelerated:
            beta, momentum = _momentum(gap, x, x_prev, momentum)
            z = torch.where(active[:, None], x + beta[:, None] * (x - x_prev), x)
        else:
            z = x
        if not bool(active.any()):
            break
    residual = torch.linalg.vector_norm(x - _apply(prox, x - t * problem.grad_f(x)), dim=-1)
    return Solution(value=x, converged=~active, iterations=iterations, residual=residual)


def _backtrack(prox, prior, problem, t, x, Fx):
    """From x (R, n): d = prox(x - t grad f(x)) - x and the largest alpha = 2^-k (k < 8) with
    F_hat(x + alpha d) <= F_hat(x). Returns (x+, F_hat(x+), d, found)."""
    d = _apply(prox, x - t * problem.grad_f(x)) - x
    alphas = 0.5 ** torch.arange(_BACKTRACK, dtype=x.dtype, device=x.device)
    cand = x.unsqueeze(1) + alphas[:, None] * d.unsqueeze(1)                       # (R, K, n)
    flat = cand.reshape(-1, x.shape[1])
    sub = InverseProblem(problem.A, problem.y.repeat_interleave(_BACKTRACK, 0), flat, problem.sigma)
    Fc = (sub.f(flat) + _apply(prior, flat)).view(-1, _BACKTRACK)
    ok = Fc <= (Fx + _SLACK * (1 + Fx.abs()))[:, None]
    found = ok.any(-1)
    k = ok.to(torch.int8).argmax(-1)                                                 # first (largest alpha) ok
    rows = torch.arange(x.shape[0], device=x.device)
    x_new = torch.where(found[:, None], cand[rows, k], x)
    return x_new, torch.where(found, Fc[rows, k], Fx), d, found


def _fista_ls(prox, prior, problem, t, max_iter, tol):
    y = problem.y
    x = torch.zeros(y.shape[0], problem.A.shape[1], dtype=y.dtype, device=y.device)
    Fx = problem.f(x) + _apply(prior, x)
    x_prev, z = x, x
    momentum = torch.ones(x.shape[0], dtype=y.dtype, device=y.device)
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    stalled = torch.zeros_like(active)
    iterations = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for _ in range(max_iter):
        u = _apply(prox, z - t * problem.grad_f(z))
        Fu = problem.f(u) + _apply(prior, u)
        keep = Fu <= Fx + _SLACK * (1 + Fx.abs())
        gap, x_new, F_new = u - z, u, Fu
        redo = (~keep & active).nonzero().squeeze(-1)
        if redo.numel():
            sub = InverseProblem(problem.A, y[redo], problem.x_true[redo], problem.sigma)
            xb, Fb, d, found = _backtrack(prox, prior, sub, t, x[redo], Fx[redo])
            x_new, F_new, gap = x_new.index_copy(0, redo, xb), F_new.index_copy(0, redo, Fb), gap.index_copy(0, redo, d)
            stalled = stalled.index_copy(0, redo, ~found & (torch.linalg.vector_norm(d, dim=-1) > tol))
            momentum = momentum.index_fill(0, redo, 1.0)
        step = torch.linalg.vector_norm(gap, dim=-1)
        x_prev, x = x, torch.where(active[:, None], x_new, x)
        Fx = torch.where(active, F_new, Fx)
        iterations += active.long()
        done = step <= tol
        active = active & ~done & ~stalled
        beta, momentum = _momentum(gap, x, x_prev, momentum)
        beta = torch.where(keep, beta, torch.zeros_like(beta))
        z = torch.where(active[:, None], x + beta[:, None] * (x - x_prev), x)
        if not bool(active.any()):
            break
    converged = ~active & ~stalled
    residual = torch.linalg.vector_norm(x - _apply(prox, x - t * problem.grad_f(x)), dim=-1)
    return Solution(value=x, converged=converged, iterations=iterations, residual=residual)


def _admm(prox, problem, t, max_iter, tol):
    A, y, s2 = problem.A, problem.y, problem.sigma ** 2
    n = A.shape[1]
    chol = torch.linalg.cholesky(A.T @ A / s2 + torch.eye(n, dtype=A.dtype, device=A.device) / t)
    Aty = y @ A / s2
    z = torch.zeros(y.shape[0], n, dtype=y.dtype, device=y.device)
    u = torch.zeros_like(z)
    active = torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
    iterations = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
    residual = torch.full((z.shape[0],), math.nan, dtype=y.dtype, device=y.device)
    for _ in range(max_iter):
        x = torch.cholesky_solve((Aty + (z - u) / t).T, chol).T
        z_new = _apply(prox, x + u)
        res = torch.maximum(torch.linalg.vector_norm(x - z_new, dim=-1),
                            torch.linalg.vector_norm(z_new - z, dim=-1))
        keep = active[:, None]
        z, u = torch.where(keep, z_new, z), torch.where(keep, u + x - z_new, u)
        residual = torch.where(active, res, residual)
        iterations += active.long()
        active = active & ~(res <= tol)
        if not bool(active.any()):
            break
    return Solution(value=z, converged=~active, iterations=iterations, residual=residual)


def solve(prox: Prox, problem: InverseProblem, *, t: float, solver: str = "fista",
          max_iter: int = 1000, tol: float = 1e-6, prior: Prox | None = None) -> Solution:
    """MAP estimate argmin_x ||A x - y||^2 / (2 sigma^2) + J(x) using ``prox`` = prox_{tJ}.

    Args:
        prox: callable (B, n) -> (B, n), the (exact or learned) prox_{tJ}.
        problem: the :class:`~hjbench.tasks.problems.InverseProblem`.
        t: the prox time of ``prox``; the proximal-gradient step (needs t L <= 1), the ADMM
            penalty 1/t.
        solver: one of :data:`SOLVERS`.
        max_iter, tol: iteration cap and per-signal stopping tolerance (absolute).
        prior: callable (B, n) -> (B,), the prior value J (or a learned J_hat) that
            ``"fista_ls"`` checks descent with; required for it, ignored otherwise.
    """
    t = check_positive("t", t)
    check_choice("solver", solver, SOLVERS)
    check_int("max_iter", max_iter)
    tol = check_positive("tol", tol)
    if solver == "admm":
        return _admm(prox, problem, t, max_iter, tol)
    reason = step_rule(problem, t, solver)
    if reason is not None:
        raise ConfigError(f"t={t}: {reason}")
    if solver == "fista_ls":
        if prior is None:
            raise ConfigError("prior=None: solver='fista_ls' checks descent on f + J and needs the prior "
                              "value; pass prior=J (callable (B, n) -> (B,)) or use solver='fista'")
        return _fista_ls(prox, prior, problem, t, max_iter, tol)
    return _prox_gradient(prox, problem, t, max_iter, tol, accelerated=solver == "fista")
