"""Generic float64 numerical oracle for the HJ ground truth (docs/method.md sections 2-3).

Every quantity of a prior family is an optimisation problem; this module solves them directly,
batched over points, so that closed forms can be cross-checked and families without one
(the conjugate g) still have a reliable value:

* prox_{tJ}(x) = argmin_z h_x(z),  S(x, t) = min_z h_x(z),  h_x(z) = J(z) + ||x - z||^2/(2t)
  (:func:`prox_numeric`, :func:`S_numeric`; J may be nonconvex: multi-start);
* g(y) = sup_x <x, y> - psi(x)  (:func:`conjugate`; concave maximisation);
* J_bvs(y) = sup_x S(x, t) - ||x - y||^2/(2t)  (:func:`J_bvs_numeric`; concave, since S is
  (1/t)-semiconcave).

The objectives may have kinks at the optimum (l1, neg_l1, min-plus), so the engine
(:func:`minimise`) is BFGS with a weak Wolfe line search, which converges in value on nonsmooth
functions (Lewis and Overton, Math. Program. 141, 2013); the trial steps of a line search are
evaluated in one batched call, and a point whose line search fails restarts along a
gradient-sampling direction. Its status is honest: the residual is the least norm of a convex
combination of gradients taken within a radius r = delta (1 + ||x||) of the returned point
(Goldstein r-stationarity: ||grad|| at smooth optima, and small at a kink only when the point
sits on it), ``converged`` means residual <= tol (1 + ||query point||), and it is False
wherever the iteration cap was hit first. Since values only resolve gradients to about
sqrt(machine epsilon), tol defaults to 1e-7; values are typically accurate to 1e-10 or better.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import ConfigError, check_points, check_positive
from ..solution import Solution
from ._bfgs import minimise

__all__ = ["closed_form", "minimise", "conjugate", "prox_numeric", "S_numeric", "J_bvs_numeric"]

Fn = Callable[[torch.Tensor], torch.Tensor]


def closed_form(value: torch.Tensor, argument: torch.Tensor | None = None) -> Solution:
    """A closed-form result: converged everywhere, 0 iterations, residual 0."""
    shape = value.shape
    return Solution(value=value, argument=argument,
                    converged=torch.ones(shape, dtype=torch.bool, device=value.device),
                    iterations=torch.zeros(shape, dtype=torch.long, device=value.device),
                    residual=torch.zeros_like(value))


def _autograd_fg(fun: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """(f, grad f) from f(x, idx) by autograd on an internal leaf copy (caller tensors untouched)."""
    def fg(x: torch.Tensor, idx: torch.Tensor):
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            val = fun(z, idx)
            (grad,) = torch.autograd.grad(val.sum(), z)
        return val.detach(), grad.detach()
    return fg


def _points(name: str, x) -> torch.Tensor:
    """Check a floating tensor of shape (..., dim) whose dim is read off its last axis."""
    if not isinstance(x, torch.Tensor) or x.ndim == 0:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"{name} must be a torch.Tensor of shape (..., dim) with dim >= 1, got {got}")
    return check_points(name, x, x.shape[-1])


def _flat(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.detach().reshape(-1, dim).to(torch.float64)


def _unflat(sol: Solution, shape: torch.Size, dtype: torch.dtype, value: torch.Tensor) -> Solution:
    b = shape[:-1]
    return Solution(value=value.to(dtype), argument=sol.argument.reshape(shape).to(dtype),
                    converged=sol.converged.reshape(b), iterations=sol.iterations.reshape(b),
                    residual=sol.residual.reshape(b).to(dtype))


def conjugate(psi_fn: Fn, grad_psi_fn: Fn, y: torch.Tensor, dim: int, *, max_iter: int = 300,
              tol: float = 1e-7) -> Solution:
    """g(y) = sup_x <x, y> - psi(x) for convex psi; y of shape (..., dim).

    Minimises psi(x) - <x, y> (gradient grad_psi(x) - y) from x0 = y in float64. Returns value
    g(y) (shape (...)), argument x* (the preimage, grad psi(x*) ~ y, shape (..., dim)) and status.
    """
    y64 = _flat(check_points("y", y, dim), dim)

    def fg(x, idx):
        return psi_fn(x) - (x * y64[idx]).sum(-1), grad_psi_fn(x) - y64[idx]

    sol = minimise(fg, y64.clone(), y64.norm(dim=-1), max_iter=max_iter, tol=tol)
    return _unflat(sol, y.shape, y.dtype, -sol.value.reshape(y.shape[:-1]))


def J_bvs_numeric(S_fn: Fn, y: torch.Tensor, t: float, *, max_iter: int = 300, tol: float = 1e-7) -> Solution:
    """J_bvs(y) = sup_x S(x, t) - ||x - y||^2/(2t), a concave maximisation, from x0 = y.

    ``S_fn`` is differentiated by autograd on internal float64 copies. Value shape (...),
    argument the maximiser x* (= grad g(y)).
    """
    t = check_positive("t", t)
    dim = _points("y", y).shape[-1]
    y64 = _flat(y, dim)
    fg = _autograd_fg(lambda x, i: ((x - y64[i]) ** 2).sum(-1) / (2 * t) - S_fn(x))
    sol = minimise(fg, y64.clone(), y64.norm(dim=-1), max_iter=max_iter, tol=tol)
    return _unflat(sol, y.shape, y.dtype, -sol.value.reshape(y.shape[:-1]))


def _hopf_lax(J_fn: Fn, x: torch.Tensor, t: float, n_starts: int, max_iter: int, tol: float,
              seed: int) -> Solution:
    """min_z J(z) + ||x - z||^2/(2t) from the starts x, 0, x/2 and seeded perturbations of x."""
    t = check_positive("t", t)
    dim = _points("x", x).shape[-1]
    x64 = _flat(x, dim)
    n = x64.shape[0]
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_starts, dim, generator=gen, dtype=torch.float64).to(x64.device)
    spread = t ** 0.5 + x64.norm(dim=-1, keepdim=True) / dim ** 0.5
    starts = [x64, torch.zeros_like(x64), 0.5 * x64] + [x64 + spread * e for e in noise]
    z0 = torch.cat(starts)
    xs = x64.repeat(len(starts), 1)
    fg = _autograd_fg(lambda z, i: J_fn(z) + ((xs[i] - z) ** 2).sum(-1) / (2 * t))
    sol = minimise(fg, z0, xs.norm(dim=-1), max_iter=max_iter, tol=tol)
    vals = sol.value.view(len(starts), n)
    vmin = vals.min(0).values
    # among the starts whose value ties the best (to rounding), prefer converged, then least residual
    tie = vals <= vmin + 1e-12 * (1 + vmin.abs())
    cand = tie & sol.converged.view(len(starts), n)
    cand = torch.where(cand.any(0), cand, tie)
    best = torch.where(cand, sol.residual.view(len(starts), n), torch.full_like(vals, torch.inf)).argmin(0)
    pick = lambda v: v.view(len(starts), n, *v.shape[1:])[best, torch.arange(n)]  # noqa: E731
    return Solution(value=pick(sol.value), argument=pick(sol.argument), converged=pick(sol.converged),
                    iterations=pick(sol.iterations), residual=pick(sol.residual))


def prox_numeric(J_fn: Fn, x: torch.Tensor, t: float, *, n_starts: int = 6, max_iter: int = 300,
                 tol: float = 1e-7, seed: int = 0) -> Solution:
    """prox_{tJ}(x) = argmin_z J(z) + ||x - z||^2/(2t) by multi-start minimisation (nonconvex J).

    Value and argument are the minimiser z*, shape (..., dim); the best of the starts is kept.
    """
    sol = _hopf_lax(J_fn, x, t, n_starts, max_iter, tol, seed)
    return _unflat(sol, x.shape, x.dtype, sol.argument.reshape(x.shape))


def S_numeric(J_fn: Fn, x: torch.Tensor, t: float, *, n_starts: int = 6, max_iter: int = 300,
              tol: float = 1e-7, seed: int = 0) -> Solution:
    """S(x, t) = min_z J(z) + ||x - z||^2/(2t) (Hopf-Lax), value shape (...), argument z*."""
    sol = _hopf_lax(J_fn, x, t, n_starts, max_iter, tol, seed)
    return _unflat(sol, x.shape, x.dtype, sol.value.reshape(x.shape[:-1]))
