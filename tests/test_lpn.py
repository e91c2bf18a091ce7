"""Learned Proximal Networks with post-hoc inversion (baselines.lpn; docs/method.md section 5)."""

from __future__ import annotations

import pytest
import torch

from baselines.lpn import LearnedProximalNetwork
from hjbench import methods, priors
from hjbench.data import sample_split
from hjbench.errors import ConfigError
from hjbench.training import LossSpec

SMALL = dict(budget=dict(steps=300, width=32, depth=1, lr=1e-2, lr_decay=0.5))


def _split(family="l1", dim=2, n=500, seed=0, n_test=400):
    prior = priors.get(family, dim=dim)
    return prior, sample_split(prior, n, n_test=n_test, generator=torch.Generator().manual_seed(seed))


def _prox_mse(m, prior, x):
    return float(((m.prox(x) - prior.prox(x)) ** 2).sum(-1).mean())


def test_both_registrations_declare_their_regime():
    assert methods.get("lpn").data_regime == "prox_pairs"
    assert methods.get("lpn_values").data_regime == "values"
    for name in ("lpn", "lpn_values"):
        m = methods.get(name)
        assert m.provides == {"prox", "potential", "prior"}
        assert m.solver == "lbfgs" and m.tol == 1e-5
        assert methods.entry(name).source == "baselines"


@pytest.mark.parametrize("name", ["lpn", "lpn_values"])
def test_held_out_prox_error_decreases_with_n_samples(name):
    errors = {}
    for n in (30, 1000):
        prior, split = _split(n=n, seed=3)
        m = methods.get(name, **SMALL).fit(split.train, seed=0)
        errors[n] = _prox_mse(m, prior, split.test.x)
    assert errors[1000] < 0.7 * errors[30], errors


def test_prior_by_inversion_is_accurate_and_flags_what_it_cannot_solve():
    prior, split = _split("concave_quadratic", dim=2, n=1000)
    m = methods.get("lpn_values", **SMALL).fit(split.train, seed=0)
    y = prior.prox(split.test.x[:100])
    sol = m.prior_solution(y)
    # near the corners of the box y = 2x may leave the range of grad psi_theta: those solves
    # diverge and are flagged; the rest converge to tolerance
    ok = sol.converged
    assert sol.n_failed <= 10 and bool((sol.residual[ok] <= m.tol).all())
    assert bool((sol.residual[~ok] > m.tol).all())
    target = prior.J_bvs(y)[ok]
    rel = float(((sol.value[ok] - target) ** 2).mean() / (target ** 2).mean())
    assert rel < 0.05
    # the prior is the Fenchel-Young read-out at the solver's preimage
    x_star = sol.argument.double()
    psi = m.solver_potential_(x_star)
    manual = ((x_star * y.double()).sum(-1) - psi - 0.5 * (y.double() ** 2).sum(-1)) / prior.t
    torch.testing.assert_close(sol.value.double()[ok], manual[ok], rtol=1e-6, atol=1e-6)
    # grad psi_theta is bounded (softplus' <= 1): far queries have no preimage and must be flagged
    far = torch.full((3, 2), 1e4)
    bad = m.prior_solution(far)
    assert bad.n_failed == 3 and not bad.ok


def test_solvers_agree_on_the_same_network():
    prior, split = _split("l1", dim=3, n=400)
    y = prior.prox(split.test.x[:6]) + 0.1            # off the flat set {prox = 0}
    m = methods.get("lpn", **SMALL).fit(split.train, seed=0)
    values = {}
    for solver in ("cg_per_point", "lbfgs", "newton_cg"):
        m.solver = solver
        sol = m.prior_solution(y)
        assert sol.ok, solver
        values[solver] = sol.value
    for solver in ("lbfgs", "newton_cg"):
        torch.testing.assert_close(values[solver], values["cg_per_point"], rtol=0, atol=1e-6)


def test_prox_pair_training_uses_the_documented_loss_spec():
    """LPN's schedule is LossSpec("prox_matching") on standardised targets (formulas: test_training)."""
    m = LearnedProximalNetwork(budget={"steps": 12}, warmup_fraction=0.25, gamma=0.4, gamma_stages=3)
    assert m._loss() == LossSpec("prox_matching", warmup_fraction=0.25, gamma=0.4, gamma_stages=3,
                                 scale=1.0)
    assert methods.get("lpn")._loss() == LossSpec("prox_matching", warmup_fraction=0.5, gamma=0.1,
                                                  gamma_stages=4, scale=1.0)
    assert methods.get("lpn_values")._loss() == LossSpec("mse")
    prior, split = _split("l1", dim=2, n=64)
    fitted = m.fit(split.train, seed=0)
    log = fitted.training_["fit"]
    assert log.steps_run == 12 and fitted.backend_ == "torch"


def test_prox_pair_potential_is_pinned_at_zero_and_convex():
    prior, split = _split("l1", dim=3, n=200)
    m = methods.get("lpn", budget={**SMALL["budget"], "steps": 50}).fit(split.train, seed=0)
    assert abs(float(m.potential(torch.zeros(1, 3))[0])) < 1e-5
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(200, 3, generator=g) * 3, torch.randn(200, 3, generator=g) * 3
    mid = m.potential(0.5 * (a + b))
    assert bool((mid <= 0.5 * (m.potential(a) + m.potential(b)) + 1e-5).all())


@pytest.mark.parametrize("kwargs, match", [
    ({"solver": "adam"}, "cg_per_point"),
    ({"budget": {"lr": -1e-3}}, "budget.lr"),
    ({"tol": 0.0}, "tol"),
    ({"max_iter": 0}, "max_iter"),
    ({"alpha": -1.0}, "alpha"),
    ({"train_on": "pairs"}, "train_on"),
    ({"warmup_fraction": 1.0}, "warmup_fraction"),
    ({"gamma": 0.0}, "gamma"),
    ({"gamma_stages": 0}, "gamma_stages"),
    ({"budget": {"steps": 0}}, "budget.steps"),
    ({"backend": "numpy"}, "backend"),
    ({"beta": -5.0}, "beta"),
])
def test_bad_parameters_raise_at_construction(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        methods.get("lpn", **kwargs)


def test_schedule_parameters_are_refused_when_training_on_values():
    with pytest.raises(ConfigError, match="prox_pairs"):
        methods.get("lpn_values", gamma=0.2)
    with pytest.raises(ConfigError, match="prox_pairs"):
        methods.get("lpn", train_on="values")   # lpn carries the schedule; use lpn_values
