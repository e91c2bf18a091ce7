"""The generic prior battery (docs/method.md sections 2-3 and conventions C2, C11).

Every registered family runs through every check here, so a new family is tested by
registering it. Family-specific facts live in the tables at the top (never ``if name == ...``
inside a check): known exceptions, points where J_bvs must be strictly below J, and the
closed forms docs/method.md section 3 states at t = 1.
"""

from __future__ import annotations

import copy
import json
import math
import zlib

import pytest
import torch

from hjbench import priors
from hjbench.errors import ConfigError
from hjbench.priors import half_sq_norm, oracle

NAMES = priors.names()
DIMS = [1, 3, 8]
T = 0.7          # a time other than the paper's t = 1, so t-dependence bugs show
BOX = 4.0

# Known exceptions: family -> {check: reason}. A check listed here is skipped for that family.
EXCEPTIONS: dict[str, dict[str, str]] = {}


def _switching_point(p):
    """The point between mu_1 and mu_2 where both branches of J tie (on the switching surface)."""
    (m1, m2), (s1, s2) = torch.tensor(p.mus[:2], dtype=torch.float64), p.sigmas[:2]
    theta = math.sqrt(s1) / (math.sqrt(s1) + math.sqrt(s2))
    return m1 + theta * (m2 - m1)


# Points y (a function of the prior) where J_bvs(y) < J(y) must hold strictly.
STRICT = [
    ("neg_l1", 3, lambda p: torch.tensor([0.3, -0.2, 0.05], dtype=torch.float64) * p.t),  # gap |y_i| < t
    ("neg_l1", 8, lambda p: torch.full((p.dim,), 0.5 * p.t, dtype=torch.float64)),
    ("minplus", 3, _switching_point),
    ("minplus", 8, _switching_point),
]


def _q(x):
    return half_sq_norm(x)


# psi at t = 1 as docs/method.md section 3 states it, written independently of the family code.
def _minplus_psi_t1(x):
    d = x.shape[-1]
    mus = [torch.eye(d, dtype=x.dtype)[0], torch.ones(d, dtype=x.dtype) / math.sqrt(d)]
    # Q_i(x) = q(x) - ||x - mu_i||^2 / 4: a convex quadratic (Hessian I/2) for sigma_i = t = 1
    return torch.stack([_q(x) - ((x - m) ** 2).sum(-1) / 4 for m in mus]).max(0).values


PSI_AT_T1 = {
    "l1": lambda x: 0.5 * ((x.abs() - 1).clamp(min=0) ** 2).sum(-1),         # 1/2 dist(x, [-1,1]^n)^2
    "concave_quadratic": lambda x: (x * x).sum(-1),                         # ||x||^2
    "neg_l1": lambda x: _q(x) + x.abs().sum(-1) + x.shape[-1] / 2,          # q + ||x||_1 + n/2
    "minplus": _minplus_psi_t1,                                             # max of two quadratics
}


def skip_if_excepted(name, check):
    reason = EXCEPTIONS.get(name, {}).get(check)
    if reason:
        pytest.skip(f"{name}: {reason}")


def make(name, dim, t=T):
    return priors.get(name, dim=dim, t=t, **priors.entry(name).cls.test_params)


def points(name, dim, n=64, dtype=torch.float64, device="cpu", salt=""):
    gen = torch.Generator().manual_seed(zlib.crc32(f"{name}/{dim}/{salt}".encode()))
    x = (2 * torch.rand(n, dim, generator=gen, dtype=torch.float64) - 1) * BOX
    return x.to(dtype=dtype, device=device)


def close(actual, expected, tol, scale=1.0, factor=1.0, what=""):
    """|actual - expected| <= factor (atol * scale + rtol |expected|), scale per point or scalar."""
    rtol, atol = tol
    scale = torch.as_tensor(scale, dtype=expected.dtype, device=expected.device)
    while 0 < scale.ndim < expected.ndim:
        scale = scale.unsqueeze(-1)
    err = (actual - expected).abs()
    bound = factor * (atol * scale + rtol * expected.abs())
    assert bool((err <= bound).all()), f"{what}: max error {err.max().item():.3e}, bound {bound.min().item():.3e}"


TOL64 = (1e-10, 1e-10)       # = conftest TOL[float64], for the float64-only checks
params = pytest.mark.parametrize("name", NAMES)
dims = pytest.mark.parametrize("dim", DIMS)


# -- the contract: shapes, dtypes, devices, purity ------------------------------------------------
@params
@pytest.mark.parametrize("batch", [(), (5,), (2, 3)], ids=["single", "b5", "b2x3"])
def test_shapes_dtype_device(name, batch, dtype, device):
    p = make(name, 3)
    x = points(name, 3, n=6, dtype=dtype, device=device)[: max(1, math.prod(batch))].reshape(*batch, 3)
    for method in ("J", "S", "psi", "g", "J_bvs"):
        out = getattr(p, method)(x)
        assert out.shape == batch and out.dtype == dtype and out.device.type == device, method
    for method in ("grad_S", "prox", "grad_g"):
        out = getattr(p, method)(x)
        assert out.shape == (*batch, 3) and out.dtype == dtype and out.device.type == device, method
    sol = p.g_solution(x)
    assert sol.converged.shape == batch and sol.iterations.shape == batch and sol.residual.shape == batch
    assert sol.ok, f"{name}: g solve failed at {sol.n_failed} points (residual {sol.residual.max()})"


@params
def test_inputs_not_mutated_and_no_grad_flip(name, dtype):
    p = make(name, 3)
    x = points(name, 3, n=8, dtype=dtype)
    for requires_grad in (False, True):
        xi = x.clone().requires_grad_(requires_grad)
        before = xi.detach().clone()
        for method in ("J", "S", "grad_S", "prox", "psi", "g", "J_bvs", "grad_g"):
            getattr(p, method)(xi)
            assert xi.requires_grad == requires_grad and xi.grad is None, method
            assert torch.equal(xi.detach(), before), method


# -- the HJ mathematics ---------------------------------------------------------------------------
@params
@dims
def test_hj_pde_residual_by_autograd(name, dim):
    """dS/dt + 1/2 ||grad_x S||^2 = 0, both derivatives by autograd (t made a tensor on a copy)."""
    skip_if_excepted(name, "pde")
    p = copy.copy(make(name, dim))
    p.t = torch.tensor(T, dtype=torch.float64, requires_grad=True)
    x = points(name, dim, n=32).requires_grad_(True)
    S = p.S(x)
    dS_dt = torch.stack([torch.autograd.grad(S[k], p.t, retain_graph=True)[0] for k in range(len(x))])
    grad_x, = torch.autograd.grad(S.sum(), x)
    speed = 0.5 * (grad_x ** 2).sum(-1)
    assert float((dS_dt + speed).abs().max()) <= 1e-12 * (1 + float(speed.max()))


@params
@dims
def test_grad_S_matches_autograd_and_prox_identity(name, dim, dtype, tol):
    skip_if_excepted(name, "grad_S")
    p = make(name, dim)
    x = points(name, dim, dtype=dtype)
    xg = x.clone().requires_grad_(True)
    auto, = torch.autograd.grad(p.S(xg).sum(), xg)
    close(p.grad_S(x), auto, tol, scale=1 + x.abs().max(), what="grad_S")
    close(p.prox(x), x - p.t * p.grad_S(x), tol, scale=1 + x.abs().max(), what="prox = x - t grad S")
    close(p.psi(x), _q(x) - p.t * p.S(x), tol, scale=1 + _q(x), what="psi = q - tS")


@params
def test_prox_matches_brute_force_in_1d(name):
    skip_if_excepted(name, "brute_force_1d")
    p = make(name, 1)
    x = points(name, 1, n=24)
    coarse = torch.linspace(-15, 15, 30001, dtype=torch.float64)           # step 1e-3
    h = lambda z: p.J(z.unsqueeze(-1)) + (x - z) ** 2 / (2 * p.t)         # noqa: E731 (n, grid)
    z0 = coarse[h(coarse.expand(len(x), -1)).argmin(-1)].unsqueeze(-1)
    fine = z0 + torch.linspace(-2e-3, 2e-3, 4001, dtype=torch.float64)     # step 1e-6
    hv = h(fine)
    z = fine.gather(-1, hv.argmin(-1, keepdim=True))
    assert float((p.prox(x) - z).abs().max()) <= 2e-6
    assert bool((p.S(x) <= hv.min(-1).values + 1e-12).all())
    assert float((p.S(x) - hv.min(-1).values).abs().max()) <= 1e-10


@params
@pytest.mark.parametrize("dim", [3, 8])
def test_S_and_prox_match_the_oracle(name, dim):
    skip_if_excepted(name, "oracle")
    p = make(name, dim)
    x = points(name, dim, n=16, salt="oracle")
    sol = oracle.S_numeric(p.J, x, p.t, n_starts=3)
    assert sol.converged.float().mean() >= 0.9, f"oracle converged at {sol.converged.float().mean():.2f}"
    ok = sol.converged
    close(sol.value[ok], p.S(x)[ok], (1e-8, 1e-8), what="S vs Hopf-Lax")
    close(sol.argument[ok], p.prox(x)[ok], (1e-5, 1e-5), scale=1 + x.abs().max(), what="prox vs oracle")


@params
@dims
def test_psi_convex_along_segments_and_prox_monotone(name, dim, dtype, tol):
    skip_if_excepted(name, "convexity")
    p = make(name, dim)
    a, b = points(name, dim, dtype=dtype, salt="a"), points(name, dim, dtype=dtype, salt="b")
    theta = torch.linspace(0, 1, 11, dtype=dtype).view(-1, 1, 1)
    chord = (1 - theta.squeeze(-1)) * p.psi(a) + theta.squeeze(-1) * p.psi(b)
    curve = p.psi((1 - theta) * a + theta * b)
    assert bool((curve <= chord + tol[1] * (1 + chord.abs())).all()), "psi not convex on a segment"
    mono = ((p.prox(a) - p.prox(b)) * (a - b)).sum(-1)
    assert bool((mono >= -tol[1] * (1 + (a - b).pow(2).sum(-1))).all()), "prox not monotone"


@params
@dims
def test_prox_is_a_subgradient_of_psi_even_at_kinks(name, dim):
    """psi(z) >= psi(x) + <prox(x), z - x> for all z, also where coordinates of x are exactly 0
    (the kinks of l1 and neg_l1, where the family's selection must stay in the subdifferential)."""
    skip_if_excepted(name, "subgradient")
    p = make(name, dim)
    x = points(name, dim, n=32, salt="kink")
    x[::2, ::2] = 0.0
    for step in (1e-3, 1.0):
        z = x + step * points(name, dim, n=32, salt=f"dir{step}")
        gap = p.psi(z) - p.psi(x) - (p.prox(x) * (z - x)).sum(-1)
        assert bool((gap >= -1e-10 * (1 + p.psi(z).abs())).all()), f"step {step}: min gap {gap.min():.3e}"


@params
@dims
def test_fenchel_young_and_sample_identities_at_prox_points(name, dim, dtype, tol):
    skip_if_excepted(name, "fenchel_young")
    p = make(name, dim)
    x = points(name, dim, dtype=dtype)
    y = p.prox(x)
    scale = 1 + (x * x).sum(-1) + (y * y).sum(-1)
    close(p.g(y), (x * y).sum(-1) - p.psi(x), tol, scale=scale, factor=10, what="Fenchel-Young")
    sample = p.S(x) - p.t / 2 * (p.grad_S(x) ** 2).sum(-1)
    close(p.J_bvs(y), sample, tol, scale=scale / p.t, factor=10, what="J_bvs(y_k) = S - t/2 |grad S|^2")
    # grad g is a preimage: prox(grad g(y)) = y
    close(p.prox(p.grad_g(y)), y, tol, scale=1 + y.abs().max(), factor=10, what="prox(grad g(y)) = y")


@params
@dims
def test_J_bvs_below_J_with_equality_iff_tJ_plus_q_convex(name, dim, dtype, tol):
    skip_if_excepted(name, "J_bvs_below_J")
    p = make(name, dim)
    y = points(name, dim, dtype=dtype, salt="y")
    J, Jb = p.J(y), p.J_bvs(y)
    slack = tol[1] * (1 + _q(y)) / p.t * 10
    assert bool((Jb <= J + slack).all()), "J_bvs > J somewhere"
    if type(p).tj_plus_q_convex:
        close(Jb, J, tol, scale=(1 + _q(y)) / p.t, factor=10, what="J_bvs = J when tJ + q convex")


@pytest.mark.parametrize("name, dim, point", STRICT, ids=[f"{n}-{d}" for n, d, _ in STRICT])
def test_J_bvs_strictly_below_J(name, dim, point):
    p = make(name, dim)
    y = point(p)
    assert float(p.J(y) - p.J_bvs(y)) > 1e-3


@params
@pytest.mark.parametrize("dim", [3, 8])
def test_J_bvs_and_g_match_the_oracle(name, dim):
    skip_if_excepted(name, "oracle")
    p = make(name, dim)
    y = points(name, dim, n=16, salt="bvs")
    sol = oracle.J_bvs_numeric(p.S, y, p.t)
    assert sol.converged.float().mean() >= 0.9, f"oracle converged at {sol.converged.float().mean():.2f}"
    ok = sol.converged
    close(sol.value[ok], p.J_bvs(y)[ok], (1e-8, 1e-8), scale=1 + _q(y[ok]), what="J_bvs vs oracle")
    yk = p.prox(points(name, dim, n=16, salt="g"))
    gen = oracle.conjugate(p.psi, p.prox, yk, dim)
    assert gen.ok, f"generic conjugate failed at {gen.n_failed} points"
    close(gen.value, p.g(yk), (1e-8, 1e-8), scale=1 + _q(yk), what="g vs generic conjugate")


# -- the constants of the bound (docs/method.md section 7) ---------------------------------------
@params
@dims
def test_bound_constants(name, dim):
    skip_if_excepted(name, "bound_constants")
    p = make(name, dim)
    x = torch.cat([points(name, dim, n=256, salt="box"), BOX * torch.sign(points(name, dim, n=16, salt="c"))])
    G, L = p.psi_lipschitz(BOX), p.psi_smoothness(BOX)
    assert float(p.prox(x).norm(dim=-1).max()) <= G * (1 + 1e-12)
    assert (p.regime == "smooth") == math.isfinite(L)
    if math.isfinite(L):
        a, b = x[:128], x[128:256]
        assert bool(((p.prox(a) - p.prox(b)).norm(dim=-1) <= L * (a - b).norm(dim=-1) * (1 + 1e-12)).all())


@params
def test_params_are_json_and_rebuild_the_same_prior(name):
    p = make(name, 3)
    again = priors.get(name, dim=3, t=T, **json.loads(json.dumps(p.params())))
    x = points(name, 3, n=8)
    assert torch.equal(p.S(x), again.S(x)) and torch.equal(p.prox(x), again.prox(x))
    assert "dim=3" in repr(p)


def _perturb(value):
    if isinstance(value, (list, tuple)):
        return [_perturb(v) for v in value]
    return value * 1.25 + (0.1 if value == 0 else 0.0)


@params
def test_every_parameter_changes_something(name):
    p = make(name, 3)
    x = points(name, 3, n=16)
    for key, value in p.params().items():
        other = priors.get(name, dim=3, t=T, **{**p.params(), key: _perturb(value)})
        assert not torch.equal(other.S(x), p.S(x)), f"{name}: parameter {key} changes nothing"


# -- the historical mistakes and the t = 1 closed forms (docs/method.md section 3) ----------------
@pytest.mark.parametrize("dim", [2, 3, 8])
def test_neg_l1_constant_is_n_t_over_2(dim):
    p = priors.get("neg_l1", dim=dim, t=T)
    x = points("neg_l1", dim)
    close(p.S(x) + x.abs().sum(-1), torch.full((len(x),), -dim * T / 2, dtype=x.dtype), TOL64, what="constant")
    brute = oracle.S_numeric(p.J, x[:8], T, n_starts=2)
    close(brute.value, p.S(x[:8]), (1e-8, 1e-8), what="constant vs Hopf-Lax")


def test_prior_read_out_subtracts_half_squared_norm():
    p = priors.get("l1", dim=3, t=T)
    y = points("l1", 3, salt="readout")
    close((p.g(y) - 0.5 * (y * y).sum(-1)) / p.t, p.J(y), TOL64, scale=1 + _q(y), what="(g - q)/t = J")
    wrong = (p.g(y) - 0.5 * y.norm(dim=-1)) / p.t                        # the historical bug
    assert float((wrong - p.J(y)).abs().max()) > 1.0


@pytest.mark.parametrize("t", [0.5, 1.0, 1.7])
def test_huber_target_has_no_extra_constant(t):
    p = priors.get("l1", dim=3, t=t)
    assert float(p.S(torch.zeros(1, 3, dtype=torch.float64))) == 0.0
    x = points("l1", 3)
    u = x.abs()
    huber = torch.where(u <= t, u * u / (2 * t), u - t / 2).sum(-1)
    close(p.S(x), huber, TOL64, what="Huber")


@pytest.mark.parametrize("name", sorted(PSI_AT_T1))
@pytest.mark.parametrize("dim", [2, 3, 8])
def test_psi_closed_forms_at_t1(name, dim):
    p = priors.get(name, dim=dim, t=1.0)
    x = points(name, dim, salt="t1")
    close(p.psi(x), PSI_AT_T1[name](x), TOL64, scale=1 + _q(x), what=f"{name} psi at t = 1")


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    (dict(name="no_such_prior", dim=2), ["no_such_prior", "l1"]),
    (dict(name="l1", dim=0), ["dim", "0", ">= 1"]),
    (dict(name="l1", dim=-2), ["dim", "-2"]),
    (dict(name="l1", dim=2.0), ["dim", "2.0", "integer"]),
    (dict(name="l1", dim=True), ["dim", "True", "integer"]),
    (dict(name="neg_l1", dim=2, t=0.0), ["t", "0.0", "> 0"]),
    (dict(name="minplus", dim=2, t=-1.0), ["t", "-1.0", "> 0"]),
    (dict(name="l1", dim=2, t=float("nan")), ["t", "nan"]),
    (dict(name="concave_quadratic", dim=2, t=2.0), ["t=2.0", "< 2.0"]),
    (dict(name="concave_quadratic", dim=2, t=3.5), ["t=3.5", "< 2.0"]),
    (dict(name="concave_quadratic", dim=2, t=1.5, c=1.0), ["t=1.5", "< 1.0"]),
    (dict(name="concave_quadratic", dim=2, c=0.0), ["c", "0.0", "> 0"]),
    (dict(name="l1", dim=2, scale=-1.0), ["scale", "-1.0", "> 0"]),
    (dict(name="minplus", dim=2, mus=[[1.0, 0.0], [1.0]]), ["mus[1]", "dim=2"]),
    (dict(name="minplus", dim=2, mus=[]), ["mus", "non-empty"]),
    (dict(name="minplus", dim=2, sigmas=[1.0]), ["sigmas", "2 numbers"]),
    (dict(name="minplus", dim=2, sigmas=[1.0, 0.0]), ["sigmas[1]", "0.0", "> 0"]),
])
def test_bad_construction_is_a_config_error(kwargs, words):
    kwargs = dict(kwargs)
    with pytest.raises(ConfigError) as info:
        priors.get(kwargs.pop("name"), **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@params
@pytest.mark.parametrize("bad, words", [
    (lambda: torch.zeros(4, 2), ["shape (4, 2)", "dim=3"]),                 # wrong last axis
    (lambda: torch.zeros(3, 1), ["shape (3, 1)", "dim=3"]),                 # would broadcast silently
    (lambda: torch.zeros(()), ["shape ()", "dim=3"]),
    (lambda: torch.zeros(4, 3, dtype=torch.long), ["floating", "int64"]),
    (lambda: [[0.0, 0.0, 0.0]], ["torch.Tensor", "list"]),
], ids=["last-axis", "broadcast", "scalar", "integer", "list"])
def test_bad_points_are_config_errors(name, bad, words):
    p = make(name, 3)
    for method in ("J", "S", "grad_S", "prox", "psi", "g", "J_bvs", "grad_g"):
        with pytest.raises(ConfigError) as info:
            getattr(p, method)(bad())
        for word in words:
            assert word in str(info.value), (method, word, str(info.value))


# -- the min-plus dual solver beyond two components --------------------------------------------
def test_minplus_dual_with_three_components_matches_the_generic_conjugate():
    p = priors.get("minplus", dim=2, t=T, mus=[[1.0, 0.0], [-1.0, 0.5], [0.0, -1.2]], sigmas=[1.0, 0.5, 2.0])
    y = points("minplus", 2, n=64, salt="three")
    sol = p.g_solution(y)
    assert sol.ok, f"dual solve failed at {sol.n_failed} points"
    assert bool((sol.iterations > 0).any()), "no point needed a pairwise step: the test is too easy"
    generic = oracle.conjugate(p.psi, p.prox, y, 2)
    assert generic.converged.float().mean() >= 0.9
    ok = generic.converged
    close(sol.value[ok], generic.value[ok], (1e-8, 1e-8), scale=1 + _q(y[ok]), what="dual vs generic")
    assert bool((p.J_bvs(y) <= p.J(y) + 1e-10).all())
    # the preimage certifies the value: g(y) = <x*, y> - psi(x*) with prox(x*) ~ y where psi is smooth
    close(sol.value, (sol.argument * y).sum(-1) - p.psi(sol.argument), TOL64, scale=1 + _q(y), what="FY")
