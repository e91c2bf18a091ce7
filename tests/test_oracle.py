"""The generic numerical oracle on problems with known answers, and its honest status.

Independent of the prior families: every problem here is written out in the test, with its
answer derived by hand (quadratics, l1 kinks, a nonconvex double well).
"""

from __future__ import annotations

import pytest
import torch

from hjbench.errors import ConfigError
from hjbench.priors import oracle


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _spd(dim, seed, cond=10.0):
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=_gen(seed), dtype=torch.float64))
    eig = torch.logspace(0, torch.log10(torch.tensor(cond)).item(), dim, dtype=torch.float64)
    return q @ torch.diag(eig) @ q.T


@pytest.mark.parametrize("dim", [1, 3, 8])
def test_conjugate_of_a_quadratic(dim):
    """psi(x) = 1/2 x^T A x + <b, x>: g(y) = 1/2 (y - b)^T A^{-1} (y - b), argmax A^{-1}(y - b)."""
    A, b = _spd(dim, dim), torch.randn(dim, generator=_gen(1), dtype=torch.float64)
    y = torch.randn(2, 5, dim, generator=_gen(2), dtype=torch.float64) * 3
    sol = oracle.conjugate(lambda x: 0.5 * (x @ A * x).sum(-1) + x @ b, lambda x: x @ A + b, y, dim)
    x_star = torch.linalg.solve(A, (y - b).unsqueeze(-1)).squeeze(-1)
    assert sol.value.shape == (2, 5) and sol.argument.shape == (2, 5, dim) and sol.ok
    torch.testing.assert_close(sol.value, 0.5 * ((y - b) * x_star).sum(-1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(sol.argument, x_star, rtol=1e-7, atol=1e-7)
    assert bool((sol.residual <= 1e-7 * (1 + y.norm(dim=-1))).all())


def test_conjugate_at_a_kink_is_certified():
    """psi(x) = q(x) + ||x||_1: for |y_i| < 1 the maximiser sits on the kink x_i = 0 and
    g(y) = sum_i max(|y_i| - 1, 0)^2 / 2; the Goldstein residual must see through the kink."""
    y = torch.tensor([[0.3, -2.0, 0.9], [1.5, 0.0, -0.2], [0.5, 0.5, 0.5]], dtype=torch.float64)
    sol = oracle.conjugate(lambda x: 0.5 * (x * x).sum(-1) + x.abs().sum(-1),
                           lambda x: x + torch.sign(x), y, 3)
    expected = 0.5 * ((y.abs() - 1).clamp(min=0) ** 2).sum(-1)
    assert sol.ok, sol.residual
    torch.testing.assert_close(sol.value, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(sol.argument, torch.sign(y) * (y.abs() - 1).clamp(min=0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dim", [1, 3, 8])
def test_prox_and_S_of_l1_with_kinks(dim):
    """J = ||z||_1: prox is the soft threshold (zeros are kinks), S the Huber function."""
    t = 0.8
    x = (2 * torch.rand(32, dim, generator=_gen(dim), dtype=torch.float64) - 1) * 4
    prox = oracle.prox_numeric(lambda z: z.abs().sum(-1), x, t)
    S = oracle.S_numeric(lambda z: z.abs().sum(-1), x, t)
    soft = torch.sign(x) * (x.abs() - t).clamp(min=0)
    huber = torch.where(x.abs() <= t, x * x / (2 * t), x.abs() - t / 2).sum(-1)
    assert prox.converged.float().mean() >= 0.9 and S.converged.float().mean() >= 0.9
    torch.testing.assert_close(prox.value, soft, rtol=0, atol=1e-6)
    torch.testing.assert_close(S.value, huber, rtol=1e-9, atol=1e-9)


def test_prox_of_a_quadratic_prior():
    """J(z) = a/2 ||z - c||^2: prox_{tJ}(x) = (x + t a c)/(1 + t a), S = a ||x - c||^2 / (2 (1 + t a))."""
    a, t, c = 3.0, 0.5, torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    x = torch.randn(10, 3, generator=_gen(3), dtype=torch.float64) * 2
    J = lambda z: 0.5 * a * ((z - c) ** 2).sum(-1)  # noqa: E731
    prox = oracle.prox_numeric(J, x, t)
    S = oracle.S_numeric(J, x, t)
    assert prox.ok and S.ok
    torch.testing.assert_close(prox.value, (x + t * a * c) / (1 + t * a), rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(S.value, a * ((x - c) ** 2).sum(-1) / (2 * (1 + t * a)), rtol=1e-10, atol=1e-10)


def test_multistart_finds_the_global_minimiser_of_a_nonconvex_prior():
    """J(z) = min((z - 3)^2/2, (z + 3)^2/2 - 2); at x = 0.5, t = 1 the start x lies in the basin of
    the local minimiser 1.75 (value 1.5625), the global one is -1.25 (value 1.0625)."""
    J = lambda z: torch.minimum((z - 3) ** 2 / 2, (z + 3) ** 2 / 2 - 2).sum(-1)  # noqa: E731
    x = torch.tensor([[0.5]], dtype=torch.float64)
    sol = oracle.S_numeric(J, x, 1.0)
    assert sol.ok
    torch.testing.assert_close(sol.value, torch.tensor([1.0625], dtype=torch.float64), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(sol.argument, torch.tensor([[-1.25]], dtype=torch.float64), rtol=0, atol=1e-7)


def test_J_bvs_numeric_of_neg_l1_is_the_proximal_hull():
    """S = -||x||_1 - n t/2: J_bvs(y) = sum_i j(y_i), j(u) = -|u| if |u| > t else -(t^2 + u^2)/(2t)."""
    t, dim = 1.0, 3
    y = torch.tensor([[0.2, -1.7, 0.0], [2.5, -0.5, 0.9], [-3.0, 3.0, 1.2]], dtype=torch.float64)
    sol = oracle.J_bvs_numeric(lambda x: -x.abs().sum(-1) - dim * t / 2, y, t)
    u = y.abs()
    expected = torch.where(u > t, -u, -(t * t + u * u) / (2 * t)).sum(-1)
    assert sol.ok, sol.residual
    torch.testing.assert_close(sol.value, expected, rtol=1e-9, atol=1e-9)


def test_capped_iterations_are_reported_not_hidden():
    A = _spd(6, 7, cond=1e3)
    y = torch.randn(20, 6, generator=_gen(8), dtype=torch.float64) * 3
    psi, grad = (lambda x: 0.5 * (x @ A * x).sum(-1)), (lambda x: x @ A)
    capped = oracle.conjugate(psi, grad, y, 6, max_iter=2)
    assert not bool(capped.converged.any())
    assert capped.n_failed == 20 and not capped.ok
    assert bool((capped.iterations == 2).all())
    assert bool((capped.residual > 1e-7 * (1 + y.norm(dim=-1))).all())
    full = oracle.conjugate(psi, grad, y, 6)
    assert full.ok and bool((full.iterations > 2).all())
    assert bool((full.value >= capped.value - 1e-12).all())       # the capped value is a lower bound
    none = oracle.conjugate(psi, grad, y, 6, max_iter=0)
    assert bool((none.iterations == 0).all()) and not bool(none.converged.any())


def test_dtype_device_and_purity(device):
    y = torch.randn(4, 3, generator=_gen(9), dtype=torch.float32).to(device).requires_grad_(True)
    before = y.detach().clone()
    sol = oracle.J_bvs_numeric(lambda x: -0.25 * (x * x).sum(-1), y, 1.0)
    assert sol.value.dtype == torch.float32 and sol.value.device.type == device
    assert sol.argument.dtype == torch.float32 and sol.converged.dtype == torch.bool
    assert y.grad is None and y.requires_grad and torch.equal(y.detach(), before)
    assert not sol.value.requires_grad
    # S = -||x||^2/4 at t = 1 is the envelope of J = -||x||^2/6 (tJ + q convex), so J_bvs = J
    torch.testing.assert_close(sol.value, -(before * before).sum(-1) / 6, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call, words", [
    (lambda: oracle.S_numeric(lambda z: z.sum(-1), [[0.0]], 1.0), ["x", "torch.Tensor", "list"]),
    (lambda: oracle.S_numeric(lambda z: z.sum(-1), torch.zeros(2, 2), 0.0), ["t", "0.0", "> 0"]),
    (lambda: oracle.J_bvs_numeric(lambda z: z.sum(-1), torch.zeros(2, 2, dtype=torch.long), 1.0),
     ["y", "floating"]),
    (lambda: oracle.conjugate(lambda z: z.sum(-1), lambda z: z, torch.zeros(2, 2), 3), ["y", "dim=3"]),
], ids=["list", "t", "integer", "last-axis"])
def test_bad_input_is_a_config_error(call, words):
    with pytest.raises(ConfigError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
