"""Metrics against known answers, NaN-with-reason for what is missing, and the summary statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hjbench import priors
from hjbench.present.summary import bootstrap_median_ci
from hjbench.present.summary import summarize
from hjbench.data import sample_split
from hjbench.methods.base import AbstractMethod
from hjbench.score.metrics import METRIC_COLUMNS
from hjbench.score.metrics import evaluate
from hjbench.solution import Solution

BOX = 4.0


class _Truth(AbstractMethod):
    """Test-only method answering from a prior's closed forms, plus optional offsets.

    (Real methods never see the prior; this one exists to check the metric arithmetic.)
    """

    provides = frozenset({"prox", "potential", "prior"})

    def __init__(self, *, truth=None, prox_shift: float = 0.0, psi_shift: float = 0.0,
                 provides: frozenset | None = None, nan_prox: bool = False):
        self.truth, self.prox_shift, self.psi_shift, self.nan_prox = truth, prox_shift, psi_shift, nan_prox
        if provides is not None:
            self.provides = provides
        self.name = "truth"

    def _fit(self, data, generator):
        pass

    def _prox(self, x):
        out = self.truth.prox(x.double()) + self.prox_shift
        return out * float("nan") if self.nan_prox else out

    def _potential(self, x):
        return self.truth.psi(x.double()) + self.psi_shift

    def _prior_solution(self, y):
        return Solution.exact(self.truth.J_bvs(y.double()))


def _split(prior, n=64, n_test=128, dtype=torch.float64):
    return sample_split(prior, n, n_test=n_test, generator=torch.Generator().manual_seed(3), dtype=dtype)


@pytest.mark.parametrize("name", ["l1", "neg_l1"])
def test_exact_answers_give_zero_errors_and_zero_fenchel_young_gap(name):
    prior = priors.get(name, dim=3, t=1.0)
    split = _split(prior)
    ev = evaluate(_Truth(truth=prior).fit(split.train), prior, split, BOX, n_cross=21)
    assert set(ev) == set(METRIC_COLUMNS)
    for col in ("forward_mse", "forward_rel_mse", "forward_axis_mse", "prox_mse", "prox_rel_mse",
                "prior_bvs_mse", "prior_bvs_rel_mse", "prior_axis_bvs_mse"):
        assert ev[col] == pytest.approx(0.0, abs=1e-18), col
    assert abs(ev["fy_gap_mean"]) < 1e-10 and abs(ev["fy_gap_min"]) < 1e-10
    assert ev["prior_n_failed"] == 0.0 and ev["prior_iterations_mean"] == 0.0
    assert ev["prox_seconds_per_point"] > 0 and ev["prior_seconds_per_point"] > 0
    assert math.isnan(ev["prox_residual"]) and "no preimage residual" in ev.reasons["prox_residual"]
    assert ev["bound_value"] > 0 and ev["bound_holds"] is True and ev["cert_holds"] is True
    if name == "l1":  # J_bvs = J for a convex prior
        assert ev["prior_J_mse"] == pytest.approx(0.0, abs=1e-18)
    else:  # neg_l1: J_bvs < J near 0, so the error against J is positive
        assert ev["prior_J_mse"] > 0


@pytest.mark.parametrize("dim", [2, 3])
def test_certificate_holds_for_the_maxplus_interpolant_in_float32(dim):
    from hjbench import methods

    prior = priors.get("l1", dim=dim, t=1.0)  # smooth regime: tight (L/2) d^2 envelope
    split = _split(prior, n=256, n_test=256, dtype=torch.float32)
    ev = evaluate(methods.get("maxplus").fit(split.train), prior, split, BOX, n_cross=11)
    assert ev["cert_holds"] is True and ev["forward_mse"] <= ev["cert_value"]


def test_mse_and_relative_mse_by_hand():
    prior = priors.get("l1", dim=3, t=1.0)
    split = _split(prior)
    c = 0.1
    ev = evaluate(_Truth(truth=prior, prox_shift=c, psi_shift=c).fit(split.train), prior, split, BOX, n_cross=21)
    x = split.test.x
    assert ev["prox_mse"] == pytest.approx(3 * c * c, rel=1e-9)
    prox_var = float(((prior.prox(x) - prior.prox(x).mean(0)) ** 2).sum(-1).mean())  # total variance
    assert ev["prox_rel_mse"] == pytest.approx(3 * c * c / prox_var, rel=1e-9)
    assert ev["forward_mse"] == pytest.approx(c * c, rel=1e-9)
    assert ev["forward_rel_mse"] == pytest.approx(c * c / float(prior.psi(x).var(unbiased=False)), rel=1e-9)
    assert ev["forward_coverage"] == 1.0 and ev["prox_coverage"] == 1.0
    # the training error uses the same definitions on the training inputs
    assert ev["forward_train_mse"] == pytest.approx(c * c, rel=1e-9)
    assert ev["prox_train_mse"] == pytest.approx(3 * c * c, rel=1e-9)
    assert ev["headline_error"] == "forward"
    assert ev["train_test_ratio"] == pytest.approx(ev["forward_train_rel_mse"] / ev["forward_rel_mse"])
    assert ev["bound_ratio"] == pytest.approx(ev["forward_mse"] / ev["bound_value"])


def test_missing_outputs_are_nan_with_reasons_never_zero():
    prior = priors.get("minplus", dim=2, t=1.0)
    split = _split(prior, dtype=torch.float32)
    ev = evaluate(_Truth(truth=prior, provides=frozenset({"prox"})).fit(split.train), prior, split, BOX,
                  n_cross=21)
    assert ev["prox_mse"] < 1e-8 and not ev.reasons.get("prox_mse")
    for col in ("forward_mse", "forward_rel_mse", "prior_bvs_mse", "prior_J_rel_mse", "fy_gap_mean",
                "cert_value", "bound_ratio", "prior_seconds_per_point", "prior_n_failed"):
        assert math.isnan(ev[col]), col
        assert ev.reasons[col], col
    assert ev["cert_holds"] is None and ev["bound_holds"] is None
    assert "prior: not provided by truth" in ev.message() and "potential: not provided by truth" in ev.message()
    assert ev["bound_value"] > 0  # the a priori bound depends on the cell only


def test_non_finite_output_and_failing_bound_become_nan_with_reason(monkeypatch):
    import hjbench.score.bounds

    def broken(*args, **kwargs):
        raise RuntimeError("no constants")

    monkeypatch.setattr(hjbench.score.bounds, "bound_for_prior", broken)
    prior = priors.get("l1", dim=2, t=1.0)
    split = _split(prior)
    ev = evaluate(_Truth(truth=prior, nan_prox=True).fit(split.train), prior, split, BOX, n_cross=21)
    assert math.isnan(ev["prox_mse"]) and "non-finite" in ev.reasons["prox_mse"]
    assert math.isnan(ev["bound_value"]) and ev["bound_name"] is None
    assert "bound: RuntimeError: no constants" in ev.message()
    assert ev["forward_mse"] == pytest.approx(0.0, abs=1e-18)


def test_evaluate_is_pure():
    prior = priors.get("concave_quadratic", dim=3, t=1.0)
    split = _split(prior, dtype=torch.float32)
    x_before = split.test.x.clone()
    rng_before = torch.random.get_rng_state()
    evaluate(_Truth(truth=prior).fit(split.train), prior, split, BOX, n_cross=11)
    assert torch.equal(split.test.x, x_before) and not split.test.x.requires_grad
    assert torch.equal(torch.random.get_rng_state(), rng_before)


def test_bootstrap_ci_brackets_the_median_and_is_seeded():
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    low, high = bootstrap_median_ci(values, seed=1)
    assert low <= np.median(values) <= high and values.min() <= low and high <= values.max()
    assert (low, high) == bootstrap_median_ci(values, seed=1)
    assert all(math.isnan(v) for v in bootstrap_median_ci(np.array([1.0])))


def test_summary_long_format_with_cis_in_registry_order():
    rows = []
    for method in ("hj_sobolev", "hj"):
        for prior in ("neg_l1", "l1"):
            for rep, err in enumerate((1.0, 2.0, 4.0)):
                rows.append({"method": method, "prior": prior, "dim": 2, "n_samples": 10, "t": 1.0,
                             "regime": "values", "status": "ok" if rep < 2 else "failed",
                             **{c: np.nan for c in METRIC_COLUMNS}, "prox_mse": err if rep < 2 else np.nan,
                             "forward_mse": err})
    summary = summarize(pd.DataFrame(rows))
    assert list(summary.columns) == ["schema_version", "run_id", "method", "prior", "dim", "n_samples", "t", "regime", "data_regime", "metric",
                                     "median", "ci_low", "ci_high", "mean", "n_finite", "n_inf", "n_trials", "n_ok"]
    cells = summary.drop_duplicates(["method", "prior"])[["method", "prior"]].values.tolist()
    assert cells == [["hj", "l1"], ["hj", "neg_l1"], ["hj_sobolev", "l1"], ["hj_sobolev", "neg_l1"]]
    fwd = summary[(summary.metric == "forward_mse")].iloc[0]
    # the failed repetition's forward_mse (4.0) stays out: statistics are over ok trials only
    assert (fwd["median"], fwd["mean"], fwd["n_finite"], fwd["n_trials"], fwd["n_ok"]) == (1.5, 1.5, 2, 3, 2)
    assert 1.0 <= fwd["ci_low"] <= 1.5 <= fwd["ci_high"] <= 2.0
    prox = summary[(summary.metric == "prox_mse")].iloc[0]
    assert prox["n_finite"] == 2 and prox["median"] == 1.5
    empty = summary[(summary.metric == "prior_bvs_mse")].iloc[0]
    assert empty["n_finite"] == 0 and math.isnan(empty["median"]) and math.isnan(empty["ci_low"])
    assert summary.equals(summarize(pd.DataFrame(rows[::-1])))


def test_failed_prior_solves_stay_in_with_coverage_beside():
    """A diverged inversion (last iterate kept, converged=False) stays in the all-points error,
    is counted, and is left out of the converged-only error."""
    import torch

    from hjbench import priors as _priors
    from hjbench.data import sample_split as _sample_split
    from hjbench.methods.base import AbstractMethod
    from hjbench.score.metrics import evaluate as _evaluate
    from hjbench.solution import Solution

    class ExactButDiverging(AbstractMethod):
        """Exact prox and prior; the first three points of each query 'diverge' to 1e30."""

        provides = frozenset({"prox", "prior"})

        def __init__(self):
            pass

        def _fit(self, data, generator):
            self.prior_ = _priors.get("l1", dim=data.dim, t=data.t)

        def _prox(self, x):
            return self.prior_.prox(x)

        def _prior_solution(self, y):
            value = self.prior_.J_bvs(y).clone()
            converged = torch.ones(value.shape, dtype=torch.bool)
            value.reshape(-1)[:3] = 1e30
            converged.reshape(-1)[:3] = False
            return Solution(value, converged, torch.zeros(value.shape, dtype=torch.long),
                            torch.zeros(value.shape, dtype=value.dtype))

    prior = _priors.get("l1", dim=2)
    split = _sample_split(prior, 20, n_test=50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = ExactButDiverging()
    m.name = "exact_but_diverging"
    m.fit(split.train)
    ev = _evaluate(m, prior, split, 4.0, n_cross=11)
    assert ev["prior_n_failed"] == 3
    assert ev["prior_bvs_mse"] > 1e50 and ev["prior_axis_bvs_mse"] > 1e50   # 3 points at 1e30 stay in
    assert ev["prior_bvs_mse_converged"] < 1e-20
    assert ev["prior_coverage"] == pytest.approx(47 / 50) and ev["prior_axis_coverage"] == pytest.approx(8 / 11)
    assert "3 of 50 test and 3 of 11 axis points did not converge" in ev.message()
