"""The LPN authors' reference inversion: nonlinear conjugate gradient, one query point at a time.

Polak-Ribiere+ CG (as SciPy's ``fmin_cg``, which the authors call) on the objective
phi_y(x) = f(x) + (alpha/2) ||x||^2 - <x, y> of :class:`baselines._batched_solvers.Objective`,
with a strong-Wolfe line search (:func:`wolfe_1d`: bracketing by doubling, zoom by a
safeguarded secant on the derivative), started at x0, stopped when ||grad phi_y|| <= tol (the
Euclidean norm; SciPy uses the max-norm, which is looser). A point whose line search finds no
acceptable step restarts once along -grad phi_y and then stops; the caller judges convergence
on the final iterate. Used by :func:`baselines.inversion.invert` for ``solver="cg_per_point"``;
a private helper module, skipped by the plug-in scan of :mod:`baselines`.
"""

from __future__ import annotations

import torch

from ._batched_solvers import C1, C2, MAX_LS, Objective

__all__ = ["wolfe_1d", "cg_per_point"]


def wolfe_1d(phi, f0, d0, slack, s):
    """Strong-Wolfe step along one line from trial step s (floats): bracket by doubling, zoom
    by a safeguarded secant on the derivative."""
    lo, f_lo, d_lo, pay_lo = 0.0, f0, d0, None
    hi = d_hi = None
    for _ in range(MAX_LS):
        f, df, pay = phi(s)
        if not (f <= f0 + C1 * s * d0 + slack) or f > f_lo + slack:
            hi, d_hi = s, df
        elif abs(df) <= -C2 * d0:
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


def cg_per_point(obj, x0, y, tol, max_iter):
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

            s, pay = wolfe_1d(phi, float(f), gd, float(Objective.slack(f)), s0)
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
