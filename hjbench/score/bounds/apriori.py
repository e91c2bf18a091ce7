"""A priori (expected) forward and prior MSE bounds for the max-plus interpolant (BRIEF section 7).

Setting (docs/bounds.md, sections 3-5): x, x_1..x_N i.i.d. uniform on the box [-a, a]^n,
psi convex on R^n, psi_N(x) = max_k { psi(x_k) + <grad psi(x_k), x - x_k> } the max-plus
(tangent-plane) interpolant of the N samples, d = d(x, X_N) the nearest-sample distance.

* smooth regime (grad psi L-Lipschitz on the box):   E[(psi - psi_N)^2] <= (L^2 / 4) E[d^4]
* Lipschitz regime (||grad psi|| <= G on the box):      E[(psi - psi_N)^2] <= 4 G^2 E[d^2]

with E[d^p] bounded by :func:`~hjbench.score.bounds.geometry.nearest_distance_moment_bound`. Hence
the forward MSE decays like N^{-4/n} (smooth) or N^{-2/n} (Lipschitz): those are the
theoretical log-log slopes. The same constants divided by t^2 bound the prior error
E[(J_bvs(y) - J_N(y))^2] at y = prox(x) (docs/bounds.md, section 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError, check_choice, check_int, check_positive
from .geometry import _moment_bound
from .geometry import log_coverage_rate
from .geometry import log_unit_ball_volume

__all__ = [
    "BOUND_REGIMES",
    "Bound",
    "theoretical_slope",
    "forward_mse_bound",
    "prior_mse_bound",
    "bound_for_prior",
    "samples_needed",
    "log10_samples_needed",
]

BOUND_REGIMES = ("smooth", "lipschitz")


@dataclass(frozen=True)
class Bound:
    """A named bound on an expected MSE.

    Attributes:
        name: e.g. "maxplus_apriori_smooth"; becomes the ``bound_name`` result column.
        value: the bound (a float > 0).
        regime: "smooth" or "lipschitz".
        slope: the theoretical log-log slope of the MSE against n_samples (-4/n or -2/n).
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
    """Slope of log MSE against log N of the a priori bound: -4/dim (smooth), -2/dim (Lipschitz)."""
    check_choice("regime", regime, BOUND_REGIMES)
    n = check_int("dim", dim, minimum=1)
    return (-4.0 if regime == "smooth" else -2.0) / n


def _constant(regime: str, L: float | None, G: float | None) -> tuple[float, float]:
    """(K, p) with MSE <= K E[d^p]: (L^2/4, 4) smooth, (4 G^2, 2) Lipschitz."""
    check_choice("regime", regime, BOUND_REGIMES)
    if regime == "smooth":
        if L is None or not math.isfinite(float(L)):
            raise ConfigError(f"L={L!r} must be a finite number >= 0 in the smooth regime "
                              "(psi has no Lipschitz gradient: use regime='lipschitz' with G)")
        return check_positive("L", float(L), strict=False) ** 2 / 4.0, 4.0
    if G is None or not math.isfinite(float(G)):
        raise ConfigError(f"G={G!r} must be a finite number >= 0 in the lipschitz regime")
    return 4.0 * check_positive("G", float(G), strict=False) ** 2, 2.0


def _bound_from_log_n(regime: str, dim: int, log_n: float, box: float, L, G) -> float:
    k, p = _constant(regime, L, G)
    log_u = log_n + log_unit_ball_volume(dim) - dim * math.log(4.0)
    return k * _moment_bound(p, dim, box, log_u)


def forward_mse_bound(regime: str, dim: int, n_samples: float, box: float,
                      L: float | None = None, G: float | None = None) -> Bound:
    """A priori bound on E[(psi(x) - psi_N(x))^2] over x and the N samples, uniform on [-box, box]^dim.

    smooth:    (L^2 / 4) * B_4,   Lipschitz:  4 G^2 * B_2,
    where B_p = a^p [h(p/n, u) + ((2 sqrt n)^p - 1) e^{-u}] >= E[d^p], u = N omega_n / 4^n
    (docs/bounds.md, theorem 2 and section 4). Symbols: n = dim, N = n_samples, a = box,
    L = Lipschitz constant of grad psi on the box, G = sup of ||grad psi|| on the box.

    >>> b = forward_mse_bound("smooth", 2, 1000, 4.0, L=1.0)
    >>> b.name, b.slope
    ('maxplus_apriori_smooth', -2.0)
    """
    n = check_int("dim", dim, minimum=1)
    a = check_positive("box", box)
    log_coverage_rate(n, n_samples)  # validates n_samples
    value = _bound_from_log_n(regime, n, math.log(float(n_samples)), a, L, G)
    return Bound(f"maxplus_apriori_{regime}", value, regime, theoretical_slope(regime, n))


def prior_mse_bound(regime: str, dim: int, n_samples: float, box: float, t: float,
                    L: float | None = None, G: float | None = None) -> Bound:
    """A priori bound on E[(J_bvs(y) - J_N(y))^2] at y = prox_{tJ}(x), x uniform on the box.

    J_N(y) = max_k { S(x_k, t) - ||y - x_k||^2 / (2t) } (the discrete backward Hopf-Lax
    formula). Pointwise 0 <= J_bvs(y) - J_N(y) <= (psi-side bound at x) / t, so the bound is
    :func:`forward_mse_bound` divided by t^2 (docs/bounds.md, section 5).
    """
    t = check_positive("t", t)
    fwd = forward_mse_bound(regime, dim, n_samples, box, L=L, G=G)
    return Bound(f"maxplus_prior_apriori_{regime}", fwd.value / t ** 2, regime, fwd.slope)


def bound_for_prior(prior, n_samples: float, box: float) -> Bound:
    """:func:`forward_mse_bound` with the constants the prior family declares.

    Reads ``prior.regime``, ``prior.psi_smoothness(box)`` (L, smooth regime) and
    ``prior.psi_lipschitz(box)`` (G, Lipschitz regime), and ``prior.dim``.
    """
    regime = check_choice("prior.regime", prior.regime, BOUND_REGIMES)
    if regime == "smooth":
        return forward_mse_bound(regime, prior.dim, n_samples, box, L=prior.psi_smoothness(box))
    return forward_mse_bound(regime, prior.dim, n_samples, box, G=prior.psi_lipschitz(box))


def log10_samples_needed(target_mse: float, regime: str, dim: int, box: float,
                         L: float | None = None, G: float | None = None) -> float:
    """log10 of the least N >= 1 with :func:`forward_mse_bound` <= target_mse (inf if none).

    The bound decreases in N, so the crossing is found by bisection on log N to a relative
    precision of 1e-9; counts too large for a float are still reported through their log10.
    """
    target = check_positive("target_mse", target_mse)
    n = check_int("dim", dim, minimum=1)
    a = check_positive("box", box)
    value = lambda log_n: _bound_from_log_n(regime, n, log_n, a, L, G)  # noqa: E731
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


def samples_needed(target_mse: float, regime: str, dim: int, box: float,
                   L: float | None = None, G: float | None = None) -> float:
    """Least N with forward_mse_bound(regime, dim, N, box, L, G).value <= target_mse.

    Returned as a float (ceil'd to an integer when below 2^53); ``math.inf`` when N exceeds the
    float range: the curse of dimensionality (see the table in docs/bounds.md). It is what
    the *bound* guarantees, not a lower bound on the samples any method needs.
    """
    log10_n = log10_samples_needed(target_mse, regime, dim, box, L=L, G=G)
    if log10_n > 308.0:
        return math.inf
    n = 10.0 ** log10_n
    if n >= 2.0 ** 53:
        return n
    # integer refinement: the least integer N whose bound meets the target
    value = lambda k: _bound_from_log_n(regime, dim, math.log(k), box, L, G)  # noqa: E731
    lo, hi = max(1, math.floor(n * (1 - 1e-6)) - 1), math.ceil(n * (1 + 1e-6)) + 1
    if value(lo) <= target_mse:
        return float(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if value(mid) > target_mse else (lo, mid)
    return float(hi)
