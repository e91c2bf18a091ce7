"""Per-point arithmetic of the metrics, the hull probe, and per-point data packed into a row.

Per-point errors (float64): for a scalar output e_i = (f_hat(x_i) - f(x_i))^2, for a vector
output e_i = ||f_hat(x_i) - f(x_i)||^2. A non-finite estimate gives e_i = +inf.

* :func:`finite_errors`: the mean of e_i over the points with a finite estimate, the
  variance-relative error mse / Var(f) over the same points, and the coverage (the fraction
  of finite estimates). Var is offset-invariant: for a vector target it is the total variance
  mean_i ||f(x_i) - mean_j f(x_j)||^2, so adding a constant to the target (and the estimate)
  changes neither mse nor Var.
* :func:`hull_probe`: points of the box [-box, box]^dim off range(prox), where J_bvs < J. On
  range(prox), J_bvs = J exactly (docs/method.md section 6), so only such points test whether a prior
  recovers the proximal hull. Points are drawn uniformly from a generator seeded by
  ``stable_int({"kind": "hull_probe", "seed": seed})`` and kept when
  J_bvs(y) < J(y) - tol(y),  tol(y) = sqrt(eps_64) (1 + |J(y)| + q(y)/t),
  which is above the float64 rounding of J_bvs = (g - q)/t and of a conjugate solved to a
  relative duality gap of 1e-12 (hjbench.priors.minplus).
* :func:`pack_mask` / :func:`pack_values`: per-point data in a results row as short text
  (the mask bit-packed; values as bfloat16, 8 significant bits, relative rounding <= 2^-9),
  base64, prefixed by the number of points: "n:base64".
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["sq_errors", "finite_errors", "variance", "HullProbe", "hull_probe", "pack_mask", "unpack_mask",
           "pack_values", "unpack_values", "CONVEX_REASON", "f64"]

CONVEX_REASON = "J_bvs = J on the box (tJ + q convex)"
NAN = float("nan")


def f64(v: torch.Tensor) -> torch.Tensor:
    return v.detach().to("cpu", torch.float64)


def sq_errors(est: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-point squared error e_i in float64, shape (m,); +inf where the estimate is not finite."""
    est, target = f64(est), f64(target)
    diff = est - target
    sq = diff * diff if diff.ndim == 1 else (diff * diff).sum(-1)
    finite = torch.isfinite(est) if est.ndim == 1 else torch.isfinite(est).all(-1)
    return torch.where(finite, sq, torch.full_like(sq, math.inf))


def variance(target: torch.Tensor) -> float:
    """Var of a scalar target, or the total variance mean ||f_i - mean f||^2 of a vector one."""
    target = f64(target)
    if target.shape[0] < 2:
        return 0.0
    centred = target - target.mean(0)
    return float((centred * centred).reshape(target.shape[0], -1).sum(-1).mean())


@dataclass(frozen=True)
class Errors:
    """Mean squared error over finite estimates, variance-relative error, coverage, counts."""

    mse: float
    rel: float
    coverage: float
    n_bad: int
    n: int

    def reason(self, group: str) -> str:
        """Why mse or rel is NaN ('' when both are values)."""
        if self.n_bad == self.n:
            return f"{group}: all {self.n} outputs non-finite (coverage 0)"
        if not math.isfinite(self.rel):
            return f"{group}: target variance is 0, relative error undefined"
        return ""


def finite_errors(est: torch.Tensor, target: torch.Tensor) -> Errors:
    """Errors over the points with a finite estimate (see the module docstring)."""
    sq = sq_errors(est, target)
    ok = torch.isfinite(sq)
    n, n_ok = int(sq.shape[0]), int(ok.sum())
    if n_ok == 0:
        return Errors(NAN, NAN, 0.0, n, n)
    mse = float(sq[ok].mean())
    var = variance(f64(target)[ok])
    return Errors(mse, mse / var if var > 0 else NAN, n_ok / n, n - n_ok, n)


@dataclass(frozen=True)
class HullProbe:
    """Hull-probe points y (k, dim) in float64 with J(y), J_bvs(y), draws made, and why it is
    empty ('' when it is not)."""

    y: torch.Tensor
    J: torch.Tensor
    J_bvs: torch.Tensor
    n_draws: int
    reason: str = ""


def hull_probe(prior, box: float, n_probe: int, seed: int, *, max_draws: int | None = None) -> HullProbe:
    """Up to ``n_probe`` points of [-box, box]^dim with J_bvs < J - tol (module docstring).

    Draws batches of max(256, 4 n_probe) points until ``n_probe`` are kept or ``max_draws``
    (default max(4096, 64 n_probe)) points were drawn. Families with tJ + q convex give an
    empty probe without drawing.
    """
    from ..seeds import stable_int

    dim, t = prior.dim, float(prior.t)
    empty = torch.zeros(0, dim, dtype=torch.float64)
    if getattr(prior, "tj_plus_q_convex", False) or n_probe <= 0:
        why = CONVEX_REASON if n_probe > 0 else "hull probe: n_probe = 0"
        return HullProbe(empty, empty[:, 0], empty[:, 0], 0, why)
    max_draws = max_draws or max(4096, 64 * n_probe)
    gen = torch.Generator().manual_seed(stable_int({"kind": "hull_probe", "seed": int(seed)}))
    kept, drawn, tol_scale = [], 0, math.sqrt(torch.finfo(torch.float64).eps)
    while drawn < max_draws and sum(len(k[0]) for k in kept) < n_probe:
        size = min(max(256, 4 * n_probe), max_draws - drawn)
        y = (2.0 * torch.rand(size, dim, generator=gen, dtype=torch.float64) - 1.0) * box
        drawn += size
        with torch.no_grad():
            j, jb = prior.J(y), prior.J_bvs(y)
        tol = tol_scale * (1.0 + j.abs() + 0.5 * (y * y).sum(-1) / t)
        keep = jb < j - tol
        kept.append((y[keep], j[keep], jb[keep]))
    y, j, jb = (torch.cat([k[i] for k in kept])[:n_probe] for i in range(3))
    reason = "" if len(y) else (f"no point with J_bvs < J - tol in {drawn} uniform draws of the box; "
                                f"{CONVEX_REASON} as far as sampled")
    return HullProbe(y, j, jb, drawn, reason)


# -- per-point data in a results row ---------------------------------------------------------------
def pack_mask(mask: torch.Tensor) -> str:
    """A bool mask of m points as "m:base64(packbits)"."""
    bits = np.asarray(mask.detach().cpu().reshape(-1).numpy(), dtype=bool)
    return f"{bits.size}:" + base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def unpack_mask(text: str) -> np.ndarray:
    """Inverse of :func:`pack_mask` (a bool array)."""
    n, data = text.split(":", 1)
    return np.unpackbits(np.frombuffer(base64.b64decode(data), dtype=np.uint8), count=int(n)).astype(bool)


def pack_values(values: torch.Tensor) -> str:
    """Non-negative per-point values as "m:base64(bfloat16, little endian)" (round to nearest even)."""
    with np.errstate(over="ignore"):  # beyond float32's range: +inf, as the error is
        f32 = np.ascontiguousarray(f64(values).reshape(-1).numpy().astype("<f4"))
    u = f32.view("<u4").astype(np.uint64)
    u16 = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    u16[np.isnan(f32)] = 0x7FC0
    return f"{f32.size}:" + base64.b64encode(u16.tobytes()).decode("ascii")


def unpack_values(text: str) -> np.ndarray:
    """Inverse of :func:`pack_values` (float64 array)."""
    n, data = text.split(":", 1)
    u16 = np.frombuffer(base64.b64decode(data), dtype="<u2")[: int(n)]
    return (u16.astype("<u4") << 16).view("<f4").astype(np.float64)
