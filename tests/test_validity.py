"""Valid comparisons: every method scored on equal terms (docs/method.md section 6).

Planted methods that a sloppy scorer would rate well: an under-trained fit, a prior whose
solve fails on hard points, a prior that returns J instead of its proximal hull J_bvs, an
output defined on part of the box only. Each test fails if the scorer lets it through.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hjbench import methods
from hjbench import priors
from hjbench.data import sample_split
from hjbench.methods.base import AbstractMethod
from hjbench.present.summary import summarize
from hjbench.score import probes
from hjbench.score.metrics import evaluate
from hjbench.solution import Solution
from hjbench.training import TrainLog

BOX = 4.0


class _Planted(AbstractMethod):
    """Test-only method answering from a prior's closed forms (real methods never see it), with a
    planted defect: ``kind`` picks which."""

    provides = frozenset({"prox", "potential", "prior"})

    def __init__(self, *, truth=None, kind: str = "exact", provides: frozenset | None = None):
        self.truth, self.kind, self.name = truth, kind, f"planted_{kind}"
        if provides is not None:
            self.provides = provides

    def _fit(self, data, generator):
        pass

    def _outside(self, x):  # the half of the box an "envelope" cannot serve
        return x[..., 0] > 0

    def _prox(self, x):
        out = self.truth.prox(x.double())
        if self.kind == "constant":
            return torch.zeros_like(out)
        if self.kind == "half":
            return out.masked_fill(self._outside(x)[..., None], float("nan"))
        return out

    def _potential(self, x):
        psi = self.truth.psi(x.double())
        if self.kind == "constant":
            return torch.full_like(psi, 3.0)
        if self.kind == "half":
            return psi.masked_fill(self._outside(x), float("inf"))
        if self.kind == "shifted":
            return psi + 0.1
        return psi

    def _prior_solution(self, y):
        y = y.double()
        if self.kind == "returns_J":
            return Solution.exact(self.truth.J(y))
        value = self.truth.J_bvs(y)
        if self.kind != "hard_points":
            return Solution.exact(value)
        hard = y.abs().amax(-1) < 1.0          # a capped solve near 0: last iterate, off by 5
        sol = Solution.exact(torch.where(hard, value + 5.0, value))
        return Solution(sol.value, ~hard, sol.iterations, sol.residual)


def _split(prior, n=256, n_test=200, seed=3):
    return sample_split(prior, n, n_test=n_test, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _eval(method, prior, split, **kw):
    return evaluate(method.fit(split.train), prior, split, BOX, n_cross=21, seed=7, **kw)


# -- training error beside held-out error -----------------------------------------------------
def test_constant_potential_is_flagged_optimisation_limited():
    prior = priors.get("l1", dim=2)
    ev = _eval(_Planted(truth=prior, kind="constant"), prior, _split(prior))
    assert ev["headline_error"] == "forward"
    assert ev["forward_train_rel_mse"] > 0.5 and ev["train_test_ratio"] > 0.5
    assert ev["opt_limited"] is True and "opt_limited" in ev.message()


def test_hj_after_five_steps_is_flagged_and_maxplus_is_not():
    prior = priors.get("l1", dim=2)
    split = _split(prior, n=512, n_test=256)
    under = _eval(methods.get("hj", budget={"steps": 5, "width": 8, "depth": 1}), prior, split)
    assert under["opt_limited"] is True, under["train_test_ratio"]
    assert under["steps_run"] == 10 and under["stop_reason"] == "stage1:max_steps,stage2:max_steps"
    assert under["diverged"] is False and under["data_regime"] == "values"
    exact = _eval(methods.get("maxplus"), prior, split)
    assert exact["forward_train_rel_mse"] < 1e-9 < exact["forward_rel_mse"]   # interpolates its samples
    assert exact["opt_limited"] is False and exact["train_test_ratio"] < 1e-3
    assert exact["stop_reason"] == "" and math.isnan(exact["steps_run"])     # not learned: no record


def test_opt_limited_ratio_is_a_keyword_and_is_checked():
    prior = priors.get("l1", dim=2)
    split = _split(prior)
    method = _Planted(truth=prior, kind="constant")
    assert _eval(method, prior, split, opt_limited_ratio=1e6)["opt_limited"] is False
    with pytest.raises(Exception, match="opt_limited_ratio=-1"):
        _eval(method, prior, split, opt_limited_ratio=-1)


def test_training_record_columns():
    class Recorded(_Planted):
        def _fit(self, data, generator):
            self.training_ = {"stage1": TrainLog(steps_run=10, stop_reason="converged", mode="converged"),
                              "stage2": [TrainLog(steps_run=5, stop_reason="max_steps", mode="converged"),
                                         TrainLog(steps_run=5, stop_reason="diverged", mode="converged")]}

    prior = priors.get("l1", dim=2)
    split = _split(prior)
    method = Recorded(truth=prior).fit(split.train)
    method.ensemble_size_, method.backend_ = 2, "jax"   # as fit_many would set them
    ev = evaluate(method, prior, split, BOX, n_cross=21)
    assert ev["steps_run"] == 20 and ev["stop_reason"] == "stage1:converged,stage2:max_steps|diverged"
    assert ev["budget_mode"] == "converged" and ev["backend"] == "jax" and ev["ensemble_size"] == 2
    assert ev["diverged"] is True


# -- coverage: nothing dropped silently ----------------------------------------------------------
def test_partial_outputs_are_scored_over_finite_points_with_coverage():
    prior = priors.get("neg_l1", dim=2)
    split = _split(prior)
    ev = _eval(_Planted(truth=prior, kind="half"), prior, split)
    share = float((split.test.x[:, 0] <= 0).double().mean())
    assert ev["forward_coverage"] == pytest.approx(share) and ev["prox_coverage"] == pytest.approx(share)
    assert 0.3 < share < 0.7 and ev["forward_mse"] == 0.0 and ev["prox_mse"] == 0.0
    assert "non-finite" in ev.reasons["forward_coverage"]
    none = _eval(_Planted(truth=prior, kind="half"), prior, _split(prior, seed=4))
    assert none["forward_coverage"] < 1  # a second draw: still partial, never silently complete


def test_prior_failing_on_hard_points_shows_coverage_and_the_common_subset():
    prior = priors.get("l1", dim=2)
    split = _split(prior, n_test=300)
    hard = _eval(_Planted(truth=prior, kind="hard_points"), prior, split)
    exact = _eval(_Planted(truth=prior, kind="exact"), prior, split)
    y = prior.prox(split.test.x)
    n_hard = int((y.abs().amax(-1) < 1).sum())
    assert n_hard > 10 and hard["prior_coverage"] == pytest.approx(1 - n_hard / 300)
    assert hard["prior_bvs_mse"] == pytest.approx(25 * n_hard / 300)       # failures stay in
    assert hard["prior_bvs_mse_converged"] < 1e-20 < hard["prior_bvs_mse"]
    assert exact["prior_coverage"] == 1.0 and exact["prior_bvs_mse"] < 1e-20
    ident = {"prior": "l1", "dim": 2, "n_samples": 256, "t": 1.0, "regime": "values", "seed": 1,
             "repetition": 0, "status": "ok"}
    rows = pd.DataFrame([{**ident, **dict(ev), "method": m} for m, ev in (("hard", hard), ("exact", exact))])
    summary = summarize(rows)
    common = summary[summary["metric"] == "prior_bvs_mse_common"].set_index("method")["median"]
    fraction = summary[summary["metric"] == "prior_common_fraction"].set_index("method")["median"]
    assert common["hard"] < 1e-20 and common["exact"] < 1e-20
    assert fraction["hard"] == fraction["exact"] == pytest.approx(1 - n_hard / 300)
    coverage = summary[summary["metric"] == "prior_coverage"].set_index("method")["median"]
    assert coverage["hard"] < 1 == coverage["exact"]


def test_non_finite_prior_values_make_the_all_points_error_infinite():
    class Nan(_Planted):
        def _prior_solution(self, y):
            value = self.truth.J_bvs(y.double()).clone()
            value[..., :1] = float("nan") if value.ndim else value
            return Solution.exact(value)

    prior = priors.get("l1", dim=2)
    ev = _eval(Nan(truth=prior), prior, _split(prior))
    assert ev["prior_bvs_mse"] == math.inf and ev["prior_coverage"] < 1
    assert ev["prior_bvs_mse_converged"] < 1e-20


# -- the hull probe ----------------------------------------------------------------------------------
def test_hull_probe_catches_J_instead_of_J_bvs_on_neg_l1():
    prior = priors.get("neg_l1", dim=2)
    split = _split(prior)
    wrong = _eval(_Planted(truth=prior, kind="returns_J"), prior, split)
    right = _eval(_Planted(truth=prior, kind="exact"), prior, split)
    assert wrong["prior_bvs_mse"] < 1e-20 and right["prior_bvs_mse"] < 1e-20   # on range(prox): J_bvs = J
    assert wrong["prior_hull_n"] == right["prior_hull_n"] == 100                  # n_test // 2
    assert wrong["prior_hull_bvs_mse"] > 0.01 and right["prior_hull_bvs_mse"] < 1e-20
    assert right["prior_hull_J_mse"] == pytest.approx(wrong["prior_hull_bvs_mse"])
    assert right["prior_hull_coverage"] == 1.0


def test_hull_probe_points_are_off_the_hull_and_seeded():
    prior = priors.get("neg_l1", dim=3)
    a, b = probes.hull_probe(prior, BOX, 50, seed=11), probes.hull_probe(prior, BOX, 50, seed=11)
    assert torch.equal(a.y, b.y) and len(a.y) == 50 and (a.J_bvs < a.J).all()
    assert not torch.equal(a.y, probes.hull_probe(prior, BOX, 50, seed=12).y)
    assert (a.y.abs() <= BOX).all() and (a.y.abs().amin(-1) < prior.t).all()   # neg_l1: some |y_i| < t


@pytest.mark.parametrize("name", ["l1", "concave_quadratic"])
def test_hull_probe_is_empty_where_J_bvs_equals_J(name):
    prior = priors.get(name, dim=2)
    ev = _eval(_Planted(truth=prior, kind="returns_J"), prior, _split(prior))
    assert ev["prior_hull_n"] == 0 and math.isnan(ev["prior_hull_bvs_mse"])
    assert ev.reasons["prior_hull_bvs_mse"] == "prior_hull: J_bvs = J on the box (tJ + q convex)"


# -- variance-relative errors --------------------------------------------------------------------------
def test_relative_mse_is_invariant_to_a_constant_added_to_the_target():
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(500, generator=gen, dtype=torch.float64)
    est = target + 0.1 * torch.randn(500, generator=gen, dtype=torch.float64)
    base = probes.finite_errors(est, target)
    for c in (10.0, -1e3):
        moved = probes.finite_errors(est + c, target + c)
        assert moved.mse == pytest.approx(base.mse, rel=1e-9) and moved.rel == pytest.approx(base.rel, rel=1e-6)
        assert base.mse / float((target + c).pow(2).mean()) < base.rel / 50   # a mean-square scale would move
    vec = torch.randn(300, 3, generator=gen, dtype=torch.float64)
    err = probes.finite_errors(vec + 0.2, vec + 0.2 + 0.1 * torch.ones(3, dtype=torch.float64))
    assert err.rel == pytest.approx(0.03 / probes.variance(vec))
    assert probes.finite_errors(vec + 7.0, vec + 7.1).rel == pytest.approx(err.rel, rel=1e-9)


def test_evaluate_relative_errors_do_not_move_with_an_offset_prior():
    class Offset:
        def __init__(self, inner, c):
            self.inner, self.c = inner, c

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def psi(self, x):
            return self.inner.psi(x) + self.c

    inner = priors.get("l1", dim=2)
    split = _split(inner)
    rel = []
    for c in (0.0, 50.0):
        prior = Offset(inner, c)
        ev = _eval(_Planted(truth=prior, kind="shifted"), prior, split)
        rel.append(ev["forward_rel_mse"])
    assert rel[0] == pytest.approx(rel[1], rel=1e-6)


def test_packed_per_point_data_round_trips():
    mask = torch.tensor([True, False, True] * 7 + [False])
    assert np.array_equal(probes.unpack_mask(probes.pack_mask(mask)), mask.numpy())
    values = torch.tensor([0.0, 1e-30, 0.1234567, 3e38, math.inf, 1e40], dtype=torch.float64)
    back = probes.unpack_values(probes.pack_values(values))
    assert back[0] == 0 and back[4] == math.inf and back[5] == math.inf
    np.testing.assert_allclose(back[1:4], values[1:4].numpy(), rtol=2.0 ** -8)
    assert len(probes.pack_values(torch.zeros(2000))) < 6000   # 2 bytes a point, base64


def test_headline_error_is_the_error_of_what_the_method_learns_from():
    """Prox pairs fix psi only up to a constant: LPN's flag reads its prox error, not its forward
    error (whose constant offset no amount of data removes); a values method reads forward."""
    import baselines
    import torch

    from hjbench import methods, priors
    from hjbench.data import sample_split
    from hjbench.score.metrics import evaluate

    baselines.register()
    prior = priors.get("neg_l1", dim=2)
    split = sample_split(prior, 128, n_test=64, generator=torch.Generator().manual_seed(0))
    heads = {}
    for name in ("lpn", "maxplus"):
        m = methods.get(name, **methods.entry(name).cls.test_params).fit(split.train, seed=0)
        heads[name] = evaluate(m, prior, split, 4.0, n_cross=11)["headline_error"]
    assert heads == {"lpn": "prox", "maxplus": "forward"}
