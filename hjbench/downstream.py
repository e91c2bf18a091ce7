"""Inverse problems downstream: a learned prox used inside proximal solvers (BRIEF section 8).

The problem.  Signals x in R^n with i.i.d. Laplace(0, 1) entries (density prop. to exp(-||x||_1),
so the MAP prior is the l1 family's J = ||.||_1), measured as y = A x + sigma e, e standard
normal, A (m, n). The MAP estimate minimises

    F(x) = f(x) + J(x),        f(x) = ||A x - y||^2 / (2 sigma^2),   grad f = A^T (A x - y) / sigma^2.

Denoising is A = I (then the minimiser is prox_{sigma^2 J}(y)); compressed sensing is a
Gaussian A with m < n, rescaled to a chosen spectral norm.

The solvers only call ``prox(v) = prox_{tJ}(v)`` at the fixed time t a method was trained for
(batched over signals, shape (B, n)):

* ``"ista"`` / ``"fista"``: proximal gradient with step t, x+ = prox(z - t grad f(z)), z = x for
  ISTA; FISTA extrapolates z with Beck-Teboulle momentum, restarted per signal when
  <z - x+, x+ - x> > 0 (O'Donoghue and Candes). Needs t L <= 1, L = ||A||_2^2 / sigma^2; checked.
* ``"admm"``: x = (A^T A / sigma^2 + I/t)^{-1} (A^T y / sigma^2 + (z - u)/t), z = prox(x + u),
  u += x - z. Valid for every t > 0 (the prox at time t is the z-step with penalty 1/t).

Each returns a :class:`~hjbench.solve.Solution` per signal (each signal stops when its
proximal-gradient step ||x+ - z|| (ADMM: max of ||x - z|| and ||z - z_prev||) falls to ``tol``): value = the estimate, iterations,
converged, residual = the fixed-point residual ||x - prox(x - t grad f(x))|| (ADMM: the larger
of primal ||x - z|| and dual ||z - z_prev|| residuals). A learned prox need not be
nonexpansive, so non-convergence is a recorded outcome, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .errors import ConfigError, check_choice, check_int, check_positive
from .solve import Solution

__all__ = ["InverseProblem", "laplace_problem", "solve", "compare", "SOLVERS"]

SOLVERS = ("ista", "fista", "admm")
Prox = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class InverseProblem:
    """y = A x_true + sigma e for a batch of signals: A (m, n), y (B, m), x_true (B, n)."""

    A: torch.Tensor
    y: torch.Tensor
    x_true: torch.Tensor
    sigma: float

    @property
    def lipschitz(self) -> float:
        """L = ||A||_2^2 / sigma^2, the Lipschitz constant of grad f."""
        return float(torch.linalg.matrix_norm(self.A, 2)) ** 2 / self.sigma ** 2

    def grad_f(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.A.T - self.y) @ self.A / self.sigma ** 2


def laplace_problem(dim: int, n_signals: int, *, sigma: float, n_measurements: int | None = None,
                    a_norm: float = 1.0, generator: torch.Generator,
                    dtype: torch.dtype = torch.float64) -> InverseProblem:
    """Laplace(0, 1) signals, Gaussian noise of std ``sigma``; A = I when ``n_measurements`` is
    None (denoising), else a Gaussian (n_measurements, dim) matrix scaled to ||A||_2 = a_norm."""
    check_int("dim", dim)
    check_int("n_signals", n_signals)
    check_positive("sigma", sigma)
    check_positive("a_norm", a_norm)
    sign = torch.where(torch.rand(n_signals, dim, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
    x = sign * -torch.log1p(-torch.rand(n_signals, dim, generator=generator, dtype=torch.float64))
    if n_measurements is None:
        A = torch.eye(dim, dtype=torch.float64)
    else:
        check_int("n_measurements", n_measurements)
        A = torch.randn(n_measurements, dim, generator=generator, dtype=torch.float64)
        A = A * (a_norm / torch.linalg.matrix_norm(A, 2))
    noise = torch.randn(n_signals, A.shape[0], generator=generator, dtype=torch.float64)
    y = x @ A.T + sigma * noise
    return InverseProblem(A.to(dtype), y.to(dtype), x.to(dtype), float(sigma))


def _apply(prox: Prox, v: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return prox(v).to(v.dtype)


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
            # Beck-Teboulle momentum with gradient restart (O'Donoghue-Candes) per signal
            restart = (gap * (x - x_prev)).sum(-1) < 0
            m_new = (1 + torch.sqrt(1 + 4 * momentum ** 2)) / 2
            beta = torch.where(restart, 0.0, (momentum - 1) / m_new)
            momentum = torch.where(restart, torch.ones_like(m_new), m_new)
            z = torch.where(active[:, None], x + beta[:, None] * (x - x_prev), x)
        else:
            z = x
        if not bool(active.any()):
            break
    residual = torch.linalg.vector_norm(x - _apply(prox, x - t * problem.grad_f(x)), dim=-1)
    return Solution(value=x, converged=~active, iterations=iterations, residual=residual)


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
          max_iter: int = 1000, tol: float = 1e-6) -> Solution:
    """MAP estimate argmin_x ||A x - y||^2 / (2 sigma^2) + J(x) using ``prox`` = prox_{tJ}.

    Args:
        prox: callable (B, n) -> (B, n), the (exact or learned) prox_{tJ}.
        problem: the :class:`InverseProblem`.
        t: the prox time of ``prox``; the proximal-gradient step (needs t L <= 1), the ADMM
            penalty 1/t.
        solver: one of :data:`SOLVERS`.
        max_iter, tol: iteration cap and per-signal stopping tolerance.
    """
    t = check_positive("t", t)
    check_choice("solver", solver, SOLVERS)
    check_int("max_iter", max_iter)
    tol = check_positive("tol", tol)
    if solver == "admm":
        return _admm(prox, problem, t, max_iter, tol)
    L = problem.lipschitz
    if t * L > 1 + 1e-9:
        raise ConfigError(f"t={t}: proximal gradient with step t needs t * ||A||^2 / sigma^2 <= 1, "
                          f"got {t * L:.3g}; use solver='admm' or a larger sigma")
    return _prox_gradient(prox, problem, t, max_iter, tol, accelerated=solver == "fista")


def compare(prox: Prox, exact_prox: Prox, problem: InverseProblem, *, t: float,
            **solver_kw) -> dict[str, float | int]:
    """Solve with a method's prox and with the exact one; errors are mean squared over signals.

    Returns ``rel_error_vs_exact`` (sum ||x_m - x_e||^2 / sum ||x_e||^2), ``mse_vs_truth`` and
    ``exact_mse_vs_truth`` (per coordinate), mean ``iterations`` / ``exact_iterations``, and
    ``n_failed`` / ``exact_n_failed`` (signals whose solve did not converge).
    """
    ours = solve(prox, problem, t=t, **solver_kw)
    ref = solve(exact_prox, problem, t=t, **solver_kw)
    diff = ((ours.value - ref.value) ** 2).sum()
    scale = (ref.value ** 2).sum()
    return {
        "rel_error_vs_exact": float(diff / scale) if float(scale) > 0 else math.nan,
        "mse_vs_truth": float(((ours.value - problem.x_true) ** 2).mean()),
        "exact_mse_vs_truth": float(((ref.value - problem.x_true) ** 2).mean()),
        "iterations": float(ours.iterations.double().mean()),
        "exact_iterations": float(ref.iterations.double().mean()),
        "n_failed": ours.n_failed,
        "exact_n_failed": ref.n_failed,
    }
