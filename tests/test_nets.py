"""The input-convex network: convex by construction, exact explicit gradient, side-effect free."""

from __future__ import annotations

import pytest
import torch

from hjbench.errors import ConfigError
from torch import nn

from hjbench.nets import ICNN, ResidualMLP, ScaledICNN


def _net(dim=3, width=16, depth=2, seed=0, dtype=torch.float64):
    return ICNN(dim, width, depth, beta=5.0, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _convex_along_segments(f, dim, n=200, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = 4 * torch.randn(n, dim, generator=g, dtype=dtype)
    b = 4 * torch.randn(n, dim, generator=g, dtype=dtype)
    lam = torch.rand(n, 1, generator=g, dtype=dtype)
    lhs = f(lam * a + (1 - lam) * b)
    rhs = lam[:, 0] * f(a) + (1 - lam[:, 0]) * f(b)
    return float((lhs - rhs).detach().max())


@pytest.mark.parametrize("dim,depth", [(1, 1), (3, 2), (8, 3)])
@pytest.mark.parametrize("seed", range(3))
def test_convex_and_monotone_for_random_weights(dim, depth, seed):
    net = _net(dim, 16, depth, seed)
    with torch.no_grad():
        for W in net.W:  # random weights of any sign in storage: forward must still be convex
            W.normal_(generator=torch.Generator().manual_seed(seed))
        net.w.normal_(generator=torch.Generator().manual_seed(seed + 1))
    assert _convex_along_segments(net, dim) <= 1e-10
    g = torch.Generator().manual_seed(seed)
    x, z = torch.randn(300, dim, generator=g, dtype=torch.float64), torch.randn(300, dim, generator=g, dtype=torch.float64)
    mono = ((net.grad(x) - net.grad(z)) * (x - z)).sum(-1)
    assert float(mono.detach().min()) >= -1e-10


def test_convex_after_training():
    net = _net(2, 32, 2, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    x = 4 * (2 * torch.rand(500, 2, generator=g) - 1)
    y = torch.sin(x).sum(-1)  # a non-convex target: training must not break convexity
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()
    net.double()
    assert _convex_along_segments(net, 2) <= 1e-10


def test_explicit_gradient_and_hvp_match_autograd():
    net = _net(4, 8, 2)
    x = torch.randn(10, 4, dtype=torch.float64)
    v = torch.randn(10, 4, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(net(xr).sum(), xr, create_graph=True)
    (hv,) = torch.autograd.grad((gx * v).sum(), xr)
    torch.testing.assert_close(net.grad(x), gx.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(net.hvp(x, v), hv, rtol=1e-10, atol=1e-10)


def test_queries_have_no_side_effects():
    net = _net(3, 8, 2)
    x = torch.randn(5, 3, dtype=torch.float64)
    before = x.clone()
    with torch.no_grad():
        v, g = net.value_and_grad(x)
    net.hvp(x, torch.ones_like(x))
    assert torch.equal(x, before) and not x.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert v.shape == (5,) and g.shape == (5, 3)


def test_batch_shapes_are_kept():
    net = _net(2, 8, 1)
    x = torch.randn(2, 3, 2, dtype=torch.float64)
    assert net(x).shape == (2, 3) and net.grad(x).shape == (2, 3, 2)


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="width"):
        ICNN(2, width=0)
    with pytest.raises(ConfigError, match="beta"):
        ICNN(2, beta=-1.0)
    with pytest.raises(ConfigError, match="init"):
        ICNN(2, init="xavier")
    with pytest.raises(ConfigError, match="last axis"):
        _net(3)(torch.zeros(4, 2, dtype=torch.float64))


def test_residual_mlp_starts_at_identity():
    mlp = ResidualMLP(3, 16, 2)
    x = torch.randn(7, 3)
    torch.testing.assert_close(mlp(x), x)


def test_torch_init_is_nn_linear_default_projected_and_without_first_bias():
    dim, width = 3, 64
    net = ICNN(dim, width, 2, init="torch", first_bias=False,
               generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert net.b0 is None and "b0" not in net.state_dict()
    bx, bz = dim ** -0.5, width ** -0.5
    for p in (net.W0, *net.A, *net.b, net.a, net.c):        # fan_in = dim: U(-1/sqrt(dim), ...)
        assert float(p.detach().abs().max()) <= bx
    assert float(net.W0.abs().max()) > 0.9 * bx
    for p in (*net.W, net.w):                               # fan_in = width, then clipped >= 0
        assert float(p.detach().min()) == 0.0 and float(p.detach().max()) <= bz
        assert 0.4 < float((p == 0).double().mean()) < 0.6  # half the draws were negative
    default = nn.Linear(width, width)                       # the same law as PyTorch's default
    assert float(default.weight.detach().abs().max()) <= bz


def test_scaled_init_keeps_its_draws_and_has_a_first_bias():
    net = _net(2, 8, 1)
    assert net.b0 is not None and bool((net.W[0] >= 0).all()) and float(net.a.abs().max()) == 0.0


def test_sign_constraints_are_declared_on_the_class():
    net = _net(2, 4, 2)
    declared = {n for n, _ in net.named_parameters()
                if any(n == k or n.startswith(k + ".") for k in ICNN.nonnegative)}
    assert declared == {"W.0", "W.1", "w"}
    with torch.no_grad():
        net.W[0].fill_(-1.0)
    net.project_()
    assert float(net.W[0].max()) == 0.0


def test_scaled_icnn_gradient_and_hvp_match_autograd():
    f = _net(3, 8, 2)
    psi = ScaledICNN(f, s_in=1.7, s_out=0.4, m=2.5)
    x = torch.randn(6, 3, dtype=torch.float64)
    v = torch.randn(6, 3, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(psi(xr).sum(), xr, create_graph=True)
    (hv,) = torch.autograd.grad((gx * v).sum(), xr)
    value, grad = psi.value_and_grad(x)
    torch.testing.assert_close(value, 0.4 * f(x / 1.7) + 2.5)
    torch.testing.assert_close(grad, gx.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(psi.hvp(x, v), hv, rtol=1e-10, atol=1e-10)
    with pytest.raises(ConfigError, match="s_in"):
        ScaledICNN(f, s_in=0.0)
