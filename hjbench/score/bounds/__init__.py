"""The max-plus sample-complexity bounds (docs/method.md section 7; derivations in docs/bounds.md).

* :mod:`.geometry`: unit-ball volume omega_n, Gamma factors, E[d^p] bound for the
  nearest-sample distance of N uniform samples on a box.
* :mod:`.apriori`: expected-MSE bounds (smooth / piecewise smooth / Lipschitz regime),
  theoretical slopes, samples needed for a target error, ``bound_for_prior``.
* :mod:`.posterior`: the deterministic certificate for a given sample.
* :mod:`.stats`: median CIs, log-log slope fits and the one-sided slope test used by
  ``hjbench check-bound``; :mod:`.verdict`: its verdicts and report.
* :mod:`.table`: the samples-needed table (the curse of dimensionality).

Per trial the runner calls ``bound_for_prior(prior, n_samples, box).columns(forward_mse,
mean_sq_psi)`` and, for methods with a potential, ``certificate_for_prior(prior, psi_hat,
x_test, x_train, box).columns()``.
"""

from .apriori import (BOUND_REGIMES, Bound, bound_for_prior, forward_mse_bound, log10_samples_needed,
                      prior_constants, prior_mse_bound, samples_needed, theoretical_slope)
from .geometry import (diameter, gamma_factor, log_coverage_rate, log_unit_ball_volume,
                       nearest_distance_moment_bound, truncated_gamma_integral, unit_ball_volume)
from .posterior import (Certificate, certificate_for_prior, nearest_distance, nearest_same_piece_distance,
                        posterior_bound_pointwise, posterior_certificate)
from .stats import SlopeFit
from .stats import fit_loglog_slope
from .stats import median_ci
from .stats import slope_agreement
from .stats import slope_not_shallower
from .stats import t_quantile
from .stats import t_two_sided_cdf
from .table import TABLE_DIMS
from .table import samples_needed_markdown
from .table import samples_needed_table

__all__ = [
    "BOUND_REGIMES", "Bound", "bound_for_prior", "forward_mse_bound", "log10_samples_needed",
    "prior_constants", "prior_mse_bound", "samples_needed", "theoretical_slope",
    "diameter", "gamma_factor", "log_coverage_rate", "log_unit_ball_volume",
    "nearest_distance_moment_bound", "truncated_gamma_integral", "unit_ball_volume",
    "Certificate", "certificate_for_prior", "nearest_distance", "nearest_same_piece_distance",
    "posterior_bound_pointwise",
    "posterior_certificate",
    "SlopeFit", "fit_loglog_slope", "median_ci", "slope_agreement", "slope_not_shallower", "t_quantile",
    "t_two_sided_cdf",
    "TABLE_DIMS", "samples_needed_markdown", "samples_needed_table",
]
