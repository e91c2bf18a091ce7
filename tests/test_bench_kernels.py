"""Micro-benchmarks of the hot kernels (pytest-benchmark); each one is also a correctness test.

In the default test run (``addopts = --benchmark-disable``) every benchmarked call runs once,
as an ordinary test. As real benchmarks (docs/benchmarking.md):

    python -m pytest tests/test_bench_kernels.py --benchmark-enable --benchmark-autosave
    python -m pytest tests/test_bench_kernels.py --benchmark-enable \
        --benchmark-compare --benchmark-compare-fail=mean:25%

Kernels: the HJ method's learned prox grad psi_theta on 10^4 points; its prior read-out
J_hat(y) = (G_phi(y) - q(y)) / t per point (docs/method.md section 4); one step of the library's
training loop for the paper's ICNN (width 256, depth 2, full batch of 2000 points in dim 8);
the max-plus interpolant psi_N(x) = max_k {psi_k + <p_k, x - x_k>} of 10^4 samples at 10^3
queries (docs/method.md sections 5 and 7).
"""

from __future__ import annotations

import pytest
import torch

from hjbench import data, methods, priors
from hjbench.training import Budget, LossSpec
from hjbench.training.loop import train_ensemble
from hjbench.training.losses import potential_objective
from hjbench.nets import ICNN
from hjbench.quadratic import half_sq_norm

N_POINTS = 10_000
BOX = 4.0


def _points(n: int, dim: int, seed: int) -> torch.Tensor:
    """n points uniform on [-BOX, BOX]^dim (float32), from an explicit generator."""
    gen = torch.Generator().manual_seed(seed)
    return ((2 * torch.rand(n, dim, generator=gen, dtype=torch.float64) - 1) * BOX).float()


@pytest.fixture(scope="module")
def hj_fitted():
    """The HJ method fitted with its test_params on 500 samples of the l1 prior in dim 4."""
    prior = priors.get("l1", dim=4, t=1.0)
    split = data.sample_split(prior, 500, n_test=10, regime="values",
                              generator=torch.Generator().manual_seed(0))
    return methods.get("hj", **methods.entry("hj").cls.test_params).fit(split.train, seed=0)


def test_prox_evaluation(benchmark, hj_fitted):
    x = _points(N_POINTS, 4, seed=1)
    x_before = x.clone()
    out = benchmark(hj_fitted.prox, x)
    assert out.shape == (N_POINTS, 4) and out.dtype == x.dtype
    assert bool(torch.isfinite(out).all())
    assert torch.equal(x, x_before) and not x.requires_grad
    # grad of a convex potential is monotone: <P(x) - P(z), x - z> >= 0 for every pair
    half = N_POINTS // 2
    inner = ((out[:half] - out[half:]) * (x[:half] - x[half:])).sum(-1)
    assert float(inner.min()) >= -1e-4


def test_prior_evaluation_per_point(benchmark, hj_fitted):
    y = _points(N_POINTS, 4, seed=2)
    out = benchmark(hj_fitted.prior, y)
    assert out.shape == (N_POINTS,) and out.dtype == y.dtype
    assert bool(torch.isfinite(out).all())
    # the read-out is pointwise: a batch gives the values of its points one by one
    singles = torch.stack([hj_fitted.prior(y[i:i + 1])[0] for i in range(5)])
    torch.testing.assert_close(out[:5], singles, rtol=1e-5, atol=1e-5)


def test_icnn_training_step(benchmark):
    dim, n = 8, 2000
    gen = torch.Generator().manual_seed(3)
    x = _points(n, dim, seed=3)
    target = half_sq_norm(x)  # a convex target, psi(x) = ||x||^2 / 2
    net = ICNN(dim, width=256, depth=2, beta=5.0, generator=gen)
    start = {k: v.detach().clone() for k, v in net.state_dict().items()}

    budget = Budget(steps=1, lr=1e-3, width=256, depth=2)

    def one_step():
        return train_ensemble([net], potential_objective(LossSpec("mse"), 1), [(x, target)], budget=budget,
                              generators=[torch.Generator().manual_seed(4)])[0]

    log = benchmark(one_step)
    assert log.steps_run == 1 and len(log.train_loss) == 1
    assert torch.isfinite(torch.tensor(log.train_loss)).all()
    moved = [k for k, v in net.state_dict().items() if not torch.equal(v, start[k])]
    assert moved, "one Adam step left every parameter unchanged"
    assert all(bool((W >= 0).all()) for W in net.W) and bool((net.w >= 0).all())  # projected
    assert all(p.grad is None for p in net.parameters())


def test_maxplus_interpolation(benchmark):
    if "maxplus" not in methods.names():
        pytest.skip("method 'maxplus' is not registered (baselines plug-in not installed)")
    prior = priors.get("l1", dim=4, t=1.0)
    split = data.sample_split(prior, N_POINTS, n_test=1000, generator=torch.Generator().manual_seed(5))
    model = methods.get("maxplus").fit(split.train, seed=0)
    queries = split.test.x
    out = benchmark(model.potential, queries)
    assert out.shape == (1000,) and out.dtype == queries.dtype
    assert bool(torch.isfinite(out).all())
    # a max of tangent planes of the convex psi: psi_N <= psi, with equality at the samples
    psi = prior.psi(queries.double())
    assert float((out.double() - psi).max()) <= 1e-4 * float(psi.abs().max())
    x_k = split.train.x[:100]
    torch.testing.assert_close(model.potential(x_k).double(), prior.psi(x_k.double()),
                               rtol=1e-4, atol=1e-4)
