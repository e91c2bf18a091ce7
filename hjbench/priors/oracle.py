"""Generic float64 numerical oracle for the HJ ground truth (BRIEF sections 2-3).

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
from ..solve import Solution

__all__ = ["closed_form", "minimise", "conjugate", "prox_numeric", "S_numeric", "J_bvs_numeric"]

Fn = Callable[[torch.Tensor], torch.Tensor]


def closed_form(value: torch.Tensor, argument: torch.Tensor | None = None) -> Solution:
    """A closed-form result: converged everywhere, 0 iterations, residual 0."""
    shape = value.shape
    return Solution(value=value, argument=argument,
                    converged=torch.ones(shape, dtype=torch.bool, device=value.device),
                    iterations=torch.zeros(shape, dtype=torch.long, device=value.device),
                    residual=torch.zeros_like(value))


def _min_norm(G: torch.Tensor, allowed: torch.Tensor, n_iter: int = 40) -> torch.Tensor:
    """v = argmin ||sum_k lam_k G_k|| over lam in the simplex on ``allowed`` (pairwise Frank-Wolfe,
    exact steps). G: (N, W, d), allowed: (N, W) with slot 0 allowed. Returns v, shape (N, d);
    ||v|| is an upper bound of the least norm (inexact solves only make the status stricter)."""
    n, w, _ = G.shape
    rows = torch.arange(n, device=G.device)
    lam = torch.zeros(n, w, dtype=G.dtype, device=G.device)
    lam[:, 0] = 1
    for _ in range(n_iter):
        v = (lam.unsqueeze(-1) * G).sum(1)
        score = (G * v.unsqueeze(1)).sum(-1)                           # <G_k, v>
        j = torch.where(allowed, score, torch.full_like(score, torch.inf)).argmin(-1)
        i = torch.where(lam > 0, score, torch.full_like(score, -torch.inf)).argmax(-1)
        d = G[rows, j] - G[rows, i]
        dd = (d * d).sum(-1)
        s = torch.where(dd > 0, -(v * d).sum(-1) / dd.clamp(min=1e-300), torch.zeros_like(dd))
        s = torch.minimum(s.clamp(min=0), lam[rows, i])
        if not bool((s > 0).any()):
            break
        lam = lam.index_put((rows, j), lam[rows, j] + s).index_put((rows, i), lam[rows, i] - s)
    return (lam.unsqueeze(-1) * G).sum(1)


def _line_search(fg, idx, x, f, g, p, wolfe: bool, n_grid: int = 44, n_fine: int = 16):
    """Parallel line search along p: all trial steps of one stage in a single call of ``fg``.

    Stage 1 tries alpha = 2^k, k = 3 - n_grid .. 2; stage 2 (when no trial meets the weak
    Wolfe conditions) tries a linear grid between the largest Armijo step a and 2a. Keeps the
    lowest f among the trials that meet Armijo (with the approximate Armijo test of Hager and
    Zhang near the rounding floor of f) and, if ``wolfe``, the curvature condition
    <grad(x + alpha p), p> >= 0.9 <g, p>; failing that, the largest Armijo step (no curvature).
    Returns (x_new, f_new, g_new, moved, curvature_ok); unmoved points keep (x, f, g).
    """
    m, d = x.shape
    gp = (g * p).sum(-1, keepdim=True)
    base = 2.0 ** torch.arange(3 - n_grid, 3, dtype=x.dtype, device=x.device)
    alphas = base.expand(m, -1)
    x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
    moved = torch.zeros(m, dtype=torch.bool, device=x.device)
    wolfe_ok = torch.zeros_like(moved)
    for stage in range(2):
        k = alphas.shape[1]
        xt = x.unsqueeze(1) + alphas.unsqueeze(-1) * p.unsqueeze(1)            # (m, k, d)
        ft, gt = fg(xt.reshape(-1, d), idx.repeat_interleave(k))
        ft, gt = ft.view(m, k), gt.view(m, k, d)
        dphi = (gt * p.unsqueeze(1)).sum(-1)
        flat = (ft <= f.unsqueeze(-1) + 1e-14 * (1 + f.abs().unsqueeze(-1))) & (dphi <= -0.8 * gp)
        armijo = ((ft <= f.unsqueeze(-1) + 1e-4 * alphas * gp) | flat) & torch.isfinite(ft)
        good = armijo & (dphi >= 0.9 * gp) if wolfe else armijo
        pick = torch.where(good, ft, torch.full_like(ft, torch.inf)).argmin(-1)
        rows = torch.arange(m, device=x.device)
        found = good.any(-1) & ~wolfe_ok & (xt[rows, pick] != x).any(-1)
        x_new = torch.where(found.unsqueeze(-1), xt[rows, pick], x_new)
        f_new = torch.where(found, ft[rows, pick], f_new)
        g_new = torch.where(found.unsqueeze(-1), gt[rows, pick], g_new)
        moved |= found
        wolfe_ok |= found
        # largest Armijo step, the fallback and the left end of the stage-2 bracket
        last = torch.where(armijo, alphas, torch.zeros_like(alphas)).argmax(-1)
        fall = armijo.any(-1) & ~moved & (xt[rows, last] != x).any(-1)
        x_new = torch.where(fall.unsqueeze(-1), xt[rows, last], x_new)
        f_new = torch.where(fall, ft[rows, last], f_new)
        g_new = torch.where(fall.unsqueeze(-1), gt[rows, last], g_new)
        moved |= fall
        if stage == 1 or not wolfe or bool(wolfe_ok.all()):
            break
        a = alphas[rows, last].unsqueeze(-1)
        alphas = a * (1 + torch.linspace(0, 1, n_fine + 2, dtype=x.dtype, device=x.device)[1:-1])
    return x_new, f_new, g_new, moved, wolfe_ok


def minimise(fg: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]], x0: torch.Tensor,
             anchor_norm: torch.Tensor, *, max_iter: int = 300, tol: float = 1e-7,
             delta: float = 1e-10, n_enrich: int = 4) -> Solution:
    """Batched minimisation of f_k from x0 (N, d), k = 0..N-1, by BFGS with a weak Wolfe search.

    ``fg(x, idx) -> (f, grad)`` evaluates the problems ``idx`` (int tensor (M,)) at x (M, d),
    returning shapes (M,) and (M, d). Only points still running are evaluated. Where the
    line search failed, or (every 10th iteration) the last step was tiny (<= 1e4 r), the
    residual ||v|| is computed: v the least-norm convex combination of the gradients at x, at
    recent iterates within r = delta (1 + ||x||) of x, at the probes x +- r e_j and, for
    ``n_enrich`` rounds, at x - r v/||v|| for the current v (so that kinks within r of x in
    several coordinates at once, or oblique ones, are straddled). A point whose line search fails restarts along -v
    (a gradient-sampling step, inverse Hessian reset) and stops when that fails too.
    Converged: ||v|| <= tol (1 + anchor_norm). Returns value f(x*), argument x*, status.
    """
    n, d = x0.shape
    dev = x0.device
    eye = torch.eye(d, dtype=x0.dtype, device=dev)
    signs = torch.cat([eye, -eye])                                      # (2d, d) probe directions
    x = x0.clone()
    f, g = fg(x, torch.arange(n, device=dev))
    H = eye.expand(n, d, d).clone()
    W = 2 * d + 2
    bx, bg = x.unsqueeze(1).repeat(1, W, 1), g.unsqueeze(1).repeat(1, W, 1)
    filled = torch.zeros(n, W, dtype=torch.bool, device=dev)
    limit = tol * (1 + anchor_norm)
    residual = g.norm(dim=-1)
    done = residual <= limit
    stopped, scaled = torch.zeros_like(done), torch.zeros_like(done)
    iters = torch.zeros(n, dtype=torch.long, device=dev)
    for k in range(1, max_iter + 1):
        idx = (~(done | stopped)).nonzero().squeeze(-1)
        if idx.numel() == 0:
            break
        iters[idx] += 1
        xa, fa, ga, Ha = x[idx], f[idx], g[idx], H[idx]
        p = -(Ha @ ga.unsqueeze(-1)).squeeze(-1)
        p = torch.where(((ga * p).sum(-1) >= 0).unsqueeze(-1), -ga, p)
        xn, fn, gn, moved, wok = _line_search(fg, idx, xa, fa, ga, p, True)
        s, yv = xn - xa, gn - ga
        sy = (s * yv).sum(-1)
        upd = wok & (sy > 1e-14 * s.norm(dim=-1) * yv.norm(dim=-1))
        init = upd & ~scaled[idx]  # Shanno-Phua scaling of the first inverse Hessian
        scale = sy / (yv * yv).sum(-1).clamp(min=1e-300)
        Ha = torch.where(init.view(-1, 1, 1), eye * scale.view(-1, 1, 1), Ha)
        scaled[idx] |= upd
        rho = torch.where(upd, 1 / sy.clamp(min=1e-300), torch.zeros_like(sy)).view(-1, 1, 1)
        V = eye - rho * s.unsqueeze(-1) * yv.unsqueeze(-2)
        Ha = torch.where(upd.view(-1, 1, 1), V @ Ha @ V.transpose(-1, -2) + rho * s.unsqueeze(-1) * s.unsqueeze(-2), Ha)
        slot = k % W
        bx[idx, slot], bg[idx, slot] = xn, gn
        filled[idx, slot] = True
        res = gn.norm(dim=-1)
        r = delta * (1 + xn.norm(dim=-1))
        # probe only where a kink within r is plausible: failed line search, or (every 10th) a tiny step
        chk = (res > limit[idx]) & (~moved | (s.norm(dim=-1) <= 1e4 * r) & (k % 10 == 0) | (k == max_iter))
        c = chk.nonzero().squeeze(-1)
        if c.numel():
            xc = xn[c]
            probes = xc.unsqueeze(1) + r[c].view(-1, 1, 1) * signs             # (C, 2d, d)
            _, gp = fg(probes.reshape(-1, d), idx[c].repeat_interleave(2 * d))
            near = filled[idx[c]] & ((bx[idx[c]] - xc.unsqueeze(1)).norm(dim=-1) <= r[c].unsqueeze(-1))
            G = torch.cat([gn[c].unsqueeze(1), gp.view(-1, 2 * d, d), bg[idx[c]]], 1)
            ok = torch.cat([torch.ones_like(near[:, :1]).expand(-1, 2 * d + 1), near], 1)
            v = _min_norm(G, ok)
            for _ in range(n_enrich):  # at a kink, also probe where the current v says f descends
                vn = v.norm(dim=-1, keepdim=True)
                e = ((vn < 0.9 * res[c].unsqueeze(-1)) & (vn > limit[idx[c]].unsqueeze(-1))).squeeze(-1)
                if not bool(e.any()):
                    break
                _, gq = fg(xc[e] - r[c][e].unsqueeze(-1) * v[e] / vn[e], idx[c][e])
                G = torch.cat([G, G[:, :1].clone()], 1)
                G[e, -1] = gq
                ok = torch.cat([ok, e.unsqueeze(-1)], 1)
                v[e] = _min_norm(G[e], ok[e])
            res[c] = torch.minimum(res[c], v.norm(dim=-1))
            retry = ~moved[c] & (res[c] > limit[idx[c]])
            if bool(retry.any()):  # gradient-sampling restart along -v, inverse Hessian reset
                rc = c[retry]
                xs, fs, gs, ms, _ = _line_search(fg, idx[rc], xa[rc], fa[rc], ga[rc], -v[retry], False)
                xn[rc], fn[rc], gn[rc], moved[rc] = xs, fs, gs, ms
                Ha[rc] = eye
                scaled[idx[rc]] = False
        x[idx], f[idx], g[idx], H[idx] = xn, fn, gn, Ha
        residual[idx] = res
        done[idx] = res <= limit[idx]
        stopped[idx] = ~moved & ~done[idx]
    return Solution(value=f, argument=x, converged=done, iterations=iters, residual=residual)


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
