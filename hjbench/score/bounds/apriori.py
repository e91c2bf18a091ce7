"""A priori (expected) forward and prior MSE bounds for the max-plus interpolant (docs/method.md section 7).

Setting (docs/bounds.md, sections 3-5): x, x_1..x_N i.i.d. uniform on the box [-a, a]^n,
psi convex on R^n, psi_N(x) = max_k { psi(x_k) + <grad psi(x_k), x - x_k> } the max-plus
(tangent-plane) interpolant of the N samples, d = d(x, X_N) the nearest-sample distance.

* smooth regime (grad psi L-Lipschitz on the box):   E[(psi - psi_N)^2] <= (L^2 / 4) E[d^4]
* Lipschitz regime (||grad psi|| <= G on the box):      E[(psi - psi_N)^2] <= 4 G^2 E[d^2]
* piecewise smooth regime (psi = max_i psi_i, psi_i L_i-smooth, L = max_i L_i, convex piece
  regions of volume >= f (2a)^n and diameter <= Delta, ||grad psi|| <= G):
  E[(psi - psi_N)^2] <= (L^2/4) Delta^4 h(4/n, N f) + (4 G^2 D^2 - (L^2/4) Delta^4)_+ e^{-N f},
  and never more than the Lipschitz bound (both hold; the smaller is returned)

with E[d^p] bounded by :func:`~hjbench.score.bounds.geometry.nearest_distance_moment_bound`. Hence
the forward MSE decays like N^{-4/n} (smooth, piecewise smooth) or N^{-2/n} (Lipschitz): those
are the theoretical log-log slopes. The same constants divided by t^2 bound the prior error
E[(J_bvs(y) - J_N(y))^2] at y = prox(x) (docs/bounds.md, section 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError, check_choice, check_int, check_positive
from .geometry import _moment_bound
from .geometry import diameter
from .geometry import log_coverage_rate
from .geometry import log_unit_ball_volume
from .geometry import truncated_gamma_integral

__all__ = [
    "BOUND_REGIMES",
    "Bound",
    "theoretical_slope",
    "forward_mse_bound",
    "prior_mse_bound",
    "bound_for_prior",
    "samples_needed",
    "log10_samples_needed",
    "prior_constants",
]

BOUND_REGIMES = ("smooth", "piecewise_smooth", "lipschitz")
# log-log slope numerator p of each regime: MSE = O(N^{-p/n})
_SLOPE_P = {"smooth": 4.0, "piecewise_smooth": 4.0, "lipschitz": 2.0}


@dataclass(frozen=True)
class Bound:
    """A named bound on an expected MSE.

    Attributes:
        name: e.g. "maxplus_apriori_smooth"; becomes the ``bound_name`` result column.
        value: the bound (a float > 0).
        regime: one of :data:`BOUND_REGIMES`.
        slope: the theoretical log-log slope of the MSE against n_samples (-4/n smooth or
            piecewise smooth, -2/n Lipschitz).
    """

    name: str
    value: float
    regime: str
    slope: float

    def columns(self, forward_mse: float, mean_sq_psi: float) -> dict[str, Any]:
        """The schema's bound columns for one trial (schema_version 1).

        ``forward_mse`` is the trial's held-out MSE (NaN if not computed) and ``mean_sq_psi``
        the mean of psi^2 on the same test points. bound_holds is forward_mse <= value, or
        None when forward_mse is NaN (never False for a missing metric).
        """
        mse, msq = float(forward_mse), float(mean_sq_psi)
        finite = math.isfinite(mse)
        return {
            "bound_name": self.name,
            "bound_value": self.value,
            "bound_rel_value": self.value / msq if msq > 0 else math.nan,
            "bound_ratio": mse / self.value if finite else math.nan,
            "bound_holds": bool(mse <= self.value) if finite else None,
            "theoretical_slope": self.slope,
        }


def theoretical_slope(regime: str, dim: int) -> float:
    """Slope of log MSE against log N of the a priori bound: -4/dim (smooth, piecewise smooth), -2/dim (Lipschitz)."""
    check_choice("regime", regime, BOUND_REGIMES)
    return -_SLOPE_P[regime] / check_int("dim", dim, minimum=1)


def _finite(name: str, value, regime: str, fix: str) -> float:
    if value is None or not math.isfinite(float(value)):
        raise ConfigError(f"{name}={value!r} must be a finite number >= 0 in the {regime} regime ({fix})")
    return check_positive(name, float(value), strict=False)


def _constant(regime: str, L: float | None, G: float | None) -> tuple[float, float]:
    """(K, p) with MSE <= K E[d^p]: (L^2/4, 4) smooth, (4 G^2, 2) Lipschitz and piecewise smooth."""
    check_choice("regime", regime, BOUND_REGIMES)
    if regime == "smooth":
        L = _finite("L", L, regime, "psi has no Lipschitz gradient: use regime='lipschitz' with G")
        return L ** 2 / 4.0, 4.0
    G = _finite("G", G, regime, "G bounds ||grad psi|| = ||prox|| on the box")
    if regime == "piecewise_smooth":
        _finite("L", L, regime, "L = max_i L_i, the largest smoothness constant of the pieces")
    return 4.0 * G ** 2, 2.0


def _check_geometry(geometry) -> tuple[float, float]:
    if geometry is None or len(geometry) != 2:
        raise ConfigError(f"geometry={geometry!r} must be (log f, Delta) in the piecewise_smooth regime "
                          "(prior.psi_piece_geometry(box)): piece regions of volume >= f (2a)^n, diameter <= Delta")
    log_f, delta = float(geometry[0]), check_positive("geometry Delta", float(geometry[1]))
    if log_f > 0 or math.isnan(log_f):
        raise ConfigError(f"geometry log f={log_f!r} must be <= 0 (f is a volume fraction); pass log f, not f")
    return log_f, delta


def _piecewise_value(dim: int, log_n: float, box: float, L: float, G: float, geometry) -> float:
    """(L^2/4) Delta^4 h(4/n, N f) + (4 G^2 D^2 - (L^2/4) Delta^4)_+ e^{-N f} (docs/bounds.md, section 5)."""
    log_f, delta = _check_geometry(geometry)
    log_mu = log_n + log_f  # log(N f)
    main = L ** 2 / 4.0 * delta ** 4
    cap = 4.0 * G ** 2 * diameter(dim, box) ** 2
    tail = math.exp(-math.exp(log_mu)) if log_mu < 7.0 else 0.0  # e^{-N f}, underflows past N f ~ 745
    return main * truncated_gamma_integral(4.0 / dim, log_mu) + max(cap - main, 0.0) * tail


def _bound_from_log_n(regime: str, dim: int, log_n: float, box: float, L, G, geometry=None) -> float:
    k, p = _constant(regime, L, G)
    log_u = log_n + log_unit_ball_volume(dim) - dim * math.log(4.0)
    value = k * _moment_bound(p, dim, box, log_u)
    if regime == "piecewise_smooth":  # both bounds hold: return the smaller
        value = min(value, _piecewise_value(dim, log_n, box, float(L), float(G), geometry))
    return value


def forward_mse_bound(regime: str, dim: int, n_samples: float, box: float, L: float | None = None,
                      G: float | None = None, geometry: tuple[float, float] | None = None) -> Bound:
    """A priori bound on E[(psi(x) - psi_N(x))^2] over x and the N samples, uniform on [-box, box]^dim.

    smooth:    (L^2 / 4) * B_4,   Lipschitz:  4 G^2 * B_2,
    where B_p = a^p [h(p/n, u) + ((2 sqrt n)^p - 1) e^{-u}] >= E[d^p], u = N omega_n / 4^n
    (docs/bounds.md, theorem 2 and section 4);
    piecewise smooth: min(4 G^2 B_2, (L^2/4) Delta^4 h(4/n, N f) + (4 G^2 D^2 - (L^2/4) Delta^4)_+ e^{-N f})
    (docs/bounds.md, theorem 5). Symbols: n = dim, N = n_samples, a = box, D = 2 a sqrt(n),
    L = Lipschitz constant of grad psi on the box (smooth) or largest one of the pieces
    (piecewise smooth), G = sup of ||grad psi|| on the box, geometry = (log f, Delta) of the
    piece regions (:meth:`~hjbench.priors.base.AbstractPrior.psi_piece_geometry`).

    >>> b = forward_mse_bound("smooth", 2, 1000, 4.0, L=1.0)
    >>> b.name, b.slope
    ('maxplus_apriori_smooth', -2.0)
    """
    n = check_int("dim", dim, minimum=1)
    a = check_positive("box", box)
    log_coverage_rate(n, n_samples)  # validates n_samples
    value = _bound_from_log_n(regime, n, math.log(float(n_samples)), a, L, G, geometry)
    return Bound(f"maxplus_apriori_{regime}", value, regime, theoretical_slope(regime, n))


def prior_mse_bound(regime: str, dim: int, n_samples: float, box: float, t: float, L: float | None = None,
                    G: float | None = None, geometry: tuple[float, float] | None = None) -> Bound:
    """A priori bound on E[(J_bvs(y) - J_N(y))^2] at y = prox_{tJ}(x), x uniform on the box.

    J_N(y) = max_k { S(x_k, t) - ||y - x_k||^2 / (2t) } (the discrete backward Hopf-Lax
    formula). Pointwise 0 <= J_bvs(y) - J_N(y) <= (psi-side bound at x) / t, so the bound is
    :func:`forward_mse_bound` divided by t^2 (docs/bounds.md, section 5).
    """
    t = check_positive("t", t)
    fwd = forward_mse_bound(regime, dim, n_samples, box, L=L, G=G, geometry=geometry)
    return Bound(f"maxplus_prior_apriori_{regime}", fwd.value / t ** 2, regime, fwd.slope)


def prior_constants(prior, box: float) -> dict[str, Any]:
    """The keyword constants of the prior's regime: {"L"} smooth, {"G"} Lipschitz, {"L", "G",
    "geometry"} piecewise smooth, read from ``psi_smoothness``, ``psi_lipschitz``,
    ``psi_piece_smoothness`` and ``psi_piece_geometry`` at ``box``."""
    regime = check_choice("prior.regime", prior.regime, BOUND_REGIMES)
    if regime == "smooth":
        return {"L": prior.psi_smoothness(box)}
    if regime == "lipschitz":
        return {"G": prior.psi_lipschitz(box)}
    return {"L": prior.psi_piece_smoothness(box), "G": prior.psi_lipschitz(box),
            "geometry": prior.psi_piece_geometry(box)}


def bound_for_prior(prior, n_samples: float, box: float) -> Bound:
    """:func:`forward_mse_bound` with the regime (``prior.regime``), dimension and constants
    (:func:`prior_constants`) the prior family declares."""
    return forward_mse_bound(prior.regime, prior.dim, n_samples, box, **prior_constants(prior, box))


def log10_samples_needed(target_mse: float, regime: str, dim: int, box: float, L: float | None = None,
                         G: float | None = None, geometry: tuple[float, float] | None = None) -> float:
    """log10 of the least N >= 1 with :func:`forward_mse_bound` <= target_mse (inf if none).

    The bound decreases in N, so the crossing is found by bisection on log N to a relative
    precision of 1e-9; counts too large for a float are still reported through their log10.
    """
    target = check_positive("target_mse", target_mse)
    n = check_int("dim", dim, minimum=1)
    a = check_positive("box", box)
    value = lambda log_n: _bound_from_log_n(regime, n, log_n, a, L, G, geometry)  # noqa: E731
    if value(0.0) <= target:
        return 0.0
    lo, hi = 0.0, 1.0
    while value(hi) > target:
        lo, hi = hi, 2.0 * hi
        if hi > 1e7:  # N > 10^(4e6): no finite answer worth reporting
            return math.inf
    while hi - lo > 1e-9 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if value(mid) > target else (lo, mid)
    return hi / math.log(10.0)


def samples_needed(target_mse: float, regime: str, dim: int, box: float, L: float | None = None,
                   G: float | None = None, geometry: tuple[float, float] | None = None) -> float:
    """Least N with forward_mse_bound(regime, dim, N, box, L, G, geometry).value <= target_mse.

    Returned as a float (ceil'd to an integer when below 2^53); ``math.inf`` when N exceeds the
    float range: the curse of dimensionality (see the table in docs/bounds.md). It is what
    the *bound* guarantees, not a lower bound on the samples any method needs.
    """
    log10_n = log10_samples_needed(target_mse, regime, dim, box, L=L, G=G, geometry=geometry)
    if log10_n > 308.0:
        return math.inf
    n = 10.0 ** log10_n
    if n >= 2.0 ** 53:
        return n
    # integer refinement: the least integer N whose bound meets the target
    value = lambda k: _bound_from_log_n(regime, dim, math.log(k), box, L, G, geometry)  # noqa: E731
    lo, hi = max(1, math.floor(n * (1 - 1e-6)) - 1), math.ceil(n * (1 + 1e-6)) + 1
    if value(lo) <= target_mse:
        return float(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if value(mid) > target_mse else (lo, mid)
    return float(hi)
