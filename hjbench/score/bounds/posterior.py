"""A posteriori (deterministic) certificate for the given sample (docs/method.md section 7).

For a convex psi and the max-plus interpolant psi_N(x) = max_k { psi(x_k) + <v_k, x - x_k> },
v_k = grad psi(x_k), of samples x_k in the box [-a, a]^n (docs/bounds.md, theorem 1):

* smooth regime (grad psi L-Lipschitz on the box):  0 <= psi(x) - psi_N(x) <= (L/2) d(x, X_N)^2
* Lipschitz regime (||grad psi|| <= G on the box):   0 <= psi(x) - psi_N(x) <= 2 G d(x, X_N)
* piecewise smooth regime (psi = max_i psi_i, psi_i L_i-smooth, L = max_i L_i):
  0 <= psi(x) - psi_N(x) <= min(2 G d(x, X_N), (L/2) d(x, X_N^{i(x)})^2), X_N^{i} the samples
  at which piece i alone is active, i(x) the piece active at x (docs/bounds.md, theorem 5)

for every x in the box. The certificate of a sample on query points x_1..x_m is the mean of
the squared pointwise bound, a bound on the max-plus interpolant's MSE at those points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError, check_choice, check_finite, check_int, check_positive
from .apriori import BOUND_REGIMES
from .apriori import _constant
from .apriori import prior_constants

__all__ = ["nearest_distance", "nearest_same_piece_distance", "posterior_bound_pointwise", "Certificate",
           "posterior_certificate", "certificate_for_prior"]

_CHUNK_ENTRIES = 1 << 22  # distance-matrix entries held at once (32 MiB in float64)
# tolerance on psi - psi_hat per dtype, relative to 1 + max |psi| (rounding of psi and psi_hat)
_RTOL = {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-5, torch.float64: 1e-10}


def _as_tensor(name: str, x: Any, device=None) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ConfigError(f"{name} must have a floating dtype, got {x.dtype}")
    return x.detach().to(device=device if device is not None else x.device, dtype=torch.float64)


def _torch_dtype(v: Any) -> torch.dtype:
    return v.dtype if isinstance(v, torch.Tensor) else torch.from_numpy(np.zeros(0, v.dtype)).dtype


def _points(x, x_train, box):
    xq = check_finite("x", _as_tensor("x", x))
    xt = check_finite("x_train", _as_tensor("x_train", x_train, device=xq.device))
    if xq.ndim != 2 or xt.ndim != 2 or xq.shape[1] != xt.shape[1] or xt.shape[0] == 0:
        raise ConfigError(f"x has shape {tuple(xq.shape)} and x_train {tuple(xt.shape)}; they must be "
                          "(m, dim) and (N, dim) with the same dim and N >= 1")
    if box is not None:
        a = check_positive("box", box)
        worst = max(float(xq.abs().max()), float(xt.abs().max()))
        if worst > a * (1 + 1e-12):
            raise ConfigError(f"points reach |x_i| = {worst:.6g} outside the box [-{a}, {a}]^dim; "
                              "the certificate only holds inside the box")
    return xq, xt


def nearest_distance(x, x_train, chunk_entries: int = _CHUNK_ENTRIES) -> torch.Tensor:
    """d(x_j, X_N) = min_k ||x_j - x_k|| for x (m, dim) and x_train (N, dim); float64, shape (m,).

    Computed in chunks of about ``chunk_entries`` distances (so 1e5 samples x 1e4 queries fit
    in memory). The nearest index is found with the fast matrix-product distance and the
    distance to that sample is then recomputed directly: it is the exact distance to *a*
    sample, never smaller than d(x, X_N) by rounding, so a bound built on it stays valid.
    """
    xq, xt = _points(x, x_train, None)
    check_int("chunk_entries", chunk_entries, minimum=1)
    rows = max(1, chunk_entries // xt.shape[0])
    out = torch.empty(xq.shape[0], dtype=torch.float64, device=xq.device)
    for start in range(0, xq.shape[0], rows):
        q = xq[start:start + rows]
        idx = torch.cdist(q, xt).argmin(dim=1)
        out[start:start + rows] = (q - xt[idx]).norm(dim=1)
    return out


def _piece_labels(key, key_train, m: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer labels of the piece keys (equal rows, equal label); -1 for a NaN row (a tie)."""
    k, kt = _as_tensor("key", key), _as_tensor("key_train", key_train, device=None)
    k, kt = k.reshape(m, -1), kt.to(k.device).reshape(n, -1)
    if k.shape[1] != kt.shape[1]:
        raise ConfigError(f"key has {k.shape[1]} columns and key_train {kt.shape[1]}; both must come from "
                          "the same prior's psi_piece_key")
    keys = torch.cat([k, kt])
    valid = torch.isfinite(keys).all(-1)
    labels = torch.full((m + n,), -1, dtype=torch.long, device=keys.device)
    if bool(valid.any()):
        labels[valid] = torch.unique(keys[valid], dim=0, return_inverse=True)[1]
    return labels[:m], labels[m:]


def nearest_same_piece_distance(x, x_train, key, key_train, chunk_entries: int = _CHUNK_ENTRIES) -> torch.Tensor:
    """d(x_j, X_N^{i(x_j)}): distance to the nearest training point with the same piece key; inf
    when there is none or x_j's key is NaN. x (m, dim), x_train (N, dim), key (m, k), key_train
    (N, k) from ``prior.psi_piece_key``; float64, shape (m,), on x's device."""
    xq, xt = _points(x, x_train, None)
    lq, lt = _piece_labels(key, key_train, xq.shape[0], xt.shape[0])
    out = torch.full((xq.shape[0],), torch.inf, dtype=torch.float64, device=xq.device)
    order_q, order_t = torch.argsort(lq), torch.argsort(lt)
    sq, st = lq[order_q], lt[order_t]
    labels = torch.unique(sq[sq >= 0])
    q_lo, q_hi = torch.searchsorted(sq, labels), torch.searchsorted(sq, labels, right=True)
    t_lo, t_hi = torch.searchsorted(st, labels), torch.searchsorted(st, labels, right=True)
    for a, b, c, e in zip(q_lo.tolist(), q_hi.tolist(), t_lo.tolist(), t_hi.tolist()):
        if e > c:
            rows = order_q[a:b]
            out[rows] = nearest_distance(xq[rows], xt[order_t[c:e]], chunk_entries)
    return out


def posterior_bound_pointwise(x, x_train, regime: str, L: float | None = None, G: float | None = None,
                              box: float | None = None, key=None, key_train=None):
    """Pointwise bound on psi(x) - psi_N(x): (L/2) d^2 (smooth), 2 G d (Lipschitz), or
    min(2 G d, (L/2) d_same^2) (piecewise smooth, d_same from :func:`nearest_same_piece_distance`).

    Args:
        x: query points, shape (m, dim), torch or numpy. x_train: the N samples, (N, dim).
        regime: "smooth" (needs L), "lipschitz" (needs G) or "piecewise_smooth" (needs L, G,
            and the piece keys ``key`` of x and ``key_train`` of x_train). box: if given, check
            that every point lies in [-box, box]^dim, where the constants hold.
    Returns: shape (m,), float64, numpy if ``x`` is numpy, else a tensor on x's device.
    """
    check_choice("regime", regime, BOUND_REGIMES)
    _constant(regime, L, G)
    xq, xt = _points(x, x_train, box)
    d = nearest_distance(xq, xt)
    if regime == "smooth":
        bound = 0.5 * float(L) * d * d
    else:
        bound = 2.0 * float(G) * d
    if regime == "piecewise_smooth":
        if key is None or key_train is None:
            raise ConfigError("key and key_train must be given in the piecewise_smooth regime "
                              "(prior.psi_piece_key(x) and prior.psi_piece_key(x_train))")
        same = nearest_same_piece_distance(xq, xt, key, key_train)
        bound = torch.minimum(bound, 0.5 * float(L) * same * same)
    return bound.cpu().numpy() if isinstance(x, np.ndarray) else bound


@dataclass(frozen=True)
class Certificate:
    """The a posteriori certificate of one sample on m query points.

    Attributes:
        value: mean_j b(x_j)^2, b the pointwise bound: a guaranteed bound on the max-plus
            interpolant's MSE on these points (the ``cert_value`` column).
        mse: mean_j (psi(x_j) - psi_hat(x_j))^2, the estimator's MSE on the same points.
        holds: psi - psi_hat lies in [-tol, b + tol] at every point (the ``cert_holds``
            column). Guaranteed for the max-plus interpolant (False there is a bug); for a
            learned psi_hat it says whether it stays inside the same envelope, which it
            need not (see docs/bounds.md, section 6).
        mse_holds: mse <= value + tol^2 (the learned-method yardstick on this sample).
        n_points: m. n_below: points with psi_hat > psi + tol. n_above: points with
            psi - psi_hat > b + tol. n_nonfinite: NaN/inf values of psi_hat (each makes
            ``holds`` False and ``mse`` NaN). tol: the tolerance used.
    """

    value: float
    mse: float
    holds: bool
    mse_holds: bool
    n_points: int
    n_below: int
    n_above: int
    n_nonfinite: int
    tol: float

    def columns(self) -> dict[str, Any]:
        """The schema's certificate columns: ``cert_value`` and ``cert_holds``."""
        return {"cert_value": self.value, "cert_holds": self.holds}


def posterior_certificate(psi_true, psi_hat, x, x_train, regime: str, L: float | None = None,
                          G: float | None = None, box: float | None = None,
                          rtol: float | None = None, key=None, key_train=None) -> Certificate:
    """Certificate of the sample ``x_train`` at the query points ``x`` (docs/bounds.md, section 6).

    Args:
        psi_true: psi(x), shape (m,). psi_hat: the estimator's potential at x, shape (m,).
        x: (m, dim) query points in the box. x_train: (N, dim) training points.
        regime, L, G, box, key, key_train: as in :func:`posterior_bound_pointwise`.
        rtol: tolerance relative to 1 + max |psi_true|; default from the coarsest dtype of
            psi_true, psi_hat, x and x_train (1e-5 for float32, 1e-10 for float64). Pass the
            arrays in the dtype the run used (they are upcast to float64 here): casting a
            float32 estimate to float64 first hides its rounding and makes the max-plus
            certificate fail spuriously.
    """
    t_psi, t_hat = _as_tensor("psi_true", psi_true), _as_tensor("psi_hat", psi_hat)
    b = posterior_bound_pointwise(_as_tensor("x", x), x_train, regime, L=L, G=G, box=box, key=key,
                                  key_train=key_train)
    m = b.shape[0]
    if t_psi.shape != (m,) or t_hat.shape != (m,):
        raise ConfigError(f"psi_true {tuple(t_psi.shape)} and psi_hat {tuple(t_hat.shape)} must both "
                          f"have shape ({m},), one value per query point")
    if rtol is None:
        rtol = max(_RTOL.get(_torch_dtype(v), 1e-10) for v in (psi_true, psi_hat, x, x_train))
    t_psi, t_hat = check_finite("psi_true", t_psi.to(b.device)), t_hat.to(b.device)
    tol = float(check_positive("rtol", rtol, strict=False)) * (1.0 + float(t_psi.abs().max()))
    gap = t_psi - t_hat
    n_below, n_above = int((gap < -tol).sum()), int((gap > b + tol).sum())
    n_nonfinite = int((~torch.isfinite(t_hat)).sum())
    value, mse = float((b * b).mean()), float((gap * gap).mean())
    return Certificate(value=value, mse=mse, holds=bool(n_below == 0 and n_above == 0 and n_nonfinite == 0),
                       mse_holds=bool(mse <= value + tol * tol), n_points=m, n_below=n_below,
                       n_above=n_above, n_nonfinite=n_nonfinite, tol=tol)


def certificate_for_prior(prior, psi_hat, x, x_train, box: float, rtol: float | None = None) -> Certificate:
    """:func:`posterior_certificate` with psi_true = prior.psi(x) (in float64) and the prior's constants.

    ``psi_hat``, ``x`` and ``x_train`` in the run's own dtype; the tolerance follows the
    coarsest of them unless ``rtol`` is given.
    """
    regime = check_choice("prior.regime", prior.regime, BOUND_REGIMES)
    if rtol is None:
        rtol = max(_RTOL.get(_torch_dtype(v), 1e-10) for v in (psi_hat, x, x_train))
    x64 = _as_tensor("x", x)
    psi_true = prior.psi(x64)
    consts = prior_constants(prior, box)
    consts.pop("geometry", None)
    if regime == "piecewise_smooth":
        consts.update(key=prior.psi_piece_key(x64), key_train=prior.psi_piece_key(_as_tensor("x_train", x_train)))
    return posterior_certificate(psi_true, psi_hat, x, x_train, regime, box=box, rtol=rtol, **consts)

