"""Post-hoc inversion (baselines.inversion): exact where it should be, honest where it is not.

With psi_theta replaced by the exact psi of a family whose tJ + q is convex, the inverted prior
(<x*, y> - psi(x*) - q(y)) / t must equal J_bvs to solver tolerance, for every solver (docs/method.md
sections 2, 5). Failures (iteration cap, y outside the range of grad psi) must be flagged.
"""

from __future__ import annotations

import math

import pytest
import torch

from baselines.inversion import SOLVERS, invert
from hjbench import priors
from hjbench.errors import ConfigError


def _exact(name: str, dim: int, t: float = 1.0):
    """(prior, value_and_grad, hvp) of the exact potential psi of a family, in closed form."""
    p = priors.get(name, dim=dim, t=t)
    if name == "l1":          # psi = 1/2 dist(x, [-t, t]^n)^2, Hessian diag(1{|x_i| > t})
        hvp = lambda x, v: (x.abs() > t).to(v.dtype) * v  # noqa: E731
    else:                     # psi = ||x||^2 / (2 (1 - c t)), Hessian I / (1 - c t)
        c = p.params()["c"]
        hvp = lambda x, v: v / (1 - c * t)  # noqa: E731
    return p, (lambda x: (p.psi(x), p.prox(x))), hvp


def _queries(dim, n=64, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(n, dim, generator=g, dtype=torch.float64) - 1) * scale


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dim", [3, 8])
@pytest.mark.parametrize("family", ["l1", "concave_quadratic"])
def test_inversion_of_exact_psi_gives_J_bvs(family, dim, solver):
    t, tol = 1.0, 1e-5
    p, vg, hvp = _exact(family, dim, t)
    y = _queries(dim, n=24 if solver == "cg_per_point" else 64)
    sol = invert(vg, y, hvp=hvp, solver=solver, tol=tol)
    assert sol.ok and bool((sol.residual <= tol).all())
    J = (sol.value - 0.5 * (y * y).sum(-1)) / t
    # the value is stationary in x: its error is O(residual^2 / curvature) << tol
    torch.testing.assert_close(J, p.J_bvs(y), rtol=0, atol=tol)
    # the preimage is grad g(y), to the residual over the (unit or larger) curvature
    torch.testing.assert_close(sol.argument, p.grad_g(y), rtol=0, atol=2 * tol)


def _logcosh():
    """f(x) = sum log cosh x_i: convex, grad f = tanh x lies in (-1, 1)^n (bounded range)."""
    vg = lambda x: (torch.log(torch.cosh(x)).sum(-1), torch.tanh(x))  # noqa: E731
    hvp = lambda x, v: (1 - torch.tanh(x) ** 2) * v  # noqa: E731
    return vg, hvp


@pytest.mark.parametrize("solver", SOLVERS)
def test_iteration_cap_is_reported_as_failure(solver):
    vg, hvp = _logcosh()
    y = 0.9 * torch.tanh(_queries(3, n=10))     # inside the range; no solver is exact in one step
    sol = invert(vg, y, hvp=hvp, solver=solver, tol=1e-10, max_iter=1)
    assert sol.n_failed == 10 and not sol.ok
    assert bool((sol.iterations == 1).all())
    assert bool((sol.residual > 1e-10).all())
    assert torch.isfinite(sol.value).all(), "the last iterate's value is still reported"
    assert invert(vg, y, hvp=hvp, solver=solver, tol=1e-10).ok, "and more iterations fix it"


@pytest.mark.parametrize("solver", SOLVERS)
def test_query_outside_the_range_of_grad_psi_is_flagged(solver):
    vg, hvp = _logcosh()
    inside = torch.tensor([[0.5, -0.3]], dtype=torch.float64)
    outside = torch.tensor([[2.0, 0.1], [0.0, -1.5]], dtype=torch.float64)
    ok = invert(vg, inside, hvp=hvp, solver=solver, max_iter=200)
    assert ok.ok
    torch.testing.assert_close(ok.argument, torch.atanh(inside), rtol=0, atol=1e-4)
    bad = invert(vg, outside, hvp=hvp, solver=solver, max_iter=200)
    assert bad.n_failed == 2, "a divergent solve must not be reported as converged"
    # what is reported is the truth about the last iterate, not garbage marked ok
    assert bool((bad.residual[torch.isfinite(bad.residual)] > 0.4).all())


@pytest.mark.parametrize("solver", SOLVERS)
def test_strong_convexity_term_has_the_documented_bias(solver):
    # psi = ||x||^2 / (2 (1 - c t)) = k ||x||^2 / 2 with k = 2; with alpha the solve gives
    # (psi + alpha q)^*(y) = ||y||^2 / (2 (k + alpha)) < g(y) = ||y||^2 / (2 k)
    p, vg, hvp = _exact("concave_quadratic", 3)
    y, alpha = _queries(3, n=8), 0.5
    sol = invert(vg, y, hvp=hvp, solver=solver, alpha=alpha)
    assert sol.ok
    sq = (y * y).sum(-1)
    torch.testing.assert_close(sol.value, sq / (2 * (2 + alpha)), rtol=0, atol=1e-9)
    assert bool((sol.value < p.g(y)).all())
    # alpha also makes the out-of-range query of a bounded-gradient potential solvable (biased)
    vg, hvp = _logcosh()
    assert invert(vg, torch.tensor([[2.0, 0.1]], dtype=torch.float64), hvp=hvp, solver=solver,
                  alpha=alpha).ok


def test_batched_solvers_match_one_by_one_and_keep_shapes():
    p, vg, hvp = _exact("l1", 3)
    y = _queries(3, n=6).reshape(2, 3, 3)
    before = y.clone()
    for solver in ("lbfgs", "newton_cg"):
        sol = invert(vg, y, hvp=hvp, solver=solver, tol=1e-9)
        assert sol.value.shape == (2, 3) and sol.argument.shape == (2, 3, 3)
        assert sol.converged.shape == sol.iterations.shape == sol.residual.shape == (2, 3)
        flat = y.reshape(-1, 3)
        singles = torch.stack([invert(vg, flat[i:i + 1], hvp=hvp, solver=solver, tol=1e-9).value[0]
                               for i in range(6)])
        torch.testing.assert_close(singles, sol.value.reshape(-1), rtol=0, atol=1e-12)
    assert torch.equal(y, before) and not y.requires_grad


def test_float32_inputs_converge_to_a_float32_tolerance():
    p, vg, hvp = _exact("concave_quadratic", 8)
    y = _queries(8).float()
    for solver in SOLVERS:
        sol = invert(vg, y[:8], hvp=hvp, solver=solver, tol=1e-4)
        assert sol.ok and sol.value.dtype == torch.float32


@pytest.mark.parametrize("kwargs, match", [
    ({"solver": "adam"}, "cg_per_point"),
    ({"tol": 0.0}, "tol"),
    ({"tol": -1e-5}, "tol"),
    ({"max_iter": 0}, "max_iter"),
    ({"alpha": -0.1}, "alpha"),
    ({"alpha": math.nan}, "alpha"),
])
def test_bad_settings_raise_config_error(kwargs, match):
    _, vg, hvp = _exact("l1", 2)
    with pytest.raises(ConfigError, match=match):
        invert(vg, torch.zeros(3, 2, dtype=torch.float64), hvp=hvp, **kwargs)


def test_newton_cg_needs_hvp():
    _, vg, _ = _exact("l1", 2)
    with pytest.raises(ConfigError, match="hvp"):
        invert(vg, torch.zeros(3, 2, dtype=torch.float64), solver="newton_cg")
