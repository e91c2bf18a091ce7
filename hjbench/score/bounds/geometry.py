"""Volumes, Gamma factors and the nearest-sample distance moments (docs/method.md section 7).

Everything here is a pure function of (dim, n_samples, box) on floats; see docs/bounds.md,
sections 1-2, for the derivation these docstrings summarise.

Notation: n = dim, a = box (the half-width of the box [-a, a]^n), N = n_samples,
omega_n = pi^{n/2} / Gamma(n/2 + 1) the volume of the unit ball of R^n,
d(x, X_N) = min_k ||x - x_k|| the distance from x to the nearest of the N samples.
"""

from __future__ import annotations

import math

from ...errors import check_int, check_positive

__all__ = [
    "unit_ball_volume",
    "log_unit_ball_volume",
    "gamma_factor",
    "diameter",
    "log_coverage_rate",
    "truncated_gamma_integral",
    "nearest_distance_moment_bound",
]

# series/asymptote switch for truncated_gamma_integral; beyond it P(s, u) = 1 to 1e-19
_SERIES_MAX_U = 50.0


def log_unit_ball_volume(dim: int) -> float:
    """log omega_n = (n/2) log pi - log Gamma(n/2 + 1) (finite for every n, no overflow)."""
    n = check_int("dim", dim, minimum=1)
    return 0.5 * n * math.log(math.pi) - math.lgamma(0.5 * n + 1.0)


def unit_ball_volume(dim: int) -> float:
    """Volume omega_n = pi^{n/2} / Gamma(n/2 + 1) of the unit Euclidean ball of R^dim.

    >>> round(unit_ball_volume(2), 12) == round(math.pi, 12)
    True
    """
    return math.exp(log_unit_ball_volume(dim))


def gamma_factor(p: float, dim: int) -> float:
    """Gamma(1 + p/n): the constant of the moment integral int_0^inf p r^{p-1} e^{-c r^n} dr = Gamma(1+p/n) c^{-p/n}."""
    check_positive("p", p)
    return math.gamma(1.0 + p / check_int("dim", dim, minimum=1))


def diameter(dim: int, box: float) -> float:
    """Diameter D = 2 a sqrt(n) of the box [-a, a]^n."""
    return 2.0 * check_positive("box", box) * math.sqrt(check_int("dim", dim, minimum=1))


def log_coverage_rate(dim: int, n_samples: float) -> float:
    """log u, with u = N omega_n / 4^n = c a^n and c = N omega_n / (4a)^n; P(d > a) <= exp(-u).

    ``n_samples`` may be a (huge) float, so that sample counts beyond 2^63 can be priced; work
    with log u because u itself overflows for the counts the curse of dimensionality asks for.
    """
    n = check_int("dim", dim, minimum=1)
    n_samples = check_positive("n_samples", n_samples)
    return math.log(n_samples) + log_unit_ball_volume(n) - n * math.log(4.0)


def truncated_gamma_integral(s: float, log_u: float) -> float:
    """h(s, u) = int_0^1 s v^{s-1} exp(-u v) dv = Gamma(1 + s) u^{-s} P(s, u), given log u.

    P is the regularised lower incomplete Gamma function. The substitution v = (r/a)^n gives
    a^{-p} int_0^a p r^{p-1} exp(-c r^n) dr = h(p/n, c a^n). h lies in (0, 1], tends to 1 as
    u -> 0 and decreases in u. For u <= 50 it is summed from the series
    h = e^{-u} sum_{k>=0} u^k / ((s+1)(s+2)...(s+k)) (positive terms, no overflow); for u > 50
    the upper bound Gamma(1+s) u^{-s} (from P <= 1) is returned, which is what a bound needs
    and exceeds h by a relative 1/P(s, 50) - 1 < 1e-15 for s <= 4.
    """
    s = check_positive("s", s)
    if log_u > math.log(_SERIES_MAX_U):
        return math.exp(math.lgamma(1.0 + s) - s * log_u)
    u = math.exp(log_u)
    term, total, k = 1.0, 1.0, 0
    while term > 1e-17 * total:
        k += 1
        term *= u / (s + k)
        total += term
    return math.exp(-u) * total


def _moment_bound(p: float, dim: int, box: float, log_u: float) -> float:
    ratio = (2.0 * math.sqrt(dim)) ** p  # (D / a)^p
    tail = math.exp(-math.exp(log_u)) if log_u < 7.0 else 0.0  # exp(-u), underflows past u ~ 745
    return box ** p * (truncated_gamma_integral(p / dim, log_u) + (ratio - 1.0) * tail)


def nearest_distance_moment_bound(p: float, dim: int, n_samples: float, box: float) -> float:
    """Upper bound on E[d(x, X_N)^p] for x, x_1..x_N i.i.d. uniform on [-a, a]^n.

    Theorem (docs/bounds.md, section 2). For every p > 0,

        E[d^p] <= a^p h(p/n, u) + (D^p - a^p) e^{-u}
               <= Gamma(1 + p/n) (N omega_n / (4a)^n)^{-p/n} + D^p e^{-u},

    with u = N omega_n / 4^n, D = 2 a sqrt(n) and h from :func:`truncated_gamma_integral`.
    Proof sketch: for r <= a the ball B(x, r) keeps an orthant (volume omega_n r^n / 2^n) inside
    the box, so P(d > r | x) <= (1 - omega_n r^n / (4a)^n)^N <= exp(-N omega_n r^n / (4a)^n);
    integrate E[d^p] = int_0^D p r^{p-1} P(d > r) dr split at r = a. The first (sharper) form
    is returned; it never exceeds D^p (the trivial bound) and its leading term is the second
    form's, Gamma(1 + p/n) (N omega_n / (4a)^n)^{-p/n} = O(N^{-p/n}).

    Args:
        p: the moment (> 0; the forward bounds use p = 2 and p = 4).
        dim: n. n_samples: N (a float is accepted). box: a.
    """
    p = check_positive("p", p)
    n = check_int("dim", dim, minimum=1)
    a = check_positive("box", box)
    return _moment_bound(p, n, a, log_coverage_rate(n, n_samples))
