"""Batched solvers of the inversion problem (:func:`baselines.inversion.invert`): every query point at once.

For a convex f and query rows y_b (b = 1..B), each point minimises its own objective

    phi_b(x) = f(x) + (alpha/2) ||x||^2 - <x, y_b>         (:class:`Objective`, row by row)

by one of two iterations that share a state dict and a line search:

* L-BFGS (``newton=False``): a per-point ring buffer of the last :data:`HISTORY` pairs
  (s, grad difference), the two-loop recursion for the direction (:func:`two_loop`);
* damped Newton-CG (``newton=True``): (H + mu I) d = -grad phi solved by batched conjugate
  gradient on Hessian-vector products (:func:`newton_direction`).

The step comes from :func:`line_search`, a batched backtracking search that trusts directional
derivatives where differences of values drown in rounding. Points leave the batch as they stop
(:func:`batched`); the caller judges convergence once, on the final iterate. Every function
here runs under the caller's ``torch.no_grad()``; this is a private helper module, not a
baseline (the plug-in scan of :mod:`baselines` skips it).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["ValueAndGrad", "Hvp", "HISTORY", "MAX_LS", "C1", "C2", "Objective", "line_search",
           "start_state", "batched"]

ValueAndGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Hvp = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

HISTORY = 10         # L-BFGS memory
MAX_LS = 30          # line-search trials per iteration
C1, C2 = 1e-4, 0.4   # Armijo and strong-Wolfe curvature constants (SciPy's fmin_cg values)
MAX_INNER = 50       # Newton-CG inner iterations


class Objective:
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


def line_search(obj, x, y, f, d, gd):
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
    for _ in range(MAX_LS):
        s = step[todo]
        ft, gt = obj(x[todo] + s[:, None] * d[todo], y[todo])
        g0 = gd[todo]
        dt = (gt * d[todo]).sum(-1)
        armijo = ft <= f[todo] + C1 * s * g0 + Objective.slack(f[todo])
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


def two_loop(g, st, p):
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


def rotate(st):
    """Rotate every point's ring buffer so that its next slot is 0 (one shared pointer)."""
    B, m, n = st["S"].shape
    if m and bool((st["ptr"] != 0).any()):
        order = (st["ptr"][:, None] + torch.arange(m, device=st["ptr"].device)) % m
        for key in ("S", "Y"):
            st[key] = st[key].gather(1, order[:, :, None].expand(B, m, n))
        st["rho"] = st["rho"].gather(1, order)
    st["ptr"] = torch.zeros_like(st["ptr"])
    return st


def start_state(obj, x, y, tol, max_iter, newton):
    """Solver state of every point: iterate, objective, L-BFGS memory, per-point tol and cap."""
    B, n = x.shape
    long = dict(dtype=torch.long, device=x.device)
    st = {"x": x, "y": y, "tol": tol.expand(B).clone(), "budget": torch.full((B,), max_iter, **long),
          "iters": torch.zeros(B, **long), "fails": torch.zeros(B, **long),
          "ptr": torch.zeros(B, **long), "gamma": x.new_ones(B)}
    hist = 0 if newton else HISTORY
    st["S"], st["Y"], st["rho"] = x.new_zeros(B, hist, n), x.new_zeros(B, hist, n), x.new_zeros(B, hist)
    st["f"], st["g"] = obj(x, y)
    return st


def batched(obj, st, newton):
    """L-BFGS (newton=False) or damped Newton-CG over every point of state ``st`` at once.

    Points leave the batch when their residual is <= their tol, their iteration count reaches
    their budget, their line search failed twice in a row, or they became non-finite.
    """
    out = {k: v.clone() for k, v in st.items()}
    st = dict(rotate(dict(st)), idx=torch.arange(st["x"].shape[0], device=st["x"].device))
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
        d = newton_direction(obj, xk, g, gn) if newton else -two_loop(g, st, p)
        gd = (g * d).sum(-1)
        bad = ~(gd < 0)
        d[bad], gd[bad] = -g[bad], -(gn[bad] ** 2)
        step, f_new, g_new, ok = line_search(obj, xk, st["y"], st["f"], d, gd)
        s = torch.where(ok[:, None], step[:, None] * d, torch.zeros_like(d))
        if not newton:
            yv = g_new - g
            sy = (s * yv).sum(-1)
            upd = ok & (sy > torch.finfo(sy.dtype).eps * s.norm(dim=-1) * yv.norm(dim=-1))
            # every point writes slot p (an empty pair where the update is skipped)
            st["S"][:, p] = torch.where(upd[:, None], s, 0.0)
            st["Y"][:, p] = torch.where(upd[:, None], yv, 0.0)
            st["rho"][:, p] = torch.where(upd, 1 / sy.clamp_min(tiny), 0.0)
            p = (p + 1) % HISTORY
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


def newton_direction(obj, x, g, gn):
    """Solve (H + mu I) d = -g by batched CG to tolerance eta ||g||, per point."""
    mu = 0.1 * gn.clamp(max=1.0)[:, None]
    target = (gn.sqrt().clamp(max=0.5) * gn) ** 2
    d, r = torch.zeros_like(g), -g
    p, rr = r.clone(), (r * r).sum(-1)
    live = rr > target
    for _ in range(min(MAX_INNER, 2 * x.shape[1] + 2)):
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
