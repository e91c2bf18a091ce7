"""Scoring a fitted method against a prior's ground truth (BRIEF section 6, results schema v1).

Notation: x_i (i = 1..m) the held-out test points, psi = q - t S(., t) the true potential,
P = prox_{tJ} = grad psi, psi_theta / P_theta / J_hat the method's potential, prox and prior,
q(y) = ||y||^2 / 2. Every error is computed in float64 on the CPU from the method's outputs:

* forward_mse = mean_i (psi_theta(x_i) - psi(x_i))^2,  forward_rel_mse = forward_mse / mean_i psi(x_i)^2
* prox_mse    = mean_i ||P_theta(x_i) - P(x_i)||^2,    prox_rel_mse    = prox_mse / mean_i ||P(x_i)||^2
* prior_bvs_mse / prior_J_mse: J_hat(y_i) against J_bvs(y_i) / J(y_i) at y_i = P(x_i) (exact
  prox: where the data identify the prior), relative versions divided by the target's mean square
* prior_bvs_centered_rel_mse = var_i(J_hat(y_i) - J_bvs(y_i)) / var_i J_bvs(y_i): the prior error up
  to an additive constant, which prox pairs cannot identify (LPN, gradient-only training)
* prior errors use the points whose solve converged; prior_n_failed counts the others (test set)
* *_axis_*: the same along the first-axis cross-section s e_1, s in [-box, box] (hjbench.data)
* prox_residual = mean_i of the method's preimage residual ||grad psi_theta(x*(y_i)) - y_i||
* fy_gap_{mean,min} of psi_theta(x_i) + g_theta(z_i) - <x_i, z_i> at z_i = P_theta(x_i), with
  g_theta = t J_hat + q; it is >= 0 for a consistent (potential, prior) pair (Fenchel-Young);
  points whose prior solve did not converge are left out (a capped solve under-estimates g)
* seconds per point = wall time of one batched call over the m test points / m, after a
  warm-up call on a slice, with ``torch.cuda.synchronize`` before each clock read on CUDA
* cert_* (a posteriori, hjbench.score.bounds.certificate_for_prior) and bound_* (a priori,
  hjbench.score.bounds.bound_for_prior, BRIEF section 7).

What cannot be computed (an output the method does not provide, a bound module that fails, a
target with zero mean square) is NaN, and :class:`Evaluation` keeps the reason; never zero.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

import torch


__all__ = ["METRIC_COLUMNS", "Evaluation", "evaluate", "PeakMemory"]

METRIC_COLUMNS = (
    "forward_mse", "forward_rel_mse", "forward_axis_mse", "prox_mse", "prox_rel_mse",
    "prior_bvs_mse", "prior_bvs_rel_mse", "prior_bvs_centered_rel_mse", "prior_J_mse", "prior_J_rel_mse", "prior_axis_bvs_mse",
    "prox_residual", "fy_gap_mean", "fy_gap_min", "prior_n_failed", "prior_iterations_mean",
    "fit_seconds", "prox_seconds_per_point", "prior_seconds_per_point", "peak_memory_mb",
    "bound_name", "bound_value", "bound_rel_value", "bound_ratio", "bound_holds", "theoretical_slope",
    "cert_value", "cert_holds")
_NON_FLOAT = {"bound_name": None, "bound_holds": None, "cert_holds": None}
NAN = float("nan")


class Evaluation(dict):
    """Metric column -> value (NaN / None where unavailable) with ``reasons`` for the gaps."""

    def __init__(self) -> None:
        super().__init__({c: _NON_FLOAT.get(c, NAN) for c in METRIC_COLUMNS})
        self.reasons: dict[str, str] = {}

    def missing(self, columns, reason: str) -> None:
        for c in columns:
            self[c] = _NON_FLOAT.get(c, NAN)
            self.reasons.setdefault(c, reason)

    def message(self) -> str:
        """The distinct reasons, in order, joined by '; ' ('' when nothing is missing)."""
        return "; ".join(dict.fromkeys(self.reasons.values()))


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


def _f64(v: torch.Tensor) -> torch.Tensor:
    return v.detach().to("cpu", torch.float64)


def _sq(v: torch.Tensor) -> torch.Tensor:
    return v * v if v.ndim == 1 else (v * v).sum(-1)


def _errors(ev: Evaluation, group: str, est: torch.Tensor, target: torch.Tensor, mse_col: str,
            rel_col: str | None = None) -> None:
    """Squared-error mean (and relative to the target's mean square) into ev; NaN + reason."""
    est, target = _f64(est), _f64(target)
    bad = int((~torch.isfinite(est)).sum())
    if bad:
        ev.missing([mse_col] + ([rel_col] if rel_col else []),
                   f"{group}: method returned {bad} non-finite values")
        return
    ev[mse_col] = float(_sq(est - target).mean())
    if rel_col:
        scale = float(_sq(target).mean())
        if scale > 0:
            ev[rel_col] = ev[mse_col] / scale
        else:
            ev.missing([rel_col], f"{group}: target mean square is 0, relative error undefined")


def _centered(ev: Evaluation, est: torch.Tensor, target: torch.Tensor) -> None:
    """prior_bvs_centered_rel_mse: the error after removing the best additive constant."""
    est, target = _f64(est), _f64(target)
    if not bool(torch.isfinite(est).all()):
        ev.missing(["prior_bvs_centered_rel_mse"], "prior: method returned non-finite values")
        return
    scale = float(target.var(unbiased=False)) if target.numel() > 1 else 0.0
    if scale > 0:
        ev["prior_bvs_centered_rel_mse"] = float((est - target).var(unbiased=False)) / scale
    else:
        ev.missing(["prior_bvs_centered_rel_mse"], "prior: J_bvs is constant on the test points")


def _guard(ev: Evaluation, columns, group: str, fn: Callable[[], None]) -> None:
    """Run a ground-truth or bound computation; a failure becomes NaN + reason, not a crash."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 (recorded as a value, per the schema)
        ev.missing(columns, f"{group}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def evaluate(method, prior, split, box: float, *, n_cross: int = 401) -> Evaluation:
    """Every metric column of the results schema for a fitted ``method`` on ``split.test``.

    Args:
        method: a fitted :class:`~hjbench.methods.AbstractMethod`.
        prior: the ground truth (an :class:`~hjbench.priors.AbstractPrior` of the same dim, t).
        split: the :class:`~hjbench.data.Split` the method was fitted on (train is used by the
            a posteriori certificate, test for every error).
        box: half-width of the sampling box [-box, box]^dim (cross-sections, bounds).
        n_cross: points on the axis cross-section.

    Method-side exceptions propagate (the runner records a failed trial); peak memory is
    measured by the caller around fit and evaluation (:class:`PeakMemory`).
    """
    from ..data import cross_sections

    ev = Evaluation()
    x, name, provides = split.test.x, method.name, method.provides
    axis = cross_sections(prior.dim, box=box, n_points=n_cross, dtype=x.dtype, device=x.device)["axis"]
    x64, axis64 = _f64(x), _f64(axis)
    with torch.no_grad():
        psi, prox_true = prior.psi(x64), prior.prox(x64)
    ev["fit_seconds"] = float(getattr(method, "fit_seconds_", NAN))
    lacks = lambda out: f"{out}: not provided by {name}"  # noqa: E731

    learned_prox = psi_hat = None
    if "prox" in provides:
        learned_prox, ev["prox_seconds_per_point"] = _timed(method.prox, x)
        _errors(ev, "prox", learned_prox, prox_true, "prox_mse", "prox_rel_mse")
    else:
        ev.missing(["prox_mse", "prox_rel_mse", "prox_seconds_per_point"], lacks("prox"))

    if "potential" in provides:
        psi_hat = method.potential(x)
        _errors(ev, "forward", psi_hat, psi, "forward_mse", "forward_rel_mse")
        with torch.no_grad():
            psi_axis = prior.psi(axis64)
        _errors(ev, "forward", method.potential(axis), psi_axis, "forward_axis_mse")
        _guard(ev, ["cert_value", "cert_holds"], "cert",
               lambda: _certificate(ev, prior, psi_hat, x64, split.train.x, box))
    else:
        ev.missing(["forward_mse", "forward_rel_mse", "forward_axis_mse", "cert_value", "cert_holds"],
                   lacks("potential"))

    prior_cols = ["prior_bvs_mse", "prior_bvs_rel_mse", "prior_bvs_centered_rel_mse", "prior_J_mse", "prior_J_rel_mse",
                  "prior_axis_bvs_mse", "prox_residual", "prior_n_failed", "prior_iterations_mean",
                  "prior_seconds_per_point"]
    if "prior" in provides:
        y = prox_true.to(x.dtype).to(x.device)
        sol, ev["prior_seconds_per_point"] = _timed(method.prior_solution, y)
        ev["prior_n_failed"] = float(sol.n_failed)
        ev["prior_iterations_mean"] = float(sol.iterations.double().mean())
        res = _f64(sol.residual)
        res = res[torch.isfinite(res)]
        if res.numel():
            ev["prox_residual"] = float(res.mean())
        else:
            ev.missing(["prox_residual"], f"prox_residual: {name} gives no preimage residual")
        # a solve that did not converge returns its last iterate: count it (prior_n_failed) and
        # score the prior on the converged points only, so one diverged point cannot swamp the MSE
        ok = sol.converged.reshape(-1).cpu()
        sol_axis = method.prior_solution(axis)
        ok_axis = sol_axis.converged.reshape(-1).cpu()
        if not bool(ok.all()) or not bool(ok_axis.all()):
            ev.reasons["prior_n_failed"] = (f"prior: {int((~ok).sum())} of {ok.numel()} test and {int((~ok_axis).sum())} "
                              f"of {ok_axis.numel()} axis solves did not converge; prior errors use the "
                              "converged points")
        j_hat, y_ok = sol.value.reshape(-1).cpu()[ok], prox_true[ok]
        j_axis, axis_ok = sol_axis.value.reshape(-1).cpu()[ok_axis], axis64[ok_axis]
        with torch.no_grad():
            if not bool(ok.any()):
                ev.missing(["prior_bvs_mse", "prior_bvs_rel_mse", "prior_bvs_centered_rel_mse",
                            "prior_J_mse", "prior_J_rel_mse"], "prior: no test-point solve converged")
            else:
                _guard(ev, ["prior_bvs_mse", "prior_bvs_rel_mse"], "J_bvs",
                       lambda: _errors(ev, "prior", j_hat, prior.J_bvs(y_ok), "prior_bvs_mse", "prior_bvs_rel_mse"))
                _guard(ev, ["prior_bvs_centered_rel_mse"], "J_bvs",
                       lambda: _centered(ev, j_hat, prior.J_bvs(y_ok)))
                _guard(ev, ["prior_J_mse", "prior_J_rel_mse"], "J",
                       lambda: _errors(ev, "prior", j_hat, prior.J(y_ok), "prior_J_mse", "prior_J_rel_mse"))
            if not bool(ok_axis.any()):
                ev.missing(["prior_axis_bvs_mse"], "prior: no axis solve converged")
            else:
                _guard(ev, ["prior_axis_bvs_mse"], "J_bvs",
                       lambda: _errors(ev, "prior", j_axis, prior.J_bvs(axis_ok), "prior_axis_bvs_mse"))
    else:
        ev.missing(prior_cols, lacks("prior"))

    if learned_prox is not None and psi_hat is not None and "prior" in provides:
        z = _f64(learned_prox)
        sol_fy = method.prior_solution(learned_prox)
        keep = sol_fy.converged.reshape(-1).cpu()  # a capped solve under-estimates g: leave it out
        gap = (_f64(psi_hat) + prior.t * _f64(sol_fy.value) + 0.5 * (z * z).sum(-1) - (x64 * z).sum(-1))[keep]
        if not bool(keep.any()):
            ev.missing(["fy_gap_mean", "fy_gap_min"], "fy_gap: no prior solve at the learned prox converged")
        elif bool(torch.isfinite(gap).all()):
            ev["fy_gap_mean"], ev["fy_gap_min"] = float(gap.mean()), float(gap.min())
        else:
            ev.missing(["fy_gap_mean", "fy_gap_min"], "fy_gap: non-finite potential or prior values")
    else:
        ev.missing(["fy_gap_mean", "fy_gap_min"], f"fy_gap: {name} lacks prox, potential or prior")

    _guard(ev, ["bound_name", "bound_value", "bound_rel_value", "bound_ratio", "bound_holds",
                "theoretical_slope"], "bound", lambda: _bound(ev, prior, split.train.n_samples, box, psi))
    return ev


def _certificate(ev: Evaluation, prior, psi_hat, x64, x_train, box: float) -> None:
    """cert_value, cert_holds: the a posteriori certificate of the trial's own training sample."""
    from .bounds import certificate_for_prior

    # psi_hat keeps its dtype: the certificate's tolerance follows the coarser precision
    cols = certificate_for_prior(prior, psi_hat.detach().cpu(), x64, _f64(x_train), box).columns()
    ev["cert_value"] = float(cols["cert_value"])
    ev["cert_holds"] = None if cols["cert_holds"] is None else bool(cols["cert_holds"])


def _bound(ev: Evaluation, prior, n_samples: int, box: float, psi: torch.Tensor) -> None:
    """bound_* and theoretical_slope: the a priori max-plus bound of the cell (BRIEF section 7)."""
    from .bounds import bound_for_prior

    cols = bound_for_prior(prior, n_samples, box).columns(ev["forward_mse"], float((psi * psi).mean()))
    for key, value in cols.items():
        ev[key] = value if key in _NON_FLOAT else float(value)
    if ev["bound_holds"] is None:
        ev.missing(["bound_ratio", "bound_holds"], "bound_ratio: needs forward_mse (a potential)")


class PeakMemory:
    """Peak memory of the code run inside ``with PeakMemory(device) as mem:``, in MiB (``mem.mb``).

    * CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak statistics on entry
      (tensors allocated by torch on that device, not the caching allocator's reserve).
    * CPU (Linux): the rise of the process's resident set size over its value on entry,
      sampled every 5 ms from /proc/self/statm. Memory the allocator kept from earlier work
      is reused without raising the RSS, so this is a lower bound of the block's working set.
    * elsewhere: NaN with ``mem.reason``.
    """

    _STATM = "/proc/self/statm"

    def __init__(self, device: str | torch.device, interval: float = 0.005):
        self.device, self.interval = torch.device(device), interval
        self.mb, self.reason = NAN, ""
        self._stop = threading.Event()

    def _rss(self) -> int:
        with open(self._STATM) as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._rss())

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif os.path.exists(self._STATM):
            self._base = self._peak = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self.reason = "peak_memory_mb: no /proc/self/statm on this platform"
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif hasattr(self, "_thread"):
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self._rss())
            self.mb = (self._peak - self._base) / 2**20
