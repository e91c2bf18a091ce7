"""Benchmarks: prior evaluation per point, HJ read-out against post-hoc inversion (issue 4).

The HJ method reads its prior off one forward pass of the conjugate network G_phi; a Learned
Proximal Network needs one solve x* = argmin_x psi_theta(x) - <x, y> per query point (docs/method.md
sections 4, 5, 9). Measured on CPU at dim 8 and 64, all on input-convex networks of width 256
and depth 2 in float64, solves at the LPN authors' tolerance 1e-5 from x0 = y:

* ``hj_forward``    HJMethod.prior on 500 points (a width-256, depth-2 HJ method; its read-out
                    costs one forward pass whatever its weights, so a one-step fit suffices);
* ``cg_per_point``  the authors' reference, one nonlinear-CG solve per point, on 20 points;
* ``lbfgs``, ``newton_cg``  the batched solvers, on 500 points at once; ``lbfgs`` as the
                    ``lpn`` method runs it, first iterations on the float32 network
                    (``coarse``), ``lbfgs_float64`` all in float64.

psi_theta is a random ICNN rescaled to unit mean curvature (the scale of psi = q - t S for
the paper's families; an unscaled random ICNN is nearly flat and makes every solver crawl),
queried at y = grad psi_theta(x) for x uniform on [-4, 4]^dim, so every query has a preimage.
``extra_info["n_points"]`` gives the points per call: seconds per point = mean / n_points.

In the test suite these run once each, untimed (``--benchmark-disable`` in the pytest
defaults). To measure for real:

    python -m pytest tests/test_bench_inversion.py --benchmark-enable --benchmark-autosave
"""

from __future__ import annotations

import copy

import pytest
import torch

from baselines.inversion import invert
from hjbench import methods, priors
from hjbench.data import sample_split
from hjbench.nets.icnn import ICNN

DIMS = (8, 64)
WIDTH, DEPTH, TOL = 256, 2, 1e-5
N_POINTS = {"hj_forward": 500, "cg_per_point": 20, "lbfgs": 500, "lbfgs_float64": 500,
            "newton_cg": 500}


def _potential(dim: int) -> ICNN:
    """Random ICNN (width 256, depth 2, float64) scaled so that mean v^T H v / |v|^2 = 1."""
    net = ICNN(dim, WIDTH, DEPTH, generator=torch.Generator().manual_seed(dim), dtype=torch.float64)
    net.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    x = (2 * torch.rand(256, dim, generator=g, dtype=torch.float64) - 1) * 4
    v = torch.randn(256, dim, generator=g, dtype=torch.float64)
    curvature = float(((net.hvp(x, v) * v).sum(-1) / (v * v).sum(-1)).mean())
    with torch.no_grad():
        net.w.div_(curvature)
        net.a.div_(curvature)
    return net


@pytest.fixture(scope="module", params=DIMS, ids=lambda d: f"dim{d}")
def problem(request):
    dim = request.param
    net = _potential(dim)
    g = torch.Generator().manual_seed(2)
    x = (2 * torch.rand(max(N_POINTS.values()), dim, generator=g, dtype=torch.float64) - 1) * 4
    with torch.no_grad():
        y = net.grad(x)
    return dim, net, copy.deepcopy(net).float(), y


@pytest.mark.benchmark(group="prior-per-point")
def test_hj_prior_forward_pass(benchmark, problem):
    dim, _, _, y = problem
    prior = priors.get("l1", dim=dim)
    split = sample_split(prior, 64, n_test=8, regime="values", dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0))
    hj = methods.get("hj", budget={"steps": 1, "width": WIDTH, "depth": DEPTH}).fit(split.train, seed=0)
    n = N_POINTS["hj_forward"]
    benchmark.extra_info.update(n_points=n, dim=dim, method="hj_forward")
    out = benchmark(hj.prior, y[:n])
    assert out.shape == (n,) and torch.isfinite(out).all()


@pytest.mark.benchmark(group="prior-per-point")
@pytest.mark.parametrize("method", ["cg_per_point", "lbfgs", "lbfgs_float64", "newton_cg"])
def test_inversion_prior(benchmark, problem, method):
    dim, net, net32, y = problem
    n = N_POINTS[method]
    solver = method.removesuffix("_float64")
    coarse = net32.value_and_grad if method == "lbfgs" else None
    benchmark.extra_info.update(n_points=n, dim=dim, method=method)
    sol = benchmark(invert, net.value_and_grad, y[:n], hvp=net.hvp, solver=solver, tol=TOL,
                    max_iter=1000, coarse=coarse)
    assert sol.ok, f"{solver}: {sol.n_failed} of {n} solves did not reach tol {TOL}"
