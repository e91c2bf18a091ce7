"""Post-hoc inversion of a convex potential (docs/method.md section 5, Learned Proximal Networks).

For a convex potential f (argument ``value_and_grad``) and query points y, solve

    x*(y) = argmin_x  phi_y(x),    phi_y(x) = f(x) + (alpha/2) ||x||^2 - <x, y>,

so that grad f(x*) + alpha x* = y, and return the conjugate value

    f_alpha^*(y) = <x*, y> - f(x*) - (alpha/2) ||x*||^2      (Solution.value, shape B)

with ``argument`` x* (shape B + (dim,)), the residual ||grad f(x*) + alpha x* - y|| (the
optimality residual of the problem solved; ``||grad f(x*) - y||`` when alpha = 0), the
iterations used and ``converged = residual <= tol`` (and everything finite), judged once, on
the final iterate, the same way for every solver. A point that hit the iteration cap, stalled
in its line search or ran off to infinity (y outside the range of grad f, where phi_y is
unbounded below) is reported ``converged=False`` with its last iterate: never kept as fine.

Strong convexity: alpha > 0 makes phi_y strongly convex, so a minimiser exists for every y, at
a price. The value returned is (f + alpha q)^*(y) = min_z { f^*(z) + ||y - z||^2 / (2 alpha) },
the Moreau envelope of f^* = g: it is <= g(y) everywhere, with a bias of order
alpha ||grad g(y)||^2 / 2 where g is smooth, and it stays finite (so it hides, rather than
fixes, queries outside the range of grad f).

Solvers (``solver``):

* ``"cg_per_point"``: the LPN authors' reference: one solve per query point in a Python loop,
  nonlinear conjugate gradient (Polak-Ribiere+, as SciPy's ``fmin_cg`` that they call) with a
  strong-Wolfe line search, started at x0 = y, gradient tolerance ``tol`` (their 1e-5;
  SciPy measures it in the max-norm, we in the Euclidean norm, which is stricter).
* ``"lbfgs"``: all query points at once: L-BFGS with a per-point memory of the last 10 pairs,
  per-point steps from a batched backtracking line search that trusts directional derivatives
  where differences of values drown in rounding, converged points retired from the batch;
  optionally a first phase on a float32 evaluation (``coarse``), which is twice as cheap on
  CPUs and GPUs alike.
* ``"newton_cg"``: all points at once: Newton steps (H + mu I) d = -grad phi_y solved by batched
  conjugate gradient on Hessian-vector products (``hvp``), damping mu = min(||grad phi_y||, 1) / 10
  (vanishes at the solution, so convergence is fast, while flat directions of f stay solvable),
  inexact inner tolerance min(0.5, ||grad phi_y||^(1/2)) ||grad phi_y||, the same line search.

Code: the per-point reference is :mod:`baselines._cg_per_point`, the batched L-BFGS and
Newton-CG iterations and their line search :mod:`baselines._batched_solvers`; this module
validates the settings, lays out the queries and judges the result.
"""

from __future__ import annotations

import torch

from hjbench.errors import ConfigError, check_choice, check_int, check_points, check_positive
from hjbench.solution import Solution

from ._batched_solvers import Hvp, Objective, ValueAndGrad, batched, start_state
from ._cg_per_point import cg_per_point

__all__ = ["SOLVERS", "check_solver", "invert"]

SOLVERS = ("cg_per_point", "lbfgs", "newton_cg")


def check_solver(solver: str, tol: float, max_iter: int, alpha: float) -> None:
    """Validate inversion settings; one-line ConfigError naming the culprit."""
    check_choice("solver", solver, SOLVERS)
    check_positive("tol", tol)
    check_int("max_iter", max_iter, minimum=1)
    check_positive("alpha", alpha, strict=False)


def _check_invert(y, solver, tol, max_iter, alpha, hvp, coarse, coarse_rtol) -> None:
    """Every setting of :func:`invert`, checked before any work; ConfigError naming the fix."""
    check_solver(solver, tol, max_iter, alpha)
    check_positive("coarse_rtol", coarse_rtol)
    check_points("y", y, y.shape[-1] if y.ndim else 1)
    if solver == "newton_cg" and hvp is None:
        raise ConfigError("solver='newton_cg' needs hvp (Hessian-vector products); pass hvp= "
                          "or choose solver='lbfgs'")
    if coarse is not None and solver != "lbfgs":
        raise ConfigError(f"coarse= is used by solver='lbfgs' only, got solver={solver!r}; "
                          "drop coarse or choose solver='lbfgs'")


def _rows(y: torch.Tensor, x0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The queries as rows (B, dim) and the start points (default: y itself), same shape."""
    dim = y.shape[-1]
    yf = y.detach().reshape(-1, dim)
    start = yf.clone() if x0 is None else check_points("x0", x0, dim).detach().reshape(-1, dim).to(yf)
    if start.shape != yf.shape:
        raise ConfigError(f"x0 has shape {tuple(x0.shape)}; it must match y {tuple(y.shape)}")
    return yf, start


def _solve_batched(obj, start, yf, *, tol, max_iter, newton, coarse, coarse_rtol):
    """L-BFGS or Newton-CG over all rows; with ``coarse``, a float32 phase first that stops at
    the loose residual max(tol, coarse_rtol (1 + ||y||)) and hands its L-BFGS memory on.
    Returns (x, iterations, phi(x), grad phi(x)) of the final iterates."""
    tol_t = torch.tensor(float(tol), dtype=yf.dtype, device=yf.device)
    if coarse is not None:
        rough, y32 = Objective(coarse, None, obj.alpha), yf.float()
        loose = (coarse_rtol * (1 + y32.norm(dim=-1))).clamp_min(tol)
        st = batched(rough, start_state(rough, start.float(), y32, loose, max_iter, newton), newton)
        st = {k: (v.to(yf.dtype) if v.is_floating_point() else v) for k, v in st.items()}
        st["y"], (st["f"], st["g"]) = yf, obj(st["x"], yf)
        st["tol"], st["fails"] = tol_t.expand_as(st["tol"]).clone(), torch.zeros_like(st["fails"])
    else:
        st = start_state(obj, start, yf, tol_t, max_iter, newton)
    st = batched(obj, st, newton)
    # the state holds f and grad f of its own iterate (steps are taken only when accepted)
    return st["x"], st["iters"], st["f"], st["g"]


def invert(value_and_grad: ValueAndGrad, y: torch.Tensor, *, hvp: Hvp | None = None,
           solver: str = "lbfgs", tol: float = 1e-5, max_iter: int = 500, alpha: float = 0.0,
           x0: torch.Tensor | None = None, coarse: ValueAndGrad | None = None,
           coarse_rtol: float = 1e-5) -> Solution:
    """Solve x* = argmin_x f(x) + (alpha/2)||x||^2 - <x, y> for every row of y.

    Args:
        value_and_grad: x (B, dim) -> (f(x) (B,), grad f(x) (B, dim)), f convex; row-wise.
        y: query points, shape (..., dim); never modified.
        hvp: (x, v) -> Hessian of f at x applied to v, row-wise; needed by ``"newton_cg"``.
        solver, tol, max_iter, alpha: see the module docstring; ``tol`` bounds the Euclidean
            residual ||grad f(x*) + alpha x* - y||.
        x0: starting points (default y, as the LPN authors), shape of y.
        coarse: optional float32 evaluation of the same f (e.g. the float32 network whose
            float64 copy is ``value_and_grad``), ``"lbfgs"`` only: the solve runs in float32 on
            it until the residual is <= max(tol, coarse_rtol (1 + ||y||)), far above float32
            rounding, then goes on with ``value_and_grad`` and the same L-BFGS memory.
            Iterations count both phases; convergence, residual and value are judged on
            ``value_and_grad`` alone.

    Returns:
        Solution with value f_alpha^*(y) (shape ...), argument x* (shape (..., dim)),
        converged, iterations and residual per point.
    """
    _check_invert(y, solver, tol, max_iter, alpha, hvp, coarse, coarse_rtol)
    batch, dim = y.shape[:-1], y.shape[-1]
    yf, start = _rows(y, x0)
    obj = Objective(value_and_grad, hvp, float(alpha))
    with torch.no_grad():
        if yf.shape[0] and solver != "cg_per_point":
            x, iters, phi, grad = _solve_batched(obj, start, yf, tol=tol, max_iter=max_iter,
                                                 newton=solver == "newton_cg", coarse=coarse,
                                                 coarse_rtol=coarse_rtol)
        else:
            x, iters = (cg_per_point(obj, start, yf, tol, max_iter) if yf.shape[0]
                        else (start, torch.zeros(0, dtype=torch.long, device=yf.device)))
            phi, grad = obj(x, yf)
        residual = grad.norm(dim=-1)
        converged = (residual <= tol) & torch.isfinite(phi) & torch.isfinite(x).all(-1)
    return Solution(value=(-phi).reshape(batch), argument=x.reshape(*batch, dim),
                    converged=converged.reshape(batch), iterations=iters.reshape(batch),
                    residual=residual.reshape(batch))
