"""Small statistics for the bound check: Student t quantiles, median CIs, log-log slope fits.

No SciPy: the t distribution with an integer number of degrees of freedom has a closed-form
CDF (Abramowitz & Stegun 26.7.3-26.7.4), inverted here by bisection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, check_int, check_positive

__all__ = ["t_two_sided_cdf", "t_quantile", "median_ci", "SlopeFit", "fit_loglog_slope", "slope_not_shallower",
           "slope_agreement"]


def t_two_sided_cdf(x: float, dof: int) -> float:
    """A(x | nu) = P(|T| <= x) for Student's T with nu = dof degrees of freedom, x >= 0.

    With theta = atan(x / sqrt(nu)) and c = cos(theta):
    nu odd:  (2/pi) [theta + sin(theta) (c + (2/3) c^3 + ... + (2*4*..*(nu-3))/(1*3*..*(nu-2)) c^{nu-2})]
    nu even: sin(theta) [1 + (1/2) c^2 + (1*3)/(2*4) c^4 + ... + (1*3*..*(nu-3))/(2*4*..*(nu-2)) c^{nu-2}]
    """
    nu = check_int("dof", dof, minimum=1)
    theta = math.atan(abs(x) / math.sqrt(nu))
    c, s = math.cos(theta), math.sin(theta)
    if nu % 2 == 1:
        total, term = 0.0, c
        for k in range(1, (nu - 1) // 2 + 1):  # terms c, (2/3) c^3, ...
            total += term
            term *= (2 * k) / (2 * k + 1) * c * c
        return (2.0 / math.pi) * (theta + s * total)
    total, term = 0.0, 1.0
    for k in range(1, nu // 2 + 1):  # terms 1, (1/2) c^2, ...
        total += term
        term *= (2 * k - 1) / (2 * k) * c * c
    return s * total


def t_quantile(level: float, dof: int) -> float:
    """The x with P(|T| <= x) = level (two-sided): e.g. t_quantile(0.95, 10) = 2.228..."""
    level = check_positive("level", level, upper=1.0)
    lo, hi = 0.0, 1.0
    while t_two_sided_cdf(hi, dof) < level:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_two_sided_cdf(mid, dof) < level else (lo, mid)
    return 0.5 * (lo + hi)


def median_ci(values, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(median, low, high): the median of the finite values and a seeded percentile bootstrap CI.

    The interval is the (1-level)/2 and (1+level)/2 percentiles of the medians of ``n_boot``
    resamples drawn with numpy's default_rng(seed) (the same recipe as summary.parquet);
    NaN bounds with fewer than 2 finite values, the median NaN with none.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(v))
    if v.size < 2:
        return med, math.nan, math.nan
    rng = np.random.default_rng(seed)
    boots = np.median(v[rng.integers(0, v.size, size=(n_boot, v.size))], axis=1)
    q = (1 - level) / 2
    return med, float(np.quantile(boots, q)), float(np.quantile(boots, 1 - q))


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares fit log(mse) = intercept + slope log(N), with a t-based CI of the slope.

    ``low``/``high`` are NaN when there are fewer than 3 points or fewer than 2 distinct N.
    """

    slope: float
    low: float
    high: float
    intercept: float
    n_points: int
    n_counts: int

    def contains(self, value: float) -> bool:
        """True when ``value`` lies in the interval [low, high] (False if the interval is NaN)."""
        return bool(self.low <= value <= self.high)


def fit_loglog_slope(n_samples, mse, *, level: float = 0.95) -> SlopeFit:
    """Fit the log-log slope of ``mse`` against ``n_samples`` over all finite, positive pairs.

    slope = S_xy / S_xx with x = log N, y = log mse; se = sqrt(SSR / (m - 2) / S_xx);
    interval slope +- t_{(1+level)/2, m-2} se, m the number of points (repetitions included).
    """
    n = np.asarray(n_samples, dtype=float)
    y = np.asarray(mse, dtype=float)
    if n.shape != y.shape:
        raise ConfigError(f"n_samples {n.shape} and mse {y.shape} must have the same shape")
    keep = np.isfinite(n) & np.isfinite(y) & (n > 0) & (y > 0)
    lx, ly = np.log(n[keep]), np.log(y[keep])
    m, counts = int(lx.size), int(np.unique(lx).size)
    if counts < 2:
        return SlopeFit(math.nan, math.nan, math.nan, math.nan, m, counts)
    xc = lx - lx.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (ly - ly.mean())) / sxx
    intercept = float(ly.mean() - slope * lx.mean())
    if m < 3:
        return SlopeFit(slope, math.nan, math.nan, intercept, m, counts)
    resid = ly - intercept - slope * lx
    se = math.sqrt(float(resid @ resid) / (m - 2) / sxx)
    half = t_quantile(level, m - 2) * se
    return SlopeFit(slope, slope - half, slope + half, intercept, m, counts)


def slope_not_shallower(fit: SlopeFit, theory: float) -> bool | None:
    """One-sided slope test of an upper bound: True iff fit.low <= theory.

    The a priori bound decays like N^{theory}; an estimator it guarantees may decay faster
    (steeper, more negative slope), never significantly slower. So the test fails only when
    the most negative end of the slope's interval (``fit.low``, 95% two-sided by default: a
    2.5% one-sided level) lies above the theoretical slope. None when there is no interval
    (fewer than 3 points or 2 sample counts) or no finite theoretical slope.

    >>> fit = SlopeFit(-0.4, -0.6, -0.2, 0.0, 10, 4)
    >>> slope_not_shallower(fit, -1.0), slope_not_shallower(fit, -0.5)
    (False, True)
    """
    if not (math.isfinite(fit.low) and math.isfinite(theory)):
        return None
    return bool(fit.low <= theory)


def slope_agreement(fit: SlopeFit, theory: float) -> str:
    """"consistent" (interval contains theory), "steeper than theory" (interval below it: passes
    the one-sided test), "shallower than theory" (interval above it: fails), or why not judged."""
    if not math.isfinite(fit.low):
        return f"not fitted: {fit.n_points} points at {fit.n_counts} sample counts (need 3 and 2)"
    if not math.isfinite(theory):
        return "no theoretical slope"
    if fit.contains(theory):
        return "consistent"
    return "steeper than theory" if fit.high < theory else "shallower than theory"
