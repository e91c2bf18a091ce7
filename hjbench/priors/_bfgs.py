"""The engine of the numerical oracle: batched BFGS that is honest at kinks.

:func:`minimise` minimises N problems f_k at once (``fg(x, idx)`` evaluates the problems
``idx`` at the rows of x), for :mod:`hjbench.priors.oracle`. Its seams:

* start (:func:`_start`): the per-point state (:class:`_Run`): iterate, value, gradient,
  inverse Hessian H = I, a ring buffer of the last W = 2d + 2 iterates and gradients;
* BFGS iterations (:func:`_iterate`): direction -H grad f (steepest descent if that is not a
  descent direction), the parallel weak-Wolfe line search :func:`wolfe_search` (all trial steps
  of a stage in one call of ``fg``), the inverse-Hessian update :func:`_bfgs_update` (with
  Shanno-Phua scaling of the first one);
* kink-aware residual (:func:`_kink_residual`): where the line search failed or the steps
  became tiny, the residual is the least norm ||v|| of a convex combination of gradients taken
  within r = delta (1 + ||x||) of x (:func:`min_norm`), so that a point beside a kink is not
  passed off as stationary; a point whose line search failed restarts along -v (a
  gradient-sampling step) with H reset.

BFGS with a weak Wolfe search converges in value on nonsmooth functions (Lewis and Overton,
Math. Program. 141, 2013). A private helper module: the prior scan of :mod:`hjbench.priors`
skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..solution import Solution

__all__ = ["minimise", "min_norm", "wolfe_search"]

FG = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def min_norm(G: torch.Tensor, allowed: torch.Tensor, n_iter: int = 40) -> torch.Tensor:
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


def wolfe_search(fg, idx, x, f, g, p, wolfe: bool, n_grid: int = 44, n_fine: int = 16):
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


@dataclass
class _Run:
    """Per-point state of :func:`minimise` (N points in dimension d, W history slots)."""

    x: torch.Tensor           # (N, d) iterate
    f: torch.Tensor           # (N,) value
    g: torch.Tensor           # (N, d) gradient
    H: torch.Tensor           # (N, d, d) inverse-Hessian estimate
    bx: torch.Tensor          # (N, W, d) recent iterates (ring buffer)
    bg: torch.Tensor          # (N, W, d) their gradients
    filled: torch.Tensor      # (N, W) slots written so far
    limit: torch.Tensor       # (N,) residual tolerance tol (1 + anchor_norm)
    residual: torch.Tensor    # (N,) current residual
    done: torch.Tensor        # (N,) converged
    stopped: torch.Tensor     # (N,) gave up (no step, not converged)
    scaled: torch.Tensor      # (N,) the initial Shanno-Phua scaling has been applied
    iters: torch.Tensor       # (N,) iterations used


def _start(fg: FG, x0: torch.Tensor, limit: torch.Tensor) -> _Run:
    """The state at x0: H = I, the history filled with x0 and its gradient (marked unused)."""
    n, d = x0.shape
    dev = x0.device
    x = x0.clone()
    f, g = fg(x, torch.arange(n, device=dev))
    W = 2 * d + 2
    residual = g.norm(dim=-1)
    done = residual <= limit
    return _Run(x=x, f=f, g=g, H=torch.eye(d, dtype=x0.dtype, device=dev).expand(n, d, d).clone(),
                bx=x.unsqueeze(1).repeat(1, W, 1), bg=g.unsqueeze(1).repeat(1, W, 1),
                filled=torch.zeros(n, W, dtype=torch.bool, device=dev), limit=limit, residual=residual,
                done=done, stopped=torch.zeros_like(done), scaled=torch.zeros_like(done),
                iters=torch.zeros(n, dtype=torch.long, device=dev))


def _bfgs_update(H: torch.Tensor, s: torch.Tensor, yv: torch.Tensor, wolfe_ok: torch.Tensor,
                 scaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse BFGS update H <- V H V^T + rho s s^T, V = I - rho s y^T, rho = 1 / <s, y>.

    Applied where the step met the curvature condition and <s, y> > 1e-14 ||s|| ||y||; the
    first such update of a point (``scaled`` False) starts from H = (<s, y> / ||y||^2) I
    (Shanno-Phua). H: (M, d, d); s, yv: (M, d). Returns (H_new, updated (M,)).
    """
    eye = torch.eye(s.shape[-1], dtype=s.dtype, device=s.device)
    sy = (s * yv).sum(-1)
    upd = wolfe_ok & (sy > 1e-14 * s.norm(dim=-1) * yv.norm(dim=-1))
    init = upd & ~scaled
    scale = sy / (yv * yv).sum(-1).clamp(min=1e-300)
    H = torch.where(init.view(-1, 1, 1), eye * scale.view(-1, 1, 1), H)
    rho = torch.where(upd, 1 / sy.clamp(min=1e-300), torch.zeros_like(sy)).view(-1, 1, 1)
    V = eye - rho * s.unsqueeze(-1) * yv.unsqueeze(-2)
    H = torch.where(upd.view(-1, 1, 1), V @ H @ V.transpose(-1, -2) + rho * s.unsqueeze(-1) * s.unsqueeze(-2), H)
    return H, upd


def _kink_residual(fg: FG, run: _Run, ic: torch.Tensor, xc: torch.Tensor, gc: torch.Tensor,
                   res: torch.Tensor, r: torch.Tensor, n_enrich: int) -> torch.Tensor:
    """v, the least-norm convex combination of gradients within r of xc (C points of problems ic).

    The gradients: gc at xc itself, at the probes xc +- r e_j, at the recent iterates of the
    history within r of xc and, for up to ``n_enrich`` rounds, at xc - r v/||v|| for the current
    v (so that kinks within r in several coordinates at once, or oblique ones, are straddled).
    Returns v, shape (C, d); ||v|| <= ||gc|| bounds the Goldstein r-stationarity measure.
    """
    d = xc.shape[-1]
    eye = torch.eye(d, dtype=xc.dtype, device=xc.device)
    probes = xc.unsqueeze(1) + r.view(-1, 1, 1) * torch.cat([eye, -eye])        # (C, 2d, d)
    _, gp = fg(probes.reshape(-1, d), ic.repeat_interleave(2 * d))
    near = run.filled[ic] & ((run.bx[ic] - xc.unsqueeze(1)).norm(dim=-1) <= r.unsqueeze(-1))
    G = torch.cat([gc.unsqueeze(1), gp.view(-1, 2 * d, d), run.bg[ic]], 1)
    ok = torch.cat([torch.ones_like(near[:, :1]).expand(-1, 2 * d + 1), near], 1)
    v = min_norm(G, ok)
    limit = run.limit[ic]
    for _ in range(n_enrich):  # at a kink, also probe where the current v says f descends
        vn = v.norm(dim=-1, keepdim=True)
        e = ((vn < 0.9 * res.unsqueeze(-1)) & (vn > limit.unsqueeze(-1))).squeeze(-1)
        if not bool(e.any()):
            break
        _, gq = fg(xc[e] - r[e].unsqueeze(-1) * v[e] / vn[e], ic[e])
        G = torch.cat([G, G[:, :1].clone()], 1)
        G[e, -1] = gq
        ok = torch.cat([ok, e.unsqueeze(-1)], 1)
        v[e] = min_norm(G[e], ok[e])
    return v


def _iterate(fg: FG, run: _Run, idx: torch.Tensor, k: int, max_iter: int, delta: float,
             n_enrich: int) -> None:
    """Iteration k of the running points ``idx``, in place on ``run``."""
    xa, fa, ga = run.x[idx], run.f[idx], run.g[idx]
    p = -(run.H[idx] @ ga.unsqueeze(-1)).squeeze(-1)
    p = torch.where(((ga * p).sum(-1) >= 0).unsqueeze(-1), -ga, p)
    xn, fn, gn, moved, wok = wolfe_search(fg, idx, xa, fa, ga, p, True)
    s = xn - xa
    Ha, upd = _bfgs_update(run.H[idx], s, gn - ga, wok, run.scaled[idx])
    run.scaled[idx] |= upd
    slot = k % run.bx.shape[1]
    run.bx[idx, slot], run.bg[idx, slot] = xn, gn
    run.filled[idx, slot] = True
    res = gn.norm(dim=-1)
    r = delta * (1 + xn.norm(dim=-1))
    # probe only where a kink within r is plausible: failed line search, or (every 10th) a tiny step
    chk = (res > run.limit[idx]) & (~moved | (s.norm(dim=-1) <= 1e4 * r) & (k % 10 == 0) | (k == max_iter))
    c = chk.nonzero().squeeze(-1)
    if c.numel():
        v = _kink_residual(fg, run, idx[c], xn[c], gn[c], res[c], r[c], n_enrich)
        res[c] = torch.minimum(res[c], v.norm(dim=-1))
        retry = ~moved[c] & (res[c] > run.limit[idx[c]])
        if bool(retry.any()):  # gradient-sampling restart along -v, inverse Hessian reset
            rc = c[retry]
            xs, fs, gs, ms, _ = wolfe_search(fg, idx[rc], xa[rc], fa[rc], ga[rc], -v[retry], False)
            xn[rc], fn[rc], gn[rc], moved[rc] = xs, fs, gs, ms
            Ha[rc] = torch.eye(xa.shape[-1], dtype=xa.dtype, device=xa.device)
            run.scaled[idx[rc]] = False
    run.x[idx], run.f[idx], run.g[idx], run.H[idx] = xn, fn, gn, Ha
    run.residual[idx] = res
    run.done[idx] = res <= run.limit[idx]
    run.stopped[idx] = ~moved & ~run.done[idx]


def minimise(fg: FG, x0: torch.Tensor, anchor_norm: torch.Tensor, *, max_iter: int = 300, tol: float = 1e-7,
             delta: float = 1e-10, n_enrich: int = 4) -> Solution:
    """Batched minimisation of f_k from x0 (N, d), k = 0..N-1, by BFGS with a weak Wolfe search.

    ``fg(x, idx) -> (f, grad)`` evaluates the problems ``idx`` (int tensor (M,)) at x (M, d),
    returning shapes (M,) and (M, d). Only points still running are evaluated. Where the
    line search failed, or (every 10th iteration) the last step was tiny (<= 1e4 r), the
    residual ||v|| is computed: v the least-norm convex combination of the gradients at x, at
    recent iterates within r = delta (1 + ||x||) of x, at the probes x +- r e_j and, for
    ``n_enrich`` rounds, at x - r v/||v|| for the current v (so that kinks within r of x in
    several coordinates at once, or oblique ones, are straddled). A point whose line search
    fails restarts along -v (a gradient-sampling step, inverse Hessian reset) and stops when
    that fails too. Converged: ||v|| <= tol (1 + anchor_norm). Returns value f(x*), argument
    x*, status.
    """
    run = _start(fg, x0, tol * (1 + anchor_norm))
    for k in range(1, max_iter + 1):
        idx = (~(run.done | run.stopped)).nonzero().squeeze(-1)
        if idx.numel() == 0:
            break
        run.iters[idx] += 1
        _iterate(fg, run, idx, k, max_iter, delta, n_enrich)
    return Solution(value=run.f, argument=run.x, converged=run.done, iterations=run.iters, residual=run.residual)
