"""Scoring a fitted method against a prior's ground truth (docs/method.md section 6; columns: :mod:`.catalogue`).

Notation: x_i (i = 1..m) the held-out test points, x'_k the method's own training inputs (the
first min(N, m) of them: i.i.d., an unbiased subsample), psi = q - t S(., t) the true
potential, P = prox_{tJ} = grad psi, psi_theta / P_theta / J_hat the method's potential, prox
and prior, q(y) = ||y||^2 / 2. Every error is computed in float64 on the CPU; per-point
errors and coverage follow :mod:`.probes`:

* forward_mse = mean_i (psi_theta(x_i) - psi(x_i))^2 over the points where psi_theta is finite,
  forward_coverage = the fraction of such points (an envelope is +inf off the samples' hull),
  forward_rel_mse = forward_mse / Var_i psi(x_i) (offset-invariant); prox_* likewise with
  ||P_theta - P||^2 and the total variance of P; coverage 0 gives NaN with a reason;
* forward_train_* / prox_train_*: the same on the training inputs x'_k. The headline error is
  the error of what the method learns from: prox for methods trained on prox pairs (which fix
  psi only up to a constant), else forward if it has a potential, else prox;
  train_test_ratio = its training rel. MSE /
  its held-out rel. MSE, and opt_limited = ratio > ``opt_limited_ratio``: a fit whose training
  error is not well below its held-out error is limited by optimisation, not by data;
* prior at y_i = P(x_i) (exact prox, where the data identify the prior), every point kept:
  prior_bvs_mse = mean_i (J_hat(y_i) - J_bvs(y_i))^2 over all i (+inf if a value is not
  finite; a solve that did not converge stays in with its last iterate), prior_J_mse against
  J, relative versions over Var J_bvs / Var J, prior_bvs_centered_rel_mse = Var_i(J_hat - J_bvs)
  / Var_i J_bvs (the error up to the additive constant that prox data cannot identify),
  prior_coverage = fraction converged and finite, prior_bvs_mse_converged over those only;
  prior_ok_mask and prior_bvs_sq_errors pack the per-point mask and errors so that the summary
  can score every method on the points where all methods of the cell converged;
* prior_hull_*: the prior at hull-probe points of the box, J_bvs < J (:func:`.probes.hull_probe`),
  where returning J instead of J_bvs is an error; NaN with the reason for families with tJ + q convex;
* *_axis_*: the same along the first-axis cross-section s e_1, s in [-box, box] (hjbench.data);
* prox_residual = mean_i of the method's preimage residual ||grad psi_theta(x*(y_i)) - y_i||;
* fy_gap_{mean,min} of psi_theta(x_i) + g_theta(z_i) - <x_i, z_i> at z_i = P_theta(x_i), with
  g_theta = t J_hat + q; >= 0 for a consistent pair (Fenchel-Young); over the points with finite
  outputs whose prior solve converged (a capped solve under-estimates g);
* seconds per point = wall time of one batched call over the m test points / m, after a
  warm-up call on a slice, with ``torch.cuda.synchronize`` before each clock read on CUDA;
* training record (steps_run, stop_reason, budget_mode, backend, ensemble_size, diverged,
  data_regime): :func:`.training_record.training_record`;
* cert_* (a posteriori, hjbench.score.bounds.certificate_for_prior) and bound_* (a priori,
  hjbench.score.bounds.bound_for_prior, docs/method.md section 7).

What cannot be computed is NaN (None for bool and str columns, "" for packed data) and
:class:`Evaluation` keeps the reason; never zero.
"""

from __future__ import annotations


import torch

from . import probes
from . import scorers
from .training_record import training_record
from .catalogue import CATALOGUE
from .catalogue import METRIC_COLUMNS
from ..errors import ConfigError
from ..errors import check_int

__all__ = ["METRIC_COLUMNS", "Evaluation", "evaluate"]

NAN = float("nan")
_DEFAULT = {"float": NAN, "bool": None, "str": None, "blob": ""}
_f64 = probes.f64


def _default(column: str):
    return _DEFAULT[CATALOGUE[column].kind]


class Evaluation(dict):
    """Metric column -> value (NaN / None / "" where unavailable) with ``reasons`` for the gaps."""

    def __init__(self) -> None:
        super().__init__({c: _default(c) for c in METRIC_COLUMNS})
        self.reasons: dict[str, str] = {}

    def missing(self, columns, reason: str) -> None:
        for c in columns:
            self[c] = _default(c)
            self.reasons.setdefault(c, reason)

    def note(self, column: str, reason: str) -> None:
        """Keep ``reason`` for a column that has a value (partial coverage, +inf errors)."""
        self.reasons.setdefault(column, reason)

    def message(self) -> str:
        """The distinct reasons, in order, joined by '; ' ('' when nothing is missing)."""
        return "; ".join(dict.fromkeys(self.reasons.values()))


def evaluate(method, prior, split, box: float, *, n_cross: int = 401, seed: int = 0,
             opt_limited_ratio: float = 0.5, n_probe: int | None = None) -> Evaluation:
    """Every metric column of the catalogue (stage "trial") for a fitted ``method``.

    Args:
        method: a fitted :class:`~hjbench.methods.AbstractMethod`.
        prior: the ground truth (an :class:`~hjbench.priors.AbstractPrior` of the same dim, t).
        split: the :class:`~hjbench.data.Split` the method was fitted on (train: training errors
            and the a posteriori certificate; test: every held-out error).
        box: half-width of the sampling box [-box, box]^dim (cross-sections, hull probe, bounds).
        n_cross: points on the axis cross-section.
        seed: seeds the hull probe; pass the cell's data seed, so every method of a cell is
            scored on the same probe points.
        opt_limited_ratio: opt_limited = train_test_ratio > this (0 < ratio).
        n_probe: hull-probe points wanted (default m // 2 with m test points; 0 switches it off).

    Method-side exceptions propagate (the runner records a failed trial); peak memory is
    measured by the caller around fit and evaluation (:class:`hjbench.run.memory.PeakMemory`).
    """
    from ..data import cross_sections

    if not (isinstance(opt_limited_ratio, (int, float)) and opt_limited_ratio > 0):
        raise ConfigError(f"opt_limited_ratio={opt_limited_ratio!r}: must be a number > 0; e.g. 0.5")
    x = split.test.x
    n_probe = x.shape[0] // 2 if n_probe is None else check_int("n_probe", n_probe, minimum=0)
    axis = cross_sections(prior.dim, box=box, n_points=n_cross, dtype=x.dtype, device=x.device)["axis"]
    case = scorers.Case(method, prior, split, box, x, _f64(x), axis)
    ev = Evaluation()
    ev["fit_seconds"] = float(getattr(method, "fit_seconds_", NAN))
    record, reasons = training_record(method)
    ev.update(record)
    for col, why in reasons.items():
        ev.reasons.setdefault(col, why)
    with torch.no_grad():
        prox_hat, psi_hat = scorers.score_forward_prox(ev, case)
        scorers.score_train(ev, case, float(opt_limited_ratio))
        if "prior" in case.provides:
            scorers.score_prior(ev, case)
            scorers.guard(ev, scorers.HULL_COLUMNS, "prior_hull", lambda: scorers.score_hull(ev, case, int(seed), n_probe))
        else:
            ev.missing([c for c in METRIC_COLUMNS if CATALOGUE[c].group in ("prior", "hull")]
                       + ["prox_residual", "prior_seconds_per_point"], case.lacks("prior"))
        scorers.score_fy(ev, case, prox_hat, psi_hat)
        scorers.guard(ev, ["bound_name", "bound_value", "bound_rel_value", "bound_ratio", "bound_holds",
                    "theoretical_slope"], "bound",
               lambda: _bound(ev, prior, split.train.n_samples, box, prior.psi(case.x64)))
    return ev


def _bound(ev: Evaluation, prior, n_samples: int, box: float, psi: torch.Tensor) -> None:
    """bound_* and theoretical_slope: the a priori max-plus bound of the cell (docs/method.md section 7).

    ``bound_rel_value`` = bound_value / Var psi(x_test), in the units of forward_rel_mse."""
    from .bounds import bound_for_prior

    cols = bound_for_prior(prior, n_samples, box).columns(ev["forward_mse"], probes.variance(psi))
    for key, value in cols.items():
        ev[key] = value if CATALOGUE[key].kind != "float" else float(value)
    if ev["bound_holds"] is None:
        ev.missing(["bound_ratio", "bound_holds"], "bound_ratio: needs forward_mse (a potential)")
