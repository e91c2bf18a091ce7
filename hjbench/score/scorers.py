"""The per-output scorers behind :func:`hjbench.score.metrics.evaluate` (maths there and in
:mod:`.probes`), and the training record read from a fitted method.

Each scorer writes its columns into an :class:`~hjbench.score.metrics.Evaluation` ``ev``:
values, or NaN (None, "") with the reason, never zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from . import probes

__all__ = ["Case", "score_forward_prox", "score_train", "score_prior", "score_hull", "score_fy",
           "guard", "HULL_COLUMNS"]

NAN = float("nan")
_f64 = probes.f64


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> tuple[Any, float]:
    """fn(x) and its wall seconds per point (after a warm-up on a slice of x)."""
    fn(x[: min(8, x.shape[0])])
    _sync(x.device)
    start = time.perf_counter()
    out = fn(x)
    _sync(x.device)
    return out, (time.perf_counter() - start) / x.shape[0]


def guard(ev, columns, group: str, fn: Callable[[], None]) -> None:
    """Run a ground-truth or bound computation; a failure becomes NaN + reason, not a crash."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 (recorded as a value, per the schema)
        ev.missing(columns, f"{group}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


@dataclass
class Case:
    """What every scorer reads: the fitted method, the truth and the points."""

    method: Any
    prior: Any
    split: Any
    box: float
    x: torch.Tensor          # test points, the method's dtype and device
    x64: torch.Tensor        # the same in float64 on the CPU
    axis: torch.Tensor       # axis cross-section, the method's dtype and device

    @property
    def provides(self) -> frozenset:
        return self.method.provides

    def lacks(self, output: str) -> str:
        return f"{output}: not provided by {self.method.name}"


def _put(ev, group: str, err: probes.Errors, mse: str, rel: str | None, cov: str | None) -> None:
    """Write an :class:`~.probes.Errors` into ev: values, or NaN + reason; coverage beside."""
    ev[mse] = err.mse
    if rel:
        ev[rel] = err.rel
    why = err.reason(group)
    for col in (mse, rel):
        if col and ev[col] != ev[col]:
            ev.reasons.setdefault(col, why)
    if cov:
        ev[cov] = err.coverage
        if 0 < err.n_bad < err.n:
            ev.note(cov, f"{group}: {err.n_bad} of {err.n} outputs non-finite; errors over the finite ones")


def score_forward_prox(ev, case: Case) -> tuple[Any, Any]:
    """prox_*, forward_* (held-out and axis), the certificate; returns (P_theta, psi_theta) or None."""
    prior, x, x64, method = case.prior, case.x, case.x64, case.method
    prox_hat = psi_hat = None
    if "prox" in case.provides:
        prox_hat, ev["prox_seconds_per_point"] = _timed(method.prox, x)
        _put(ev, "prox", probes.finite_errors(prox_hat, prior.prox(x64)), "prox_mse", "prox_rel_mse", "prox_coverage")
    else:
        ev.missing(["prox_mse", "prox_rel_mse", "prox_coverage", "prox_seconds_per_point"], case.lacks("prox"))
    if "potential" in case.provides:
        psi_hat = method.potential(x)
        _put(ev, "forward", probes.finite_errors(psi_hat, prior.psi(x64)), "forward_mse", "forward_rel_mse",
             "forward_coverage")
        axis_err = probes.finite_errors(method.potential(case.axis), prior.psi(_f64(case.axis)))
        _put(ev, "forward (axis)", axis_err, "forward_axis_mse", None, "forward_axis_coverage")
        guard(ev, ["cert_value", "cert_holds"], "cert",
               lambda: _certificate(ev, prior, psi_hat, x64, case.split.train.x, case.box))
    else:
        ev.missing(["forward_mse", "forward_rel_mse", "forward_coverage", "forward_axis_mse", "forward_axis_coverage",
                    "cert_value", "cert_holds"], case.lacks("potential"))
    return prox_hat, psi_hat


def _headline(case: Case) -> str | None:
    """The error of what a method learns from: prox for prox pairs (they fix psi only up to a
    constant, so its forward error has a floor that no amount of data moves), else forward when
    the method has a potential, else prox."""
    provides, regime = case.provides, getattr(case.method, "data_regime", "values")
    if "prox" in provides and (regime == "prox_pairs" or "potential" not in provides):
        return "prox"
    return "forward" if "potential" in provides else None


def score_train(ev, case: Case, opt_limited_ratio: float) -> None:
    """forward_train_*, prox_train_*, headline_error, train_test_ratio and opt_limited."""
    prior, method = case.prior, case.method
    xt = case.split.train.x[: max(1, case.x.shape[0])]
    xt64 = _f64(xt)
    for group, truth, query in (("forward", prior.psi, "potential"), ("prox", prior.prox, "prox")):
        cols = [f"{group}_train_mse", f"{group}_train_rel_mse"]
        if query in case.provides:
            _put(ev, f"{group} (train)", probes.finite_errors(getattr(method, query)(xt), truth(xt64)), *cols, None)
        else:
            ev.missing(cols, case.lacks(query))
    headline = _headline(case)
    ev["headline_error"] = headline
    if headline is None:
        ev.missing(["headline_error", "train_test_ratio", "opt_limited"], case.lacks("potential or prox"))
        return
    train, test = ev[f"{headline}_train_rel_mse"], ev[f"{headline}_rel_mse"]
    if not (train == train and test == test) or test == 0:
        why = "held-out error is 0" if test == 0 else "training or held-out error is NaN"
        ev.missing(["train_test_ratio", "opt_limited"], f"train_test_ratio: {headline} {why}")
        return
    ev["train_test_ratio"] = train / test
    ev["opt_limited"] = bool(train / test > opt_limited_ratio)
    if ev["opt_limited"]:
        ev.note("opt_limited", f"opt_limited: {headline} training rel. MSE {train:.3g} is not well below its "
                               f"held-out rel. MSE {test:.3g} (ratio > {opt_limited_ratio:g})")


def _all_points(ev, group: str, values, target, mse: str, rel: str | None = None) -> torch.Tensor:
    """Prior error over every point (+inf where J_hat is not finite); returns the per-point errors."""
    sq = probes.sq_errors(values, target)
    ev[mse] = float(sq.mean()) if sq.numel() else NAN
    if rel:
        var = probes.variance(target)
        ev[rel] = ev[mse] / var if var > 0 else NAN
        if var <= 0:
            ev.reasons.setdefault(rel, f"{group}: target variance is 0, relative error undefined")
    return sq


def _solve(case: Case, y64: torch.Tensor, ev=None) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """The method's prior solution at y (float64 points), its values (float64) and ok mask;
    with ``ev``, the solve is timed into prior_seconds_per_point."""
    y = y64.to(case.x.dtype).to(case.x.device)
    if ev is None:
        sol = case.method.prior_solution(y)
    else:
        sol, ev["prior_seconds_per_point"] = _timed(case.method.prior_solution, y)
    value = _f64(sol.value).reshape(-1)
    ok = sol.converged.reshape(-1).cpu() & torch.isfinite(value)
    return sol, value, ok


def score_prior(ev, case: Case) -> None:
    """prior_* at y = P(x_test) and on the axis: every point stays in; coverage beside."""
    prior = case.prior
    y64 = prior.prox(case.x64)
    sol, value, ok = _solve(case, y64, ev)
    ev["prior_n_failed"] = float(sol.n_failed)
    ev["prior_iterations_mean"] = float(sol.iterations.double().mean())
    res = _f64(sol.residual).reshape(-1)
    res = res[torch.isfinite(res)]
    if res.numel():
        ev["prox_residual"] = float(res.mean())
    else:
        ev.missing(["prox_residual"], f"prox_residual: {case.method.name} gives no preimage residual")
    ev["prior_coverage"] = float(ok.double().mean())
    _, axis_value, axis_ok = _solve(case, _f64(case.axis))
    ev["prior_axis_coverage"] = float(axis_ok.double().mean())
    if not bool(ok.all()) or not bool(axis_ok.all()):
        ev.note("prior_coverage", f"prior: {int((~ok).sum())} of {ok.numel()} test and {int((~axis_ok).sum())} of "
                                  f"{axis_ok.numel()} axis points did not converge or are not finite; they stay in "
                                  "the prior errors (prior_bvs_mse_converged leaves them out)")
    with torch.no_grad():
        def bvs() -> None:
            target = prior.J_bvs(y64)
            sq = _all_points(ev, "prior", value, target, "prior_bvs_mse", "prior_bvs_rel_mse")
            ev["prior_bvs_mse_converged"] = float(sq[ok].mean()) if bool(ok.any()) else NAN
            if not bool(ok.any()):
                ev.reasons.setdefault("prior_bvs_mse_converged", "prior: no test point converged")
            diff, var = value - target, probes.variance(target)
            centred = probes.variance(diff) / var if bool(torch.isfinite(diff).all()) else float("inf")
            ev["prior_bvs_centered_rel_mse"] = centred if var > 0 else NAN
            if var <= 0:
                ev.reasons.setdefault("prior_bvs_centered_rel_mse", "prior: J_bvs is constant on the test points")
            ev["prior_ok_mask"], ev["prior_bvs_sq_errors"] = probes.pack_mask(ok), probes.pack_values(sq)

        guard(ev, ["prior_bvs_mse", "prior_bvs_rel_mse", "prior_bvs_mse_converged", "prior_bvs_centered_rel_mse",
                    "prior_ok_mask", "prior_bvs_sq_errors"], "J_bvs", bvs)
        guard(ev, ["prior_J_mse", "prior_J_rel_mse"], "J",
               lambda: _all_points(ev, "prior", value, prior.J(y64), "prior_J_mse", "prior_J_rel_mse"))
        guard(ev, ["prior_axis_bvs_mse"], "J_bvs",
               lambda: _all_points(ev, "prior", axis_value, prior.J_bvs(_f64(case.axis)), "prior_axis_bvs_mse"))


HULL_COLUMNS = ["prior_hull_bvs_mse", "prior_hull_J_mse", "prior_hull_n", "prior_hull_coverage"]


def score_hull(ev, case: Case, seed: int, n_probe: int) -> None:
    """prior_hull_*: the prior at hull-probe points, where J_bvs < J (off range(prox))."""
    probe = probes.hull_probe(case.prior, case.box, n_probe, seed)
    ev["prior_hull_n"] = float(len(probe.y))
    if not len(probe.y):
        ev.missing(HULL_COLUMNS[:2] + HULL_COLUMNS[3:], f"prior_hull: {probe.reason}")
        ev.note("prior_hull_n", f"prior_hull: {probe.reason}")
        return
    _, value, ok = _solve(case, probe.y)
    ev["prior_hull_coverage"] = float(ok.double().mean())
    _all_points(ev, "prior_hull", value, probe.J_bvs, "prior_hull_bvs_mse")
    _all_points(ev, "prior_hull", value, probe.J, "prior_hull_J_mse")


def score_fy(ev, case: Case, prox_hat, psi_hat) -> None:
    """fy_gap_{mean,min} over points with finite outputs and a converged prior solve."""
    if prox_hat is None or psi_hat is None or "prior" not in case.provides:
        ev.missing(["fy_gap_mean", "fy_gap_min"], f"fy_gap: {case.method.name} lacks prox, potential or prior")
        return
    z, psi = _f64(prox_hat), _f64(psi_hat)
    finite = torch.isfinite(z).all(-1) & torch.isfinite(psi)
    if not bool(finite.any()):
        ev.missing(["fy_gap_mean", "fy_gap_min"], "fy_gap: no point with a finite prox and potential")
        return
    sol = case.method.prior_solution(prox_hat[finite.to(prox_hat.device)])
    g = case.prior.t * _f64(sol.value).reshape(-1) + 0.5 * (z[finite] ** 2).sum(-1)
    gap = psi[finite] + g - (case.x64[finite] * z[finite]).sum(-1)
    keep = sol.converged.reshape(-1).cpu() & torch.isfinite(gap)  # a capped solve under-estimates g
    if not bool(keep.any()):
        ev.missing(["fy_gap_mean", "fy_gap_min"], "fy_gap: no prior solve at the learned prox converged")
        return
    ev["fy_gap_mean"], ev["fy_gap_min"] = float(gap[keep].mean()), float(gap[keep].min())


def _certificate(ev, prior, psi_hat, x64, x_train, box: float) -> None:
    """cert_value, cert_holds: the a posteriori certificate of the trial's own training sample."""
    from .bounds import certificate_for_prior

    # psi_hat keeps its dtype: the certificate's tolerance follows the coarser precision
    cols = certificate_for_prior(prior, psi_hat.detach().cpu(), x64, _f64(x_train), box).columns()
    ev["cert_value"] = float(cols["cert_value"])
    ev["cert_holds"] = None if cols["cert_holds"] is None else bool(cols["cert_holds"])
