"""Post-hoc inversion of a convex potential (BRIEF section 5, Learned Proximal Networks).

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
  where differences of values drown in rounding (:func:`_line_search`), converged points
  retired from the batch; optionally a first phase on a float32 evaluation (``coarse``), which
  is twice as cheap on CPUs and GPUs alike.
* ``"newton_cg"``: all points at once: Newton steps (H + mu I) d = -grad phi_y solved by batched
  conjugate gradient on Hessian-vector products (``hvp``), damping mu = min(||grad phi_y||, 1) / 10
  (vanishes at the solution, so convergence is fast, while flat directions of f stay solvable),
  inexact inner tolerance min(0.5, ||grad phi_y||^(1/2)) ||grad phi_y||, the same line search.
"""

from __future__ import annotations

from typing import Callable

import torch

from hjbench.errors import ConfigError, check_choice, check_int, check_points, check_positive
from hjbench.solve import Solution

__all__ = ["SOLVERS", "check_solver", "invert"]

SOLVERS = ("cg_per_point", "lbfgs", "newton_cg")
ValueAndGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Hvp = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_HISTORY = 10          # L-BFGS memory
_MAX_LS = 30           # line-search trials per iteration
_C1, _C2 = 1e-4, 0.4   # Armijo and strong-Wolfe curvature constants (SciPy's fmin_cg values)
_MAX_INNER = 50        # Newton-CG inner iterations


def check_solver(solver: str, tol: float, max_iter: int, alpha: float) -> None:
    """Validate inversion settings; one-line ConfigError naming the culprit."""
    check_choice("solver", solver, SOLVERS)
    check_positive("tol", tol)
    check_int("max_iter", max_iter, minimum=1)
    check_positive("alpha", alpha, strict=False)


class _Objective:
    """phi_y(x) = f(x) + alpha q(x) - <x, y> row by row: value (B,), gradient (B, dim), hvp."""

    def __init__(self, value_and_grad: ValueAndGrad, hvp: Hvp | None, alpha: float):
        self.value_and_grad, self._hvp, self.alpha = value_and_grad, hvp, alpha

    def __call__(self, x, y):
        f, g = self.value_and_grad(x)
        f, g = f.to(x.dtype), g.to(x.dtype)
        return (f + 0.5 * self.alpha * (x * x).sum(-1) - (x * y).sum(-1),
                g + self.alpha * x - y)

    def hvp(self, x, v):
        return self._hvp(x, v) + self.alpha * v

    @staticmethod
    def slack(f):
        """Armijo slack for rounding: values of phi are only known to a few ulps of |phi|."""
        return 8 * torch.finfo(f.dtype).eps * (1 + f.abs())


def _line_search(obj, x, y, f, d, gd):
    """Batched backtracking from step 1, per point.

    A step s is accepted if it satisfies Armijo (with rounding slack) or if the directional
    derivative there is still <= |gd| / 2: phi_y is convex, so phi_y then decreased along the
    whole step (on a quadratic: by at least 3/4 of the best decrease), which stays decidable
    when differences of values drown in rounding (float32, large |phi_y|). Rejected steps
    shrink by a safeguarded secant on the derivative, s <- s gd / (gd - d'(s)) in [0.1 s, 0.5 s].
    A step that leaves x unchanged in floating point counts as a failure.
    Returns (step, f_new, g_new, ok).
    """
    B = x.shape[0]
    step = torch.ones(B, dtype=x.dtype, device=x.device)
    f_new, g_new = f.clone(), torch.zeros_like(x)
    ok = torch.zeros(B, dtype=torch.bool, device=x.device)
    todo = torch.arange(B, device=x.device)
    for _ in range(_MAX_LS):
        s = step[todo]
        ft, gt = obj(x[todo] + s[:, None] * d[todo], y[todo])
        g0 = gd[todo]
        dt = (gt * d[todo]).sum(-1)
        armijo = ft <= f[todo] + _C1 * s * g0 + _Objective.slack(f[todo])
        acc = (armijo | (dt <= -0.5 * g0)) & torch.isfinite(ft) & torch.isfinite(dt)
        acc &= ((s[:, None] * d[todo]) + x[todo] != x[todo]).any(-1)
        done = todo[acc]
        f_new[done], g_new[done], ok[done] = ft[acc], gt[acc], True
        ratio = torch.nan_to_num(g0 / (g0 - dt), nan=0.5).clamp(0.1, 0.5)
        step[todo[~acc]] = (s * ratio)[~acc]
        todo = todo[~acc]
        if todo.numel() == 0:
            break
    return step, f_new, g_new, ok


def _two_loop(g, st, p):
    """L-BFGS direction H g per point; slot p is written next, so p - 1 holds the newest pair
    of every point. Empty slots have rho = 0 and act as the identity."""
    m = st["S"].shape[1]
    slots = [(p - 1 - i) % m for i in range(m)]          # newest to oldest
    q, a = g.clone(), []
    for k in slots:
        a.append(st["rho"][:, k] * (st["S"][:, k] * q).sum(-1))
        q -= a[-1][:, None] * st["Y"][:, k]
    r = st["gamma"][:, None] * q
    for ai, k in zip(reversed(a), reversed(slots)):
        r += st["S"][:, k] * (ai - st["rho"][:, k] * (st["Y"][:, k] * r).sum(-1))[:, None]
    return r


def _rotate(st):
    """Rotate every point's ring buffer so that its next slot is 0 (one shared pointer)."""
    B, m, n = st["S"].shape
    if m and bool((st["ptr"] != 0).any()):
        order = (st["ptr"][:, None] + torch.arange(m, device=st["ptr"].device)) % m
        for key in ("S", "Y"):
            st[key] = st[key].gather(1, order[:, :, None].expand(B, m, n))
        st["rho"] = st["rho"].gather(1, order)
    st["ptr"] = torch.zeros_like(st["ptr"])
    return st


def _start(obj, x, y, tol, max_iter, newton):
    """Solver state of every point: iterate, objective, L-BFGS memory, per-point tol and cap."""
    B, n = x.shape
    long = dict(dtype=torch.long, device=x.device)
    st = {"x": x, "y": y, "tol": tol.expand(B).clone(), "budget": torch.full((B,), max_iter, **long),
          "iters": torch.zeros(B, **long), "fails": torch.zeros(B, **long),
          "ptr": torch.zeros(B, **long), "gamma": x.new_ones(B)}
    hist = 0 if newton else _HISTORY
    st["S"], st["Y"], st["rho"] = x.new_zeros(B, hist, n), x.new_zeros(B, hist, n), x.new_zeros(B, hist)
    st["f"], st["g"] = obj(x, y)
    return st


def _batched(obj, st, newton):
    """L-BFGS (newton=False) or damped Newton-CG over every point of state ``st`` at once.

    Points leave the batch when their residual is <= their tol, their iteration count reaches
    their budget, their line search failed twice in a row, or they became non-finite.
    """
    out = {k: v.clone() for k, v in st.items()}
    st = dict(_rotate(dict(st)), idx=torch.arange(st["x"].shape[0], device=st["x"].device))
    tiny, p = torch.finfo(st["x"].dtype).tiny, 0
    while st["idx"].numel():
        st["ptr"].fill_(p)
        gn = st["g"].norm(dim=-1)
        stop = ((gn <= st["tol"]) | ~torch.isfinite(gn) | ~torch.isfinite(st["f"])
                | (st["fails"] >= 2) | (st["iters"] >= st["budget"]))
        if stop.any():
            for k, v in out.items():
                v[st["idx"][stop]] = st[k][stop]
            st = {k: v[~stop] for k, v in st.items()}
            gn = gn[~stop]
            if not st["idx"].numel():
                break
        st["iters"] += 1
        xk, g = st["x"], st["g"]
        d = _newton_direction(obj, xk, g, gn) if newton else -_two_loop(g, st, p)
        gd = (g * d).sum(-1)
        bad = ~(gd < 0)
        d[bad], gd[bad] = -g[bad], -(gn[bad] ** 2)
        step, f_new, g_new, ok = _line_search(obj, xk, st["y"], st["f"], d, gd)
        s = torch.where(ok[:, None], step[:, None] * d, torch.zeros_like(d))
        if not newton:
            yv = g_new - g
            sy = (s * yv).sum(-1)
            upd = ok & (sy > torch.finfo(sy.dtype).eps * s.norm(dim=-1) * yv.norm(dim=-1))
            # every point writes slot p (an empty pair where the update is skipped)
            st["S"][:, p] = torch.where(upd[:, None], s, 0.0)
            st["Y"][:, p] = torch.where(upd[:, None], yv, 0.0)
            st["rho"][:, p] = torch.where(upd, 1 / sy.clamp_min(tiny), 0.0)
            p = (p + 1) % _HISTORY
            st["gamma"] = torch.where(upd, sy / (yv * yv).sum(-1).clamp_min(tiny), st["gamma"])
            # a failed line search forgets the history (next try: steepest descent)
            for key in ("S", "Y", "rho"):
                st[key][~ok] = 0
            st["gamma"] = torch.where(ok, st["gamma"], 1.0)
        st["fails"] = torch.where(ok, 0, st["fails"] + 1)
        st["x"] = xk + s
        st["f"] = torch.where(ok, f_new, st["f"])
        st["g"] = torch.where(ok[:, None], g_new, g)
    return out


def _newton_direction(obj, x, g, gn):
    """Solve (H + mu I) d = -g by batched CG to tolerance eta ||g||, per point."""
    mu = 0.1 * gn.clamp(max=1.0)[:, None]
    target = (gn.sqrt().clamp(max=0.5) * gn) ** 2
    d, r = torch.zeros_like(g), -g
    p, rr = r.clone(), (r * r).sum(-1)
    live = rr > target
    for _ in range(min(_MAX_INNER, 2 * x.shape[1] + 2)):
        if not live.any():
            break
        Ap = obj.hvp(x, p) + mu * p
        pAp = (p * Ap).sum(-1)
        live = live & (pAp > 0)
        a = torch.where(live, rr / pAp.clamp_min(1e-300), 0.0)
        d = d + a[:, None] * p
        r = r - a[:, None] * Ap
        rr_new = (r * r).sum(-1)
        beta = torch.where(live, rr_new / rr.clamp_min(1e-300), 0.0)
        p = torch.where(live[:, None], r + beta[:, None] * p, p)
        rr = torch.where(live, rr_new, rr)
        live = live & (rr > target)
    return torch.where((d == 0).all(-1, keepdim=True), -g, d)


def _wolfe_1d(phi, f0, d0, slack, s):
    """Strong-Wolfe step along one line from trial step s (floats): bracket by doubling, zoom
    by a safeguarded secant on the derivative."""
    lo, f_lo, d_lo, pay_lo = 0.0, f0, d0, None
    hi = d_hi = None
    for _ in range(_MAX_LS):
        f, df, pay = phi(s)
        if not (f <= f0 + _C1 * s * d0 + slack) or f > f_lo + slack:
            hi, d_hi = s, df
        elif abs(df) <= -_C2 * d0:
            return s, pay
        elif df > 0:
            hi, d_hi = s, df
        else:
            lo, f_lo, d_lo, pay_lo = s, f, df, pay
        if hi is None:
            s = 2.0 * s
            continue
        width = hi - lo
        sec = lo - d_lo * width / (d_hi - d_lo) if d_hi is not None and d_hi > d_lo else lo + width / 2
        s = min(max(sec, lo + 0.1 * width), hi - 0.1 * width)
    return (lo, pay_lo) if pay_lo is not None else (0.0, None)


def _cg_per_point(obj, x0, y, tol, max_iter):
    """Polak-Ribiere+ nonlinear CG, one query point at a time (the LPN authors' reference)."""
    out, iters = x0.clone(), torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)
    for i in range(x0.shape[0]):
        x, yi = x0[i:i + 1].clone(), y[i:i + 1]
        f, g = obj(x, yi)
        d, restarted = -g, True
        f_old = float(f) + float(g.norm()) / 2   # first trial step min(1, 1.01 / ||g||)
        for _ in range(max_iter):
            gg = float((g * g).sum())
            if not gg ** 0.5 > tol:     # converged, or NaN: stop either way
                break
            iters[i] += 1
            gd = float((g * d).sum())
            if not gd < 0:
                d, gd, restarted = -g, -gg, True
            # initial step from the last decrease, as SciPy: min(1, 2.02 (f - f_old) / <g, d>)
            s0 = min(1.0, 2.02 * (float(f) - f_old) / gd) if float(f) < f_old else 1.0

            def phi(s, x=x, d=d, yi=yi):
                ft, gt = obj(x + s * d, yi)
                return float(ft), float((gt * d).sum()), (ft, gt)

            s, pay = _wolfe_1d(phi, float(f), gd, float(_Objective.slack(f)), s0)
            if pay is None:             # no acceptable step: restart once, then give up
                if restarted:
                    break
                d, restarted = -g, True
                continue
            x, f_old = x + s * d, float(f)
            f, g_new = pay
            beta = max(0.0, float((g_new * (g_new - g)).sum()) / gg)
            d, g, restarted = -g_new + beta * d, g_new, False
        out[i] = x[0]
    return out, iters


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
    check_solver(solver, tol, max_iter, alpha)
    check_positive("coarse_rtol", coarse_rtol)
    check_points("y", y, y.shape[-1] if y.ndim else 1)
    if solver == "newton_cg" and hvp is None:
        raise ConfigError("solver='newton_cg' needs hvp (Hessian-vector products); pass hvp= "
                          "or choose solver='lbfgs'")
    if coarse is not None and solver != "lbfgs":
        raise ConfigError(f"coarse= is used by solver='lbfgs' only, got solver={solver!r}; "
                          "drop coarse or choose solver='lbfgs'")
    batch, dim = y.shape[:-1], y.shape[-1]
    yf = y.detach().reshape(-1, dim)
    start = yf.clone() if x0 is None else check_points("x0", x0, dim).detach().reshape(-1, dim).to(yf)
    if start.shape != yf.shape:
        raise ConfigError(f"x0 has shape {tuple(x0.shape)}; it must match y {tuple(y.shape)}")
    obj = _Objective(value_and_grad, hvp, float(alpha))
    tol_t = torch.tensor(float(tol), dtype=yf.dtype, device=yf.device)
    with torch.no_grad():
        if yf.shape[0] == 0:
            x, iters = start, torch.zeros(0, dtype=torch.long, device=yf.device)
        elif solver == "cg_per_point":
            x, iters = _cg_per_point(obj, start, yf, tol, max_iter)
        else:
            newton = solver == "newton_cg"
            if coarse is not None:
                rough, y32 = _Objective(coarse, None, float(alpha)), yf.float()
                loose = (coarse_rtol * (1 + y32.norm(dim=-1))).clamp_min(tol)
                st = _batched(rough, _start(rough, start.float(), y32, loose, max_iter, newton), newton)
                st = {k: (v.to(yf.dtype) if v.is_floating_point() else v) for k, v in st.items()}
                st["y"], (st["f"], st["g"]) = yf, obj(st["x"], yf)
                st["tol"], st["fails"] = tol_t.expand_as(st["tol"]).clone(), torch.zeros_like(st["fails"])
            else:
                st = _start(obj, start, yf, tol_t, max_iter, newton)
            st = _batched(obj, st, newton)
            x, iters = st["x"], st["iters"]
        # the state holds f and grad f of its own iterate (steps are taken only when accepted)
        phi, grad = obj(x, yf) if solver == "cg_per_point" or yf.shape[0] == 0 else (st["f"], st["g"])
        residual = grad.norm(dim=-1)
        converged = (residual <= tol) & torch.isfinite(phi) & torch.isfinite(x).all(-1)
    return Solution(value=(-phi).reshape(batch), argument=x.reshape(*batch, dim),
                    converged=converged.reshape(batch), iterations=iters.reshape(batch),
                    residual=residual.reshape(batch))
