"""hjbench methods inside deepinv's solvers (hjbench.adapters.deepinv; docs/method.md sections 2 and 8).

Known answers: deepinv's PGD with the adapted prior, its own physics operator and L2 data
fidelity, stepsize t and a zero start, is the iteration x+ = prox_{tJ}(x - t grad f(x)) of
hjbench's ISTA, so both must give the same reconstruction after the same number of iterations
(float64, up to the order in which A^T(Ax - y)/sigma^2 is rounded: atol 1e-10). Denoising with
sigma^2 = t is one prox. The l1 family's adapted fn and grad are ||x||_1 and sign(x); a learned
prior's grad (x* - x)/t matches central differences of its value.

Without deepinv these tests skip with the reason, unless HJBENCH_REQUIRE_DEEPINV=1, which turns
a missing deepinv into a failure (.ci/deepinv.sh sets it). The import-hygiene and denoiser
tests need no deepinv and always run.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys

import pytest
import torch

import baselines.lista  # noqa: F401  (registers "lista": a prox-only method)
import baselines.maxplus  # noqa: F401  (registers "maxplus")
from hjbench import methods, priors, tasks as ds
from hjbench.adapters.deepinv import as_denoiser, as_prior
from hjbench.data import sample_split
from hjbench.errors import ConfigError, NotProvidedError

try:
    import deepinv as dinv
    MISSING = None
except Exception as exc:  # ImportError, or a torchvision built for another torch
    dinv, MISSING = None, f"{type(exc).__name__}: {exc}"

DIM, IMG, T = 8, (1, 2, 4), 1.0          # one deepinv signal (C, H, W) = one point of R^8
ATOL = 1e-10                             # float64; see the module docstring


@pytest.fixture(scope="module")
def deepinv():
    if MISSING is not None:
        if os.environ.get("HJBENCH_REQUIRE_DEEPINV") == "1":
            pytest.fail(f"HJBENCH_REQUIRE_DEEPINV=1 but deepinv does not import ({MISSING})")
        pytest.skip(f"deepinv is not importable ({MISSING}); .ci/deepinv.sh builds an env with it")
    return dinv


L1 = priors.get("l1", dim=DIM, t=T)


_N_SAMPLES = {"hj": 500, "maxplus": 300, "lista": 300}


@functools.cache
def _fitted(name: str):
    """l1 itself, or a method fitted on it once per session: hj (smooth learned prox with a
    prior), maxplus (piecewise-constant prox with a prior), lista (prox only)."""
    if name == "l1":
        return L1
    split = sample_split(L1, _N_SAMPLES[name], n_test=10, generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    return methods.get(name, **methods.get(name).test_params).fit(split.train, seed=0)


@pytest.fixture(scope="module")
def sources():
    return _fitted


def _problem(denoising: bool, n_signals: int = 16) -> ds.InverseProblem:
    gen = torch.Generator().manual_seed(3)
    if denoising:   # sigma^2 = t: the MAP estimate is one prox
        return ds.laplace_problem(DIM, n_signals, sigma=math.sqrt(T), generator=gen)
    return ds.laplace_problem(DIM, n_signals, sigma=0.5, n_measurements=6, a_norm=0.5, generator=gen)


def _physics(deepinv, problem: ds.InverseProblem, denoising: bool):
    if denoising:
        return deepinv.physics.Denoising(deepinv.physics.GaussianNoise(sigma=problem.sigma))
    physics = deepinv.physics.CompressedSensing(m=problem.A.shape[0], img_size=IMG, dtype=torch.float64)
    physics._A, physics._A_adjoint = problem.A.clone(), problem.A.T.clone()   # hjbench's own A
    physics._A_dagger = torch.linalg.pinv(problem.A)
    return physics


def _deepinv_solve(deepinv, algo: str, prior, problem, denoising: bool, max_iter: int):
    """Run deepinv's ``algo`` ("PGD"/"FISTA") from x0 = 0 with stepsize t and lambda = 1."""
    physics = _physics(deepinv, problem, denoising)
    y = problem.y.reshape(-1, *IMG) if denoising else problem.y
    model = getattr(deepinv.optim, algo)(prior=prior, data_fidelity=deepinv.optim.L2(sigma=problem.sigma),
                                        stepsize=T, lambda_reg=1.0, max_iter=max_iter, early_stop=False)
    zero = torch.zeros(problem.y.shape[0], *IMG, dtype=torch.float64)
    with torch.no_grad():
        return model(y, physics, init=(zero, zero)).reshape(-1, DIM)


@pytest.mark.parametrize("denoising", [False, True], ids=["compressed_sensing", "denoising"])
@pytest.mark.parametrize("name", ["l1", "hj", "maxplus", "lista"])
def test_deepinv_pgd_equals_hjbench_ista(deepinv, sources, name, denoising):
    src, problem, n_iter = sources(name), _problem(denoising), 60
    x_dinv = _deepinv_solve(deepinv, "PGD", as_prior(src), problem, denoising, n_iter)
    ours = ds.solve(src.prox, problem, t=T, solver="ista", max_iter=n_iter, tol=1e-300)
    assert float(x_dinv.abs().max()) > 0.1                       # not a trivial all-zero agreement
    torch.testing.assert_close(x_dinv, ours.value, rtol=0, atol=ATOL)
    if denoising:                                                # 0 - t grad f(0) = y: one prox
        torch.testing.assert_close(x_dinv, src.prox(problem.y), rtol=0, atol=ATOL)


def test_deepinv_fista_reaches_the_l1_map_estimate(deepinv):
    """deepinv's FISTA (Chambolle-Dossal momentum) and hjbench's restarted FISTA differ iterate
    by iterate but converge to the same l1 MAP estimate."""
    problem = _problem(False)
    x_dinv = _deepinv_solve(deepinv, "FISTA", as_prior(L1), problem, False, 500)
    ours = ds.solve(L1.prox, problem, t=T, solver="fista", max_iter=5000, tol=1e-12)
    assert ours.ok
    torch.testing.assert_close(x_dinv, ours.value, rtol=0, atol=1e-6)


def test_pnp_with_the_adapted_denoiser_equals_the_adapted_prior(deepinv, sources):
    m, problem = sources("hj"), _problem(False)
    pnp = deepinv.optim.PnP(denoiser=as_denoiser(m))
    physics = _physics(deepinv, problem, False)
    model = deepinv.optim.PGD(prior=pnp, data_fidelity=deepinv.optim.L2(sigma=problem.sigma), stepsize=T,
                              sigma_denoiser=math.sqrt(T), max_iter=40, early_stop=False)
    zero = torch.zeros(problem.y.shape[0], *IMG, dtype=torch.float64)
    with torch.no_grad():
        x_pnp = model(problem.y, physics, init=zero).reshape(-1, DIM)
    x_prior = _deepinv_solve(deepinv, "PGD", as_prior(m), problem, False, 40)
    torch.testing.assert_close(x_pnp, x_prior, rtol=0, atol=0)


def test_exact_l1_fn_and_grad(deepinv):
    x = torch.randn(5, *IMG, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    prior = as_prior(L1)
    assert prior.explicit_prior and isinstance(prior, deepinv.optim.Prior)
    torch.testing.assert_close(prior.fn(x), x.abs().sum((1, 2, 3)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(prior(x, None), prior.fn(x))      # deepinv's cost calls forward
    torch.testing.assert_close(prior.grad(x), torch.sign(x), rtol=0, atol=1e-9)
    torch.testing.assert_close(prior.prox(x, None, gamma=T), deepinv.optim.L1Prior().prox(x, gamma=T))


@pytest.mark.parametrize("name", ["hj", "maxplus"])
def test_learned_prior_grad_matches_central_differences(deepinv, sources, name):
    """grad J_hat = (x* - y)/t from the preimage; checked against differences of J_hat itself."""
    m, prior = sources(name), as_prior(sources(name))
    y = m.prox(torch.rand(6, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 6 - 3)
    y = y.reshape(-1, *IMG)
    torch.testing.assert_close(prior.fn(y), m.prior(y.reshape(-1, DIM)))
    h, grad, fd = 1e-6, prior.grad(y).reshape(-1, DIM), torch.empty(6, DIM, dtype=torch.float64)
    for i in range(DIM):
        e = torch.zeros(DIM, dtype=torch.float64)
        e[i] = h
        flat = y.reshape(-1, DIM)
        fd[:, i] = (m.prior(flat + e) - m.prior(flat - e)) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=0, atol=1e-5)


def test_mismatched_gamma_and_t_are_refused(deepinv, sources):
    m, x = sources("hj"), torch.zeros(2, *IMG, dtype=torch.float64)
    prior = as_prior(m)
    with pytest.raises(ConfigError, match=r"gamma=0\.5.*'hj'.*t=1\.0.*stepsize"):
        prior.prox(x, None, gamma=0.5)
    with pytest.raises(ConfigError, match="gamma"):
        prior.prox(x, None, gamma=torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(prior.prox(x, None, gamma=torch.tensor(T)), prior.prox(x, None, gamma=T))
    with pytest.raises(ConfigError, match="t=2.0 differs from t=1.0"):
        as_prior(m, t=2.0)
    with pytest.raises(ConfigError, match="stepsize"):           # raised inside deepinv's own PGD
        model = deepinv.optim.PGD(prior=prior, data_fidelity=deepinv.optim.L2(sigma=0.5), stepsize=0.5,
                                  max_iter=2)
        model(torch.zeros(2, 6, dtype=torch.float64), _physics(deepinv, _problem(False), False))
    with pytest.raises(ConfigError, match="dim=8"):
        prior.prox(torch.zeros(2, 1, 3, 3, dtype=torch.float64), None, gamma=T)


def test_prox_only_outputs_are_not_provided(deepinv, sources):
    x = torch.ones(2, *IMG, dtype=torch.float64)
    lista = sources("lista")
    for obj, prox, kw, label in ((lista, lista.prox, {}, "method 'lista'"),
                                 (L1.prox, L1.prox, {"t": T}, "prox callable")):
        prior = as_prior(obj, **kw)
        assert not prior.explicit_prior                          # deepinv then skips the cost
        torch.testing.assert_close(prior.prox(x, None, gamma=T), prox(x.reshape(2, DIM)).reshape(x.shape))
        for output in ("fn", "grad"):
            with pytest.raises(NotProvidedError, match=f"{label}.*'prior'"):
                getattr(prior, output)(x)
    with pytest.raises(ConfigError, match="t=None"):
        as_prior(L1.prox)


# -- no deepinv needed --------------------------------------------------------------------------
def test_adapters_do_not_import_deepinv():
    code = ("import sys, hjbench, hjbench.adapters, hjbench.adapters.deepinv; "
            "print('deepinv' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_as_prior_without_deepinv_says_how_to_install():
    if MISSING is None:
        pytest.skip("deepinv is installed here; the missing-deepinv message cannot be exercised")
    with pytest.raises(ImportError, match=r"hjbench\[deepinv\]"):
        as_prior(L1)


def test_denoiser_applies_the_prox_per_signal(device):
    den = as_denoiser(L1)
    assert isinstance(den, torch.nn.Module) and den.sigma == math.sqrt(T)
    x = torch.randn(3, *IMG, generator=torch.Generator().manual_seed(2)).to(device)
    for sigma in (None, math.sqrt(T), torch.full((3,), math.sqrt(T), device=device)):
        out = den(x, sigma)
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
        torch.testing.assert_close(out, L1.prox(x.reshape(3, DIM)).reshape(x.shape))
    with pytest.raises(ConfigError, match=r"sigma\^2=0\.25.*sigma=1"):
        den(x, 0.5)
    torch.testing.assert_close(as_denoiser(L1, check_sigma=False)(x, 0.5), den(x))
    with pytest.raises(ConfigError, match="dim=8"):
        den(torch.zeros(3, 1, 8, 8, device=device))
    with pytest.raises(ConfigError, match=r"\(B, C, \.\.\.\)"):
        den(torch.zeros(DIM, device=device))


def test_denoiser_of_a_fitted_method_keeps_float32(sources):
    m = sources("maxplus")
    x = torch.rand(4, *IMG, generator=torch.Generator().manual_seed(5)) * 6 - 3
    out = as_denoiser(m)(x, None)
    assert out.dtype == torch.float32 and out.shape == x.shape
    torch.testing.assert_close(out, m.prox(x.reshape(4, DIM)).reshape(x.shape))
