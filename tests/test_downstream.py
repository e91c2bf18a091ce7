"""Downstream inverse problems with a prox plugged into ISTA / FISTA / FISTA-LS / ADMM (docs/method.md section 8).

Known answers: denoising with sigma^2 = t is solved by one prox, prox(y); the compressed-sensing
l1 MAP estimate satisfies the subgradient optimality condition; the four solvers agree; a
non-contractive "prox" is reported as not converged, not raised. (Scoring: tests/test_tasks.py.)
"""

from __future__ import annotations

import pytest
import torch

import baselines.lista  # noqa: F401  (registers "lista")
from hjbench import methods, priors, tasks as ds
from hjbench.data import sample_split
from hjbench.errors import ConfigError


def _cs(dim=8, seed=0, n_signals=50):
    return ds.laplace_problem(dim, n_signals, sigma=0.5, n_measurements=6, a_norm=0.5,
                              generator=torch.Generator().manual_seed(seed))


def test_laplace_signals_and_reproducibility():
    p = ds.laplace_problem(4, 20000, sigma=0.3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(p.A, torch.eye(4, dtype=torch.float64))
    assert abs(float(p.x_true.abs().mean()) - 1.0) < 0.03        # E|x| = 1 for Laplace(0, 1)
    assert abs(float(p.x_true.mean())) < 0.03
    assert abs(float((p.y - p.x_true).std()) - 0.3) < 0.01
    again = ds.laplace_problem(4, 20000, sigma=0.3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.y, p.y)
    assert abs(_cs().lipschitz - 1.0) < 1e-9                      # ||A|| = 0.5, sigma = 0.5


@pytest.mark.parametrize("solver", ["ista", "fista"])
def test_denoising_at_sigma_squared_t_is_one_prox(solver):
    t = 0.8
    prior = priors.get("l1", dim=5, t=t)
    p = ds.laplace_problem(5, 40, sigma=t ** 0.5, generator=torch.Generator().manual_seed(1))
    sol = ds.solve(prior.prox, p, t=t, solver=solver)
    assert sol.ok and int(sol.iterations.max()) <= 2
    torch.testing.assert_close(sol.value, prior.prox(p.y), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("solver", ds.SOLVERS)
def test_compressed_sensing_l1_map_is_optimal(solver):
    """0 in A^T(Ax - y)/sigma^2 + d||x||_1: g_i = -sign(x_i) where x_i != 0, |g_i| <= 1 elsewhere."""
    p = _cs()
    prior = priors.get("l1", dim=8)
    sol = ds.solve(prior.prox, p, t=1.0, solver=solver, tol=1e-10, max_iter=5000, prior=prior.J)
    assert sol.ok and float(sol.residual.max()) < 1e-8
    g = p.grad_f(sol.value)
    nonzero = sol.value.abs() > 1e-8
    assert torch.allclose(g[nonzero], -torch.sign(sol.value[nonzero]), atol=1e-6)
    assert bool((g[~nonzero].abs() <= 1 + 1e-6).all())


def test_solvers_agree_and_fista_is_faster():
    p = _cs(seed=2)
    prior = priors.get("l1", dim=8)
    sols = {s: ds.solve(prior.prox, p, t=1.0, solver=s, tol=1e-10, max_iter=5000, prior=prior.J) for s in ds.SOLVERS}
    for s in ("fista", "fista_ls", "admm"):
        torch.testing.assert_close(sols[s].value, sols["ista"].value, rtol=0, atol=1e-7)
    assert sols["fista"].iterations.double().mean() < sols["ista"].iterations.double().mean()


def test_bad_arguments_are_refused():
    p = _cs()
    prior = priors.get("l1", dim=8)
    with pytest.raises(ConfigError, match="solver"):
        ds.solve(prior.prox, p, t=1.0, solver="admmm")
    with pytest.raises(ConfigError, match="admm"):                # step 2 > 1/L = 1
        ds.solve(prior.prox, p, t=2.0, solver="ista")
    assert ds.solve(priors.get("l1", dim=8, t=2.0).prox, p, t=2.0, solver="admm").ok
    with pytest.raises(ConfigError, match="prior=None"):
        ds.solve(prior.prox, p, t=1.0, solver="fista_ls")
    for bad in ({"tol": 0.0}, {"max_iter": 0}, {"t": -1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            ds.solve(prior.prox, p, **{"t": 1.0, **bad})


@pytest.mark.parametrize("solver", ds.SOLVERS)
def test_non_contractive_prox_is_a_recorded_failure(solver):
    p = _cs(n_signals=7)
    prior = priors.get("l1", dim=8)
    sol = ds.solve(lambda v: 1.5 * v + 1.0, p, t=1.0, solver=solver, max_iter=25, prior=prior.J)
    assert sol.n_failed == 7
    # fista_ls stops a signal as soon as no step decreases f + J (never counted as converged)
    assert bool((sol.iterations == 25).all()) if solver != "fista_ls" else bool((sol.iterations < 25).all())


def test_a_learned_prox_in_fista_is_close_to_the_exact_one():
    prior = priors.get("l1", dim=8)
    p = _cs(seed=3, n_signals=100)
    ref = ds.solve(prior.prox, p, t=1.0, solver="fista", tol=1e-6)
    split = sample_split(prior, 2000, n_test=10, generator=torch.Generator().manual_seed(1))
    m = methods.get("lista", budget={"steps": 300, "lr": 1e-2, "lr_decay_every": 150, "width": 8, "depth": 1},
                    n_layers=3).fit(split.train, seed=0)
    ours = ds.solve(m.prox, p, t=1.0, solver="fista", tol=1e-6)
    assert ours.ok and ref.ok
    rel = float(((ours.value - ref.value) ** 2).sum() / (ref.value ** 2).sum())
    assert 0 < rel < 0.05, rel
    mse, exact_mse = (float(((v - p.x_true) ** 2).mean()) for v in (ours.value, ref.value))
    assert mse < 1.1 * exact_mse, (mse, exact_mse)
