"""The max-plus interpolant (baselines.maxplus) against the exact mathematics (docs/method.md sections 5, 7).

psi_N is a max of tangent planes of the convex psi: it interpolates psi at the samples, lies
below it everywhere, and its error obeys the a posteriori bound (L/2) d(x, X_N)^2. On the prior
side J_N <= J_bvs, with equality at the sample prox points y_k = prox(x_k) (Fenchel-Young).
"""

from __future__ import annotations

import pytest
import torch

from baselines.maxplus import MaxPlus, max_affine
from hjbench import methods, priors
from hjbench.data import sample_split
from hjbench.errors import ConfigError

FAMILIES = ["l1", "neg_l1", "concave_quadratic", "minplus"]
DIM = 3


def _fit(family, n=400, dim=DIM, seed=0, **params):
    prior = priors.get(family, dim=dim)
    split = sample_split(prior, n, n_test=300, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float64)
    return prior, split, methods.get("maxplus", **params).fit(split.train, seed=0)


@pytest.fixture(scope="module", params=FAMILIES)
def fitted(request):
    return _fit(request.param)


def _box(dim, n, scale, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(n, dim, generator=g, dtype=torch.float64) - 1) * scale


def test_registered_with_its_regime_and_outputs():
    m = methods.get("maxplus")
    assert m.data_regime == "values_and_gradients"
    assert m.provides == {"prox", "potential", "prior"}
    assert methods.entry("maxplus").source == "baselines"


def test_interpolates_psi_and_its_prox_at_the_samples(fitted):
    prior, split, m = fitted
    x = split.train.x
    torch.testing.assert_close(m.potential(x), prior.psi(x), rtol=0, atol=1e-10)
    torch.testing.assert_close(m.prox(x), prior.prox(x), rtol=0, atol=1e-8)


def test_stays_below_psi_everywhere(fitted):
    prior, split, m = fitted
    for x in (split.test.x, _box(DIM, 500, 6.0)):          # inside and outside the sample box
        assert bool((m.potential(x) <= prior.psi(x) + 1e-10).all())


def test_prior_never_exceeds_J_bvs_and_is_exact_at_sample_prox_points(fitted):
    prior, split, m = fitted
    for y in (_box(DIM, 500, 4.0), prior.prox(split.test.x)):
        assert bool((m.prior(y) <= prior.J_bvs(y) + 1e-7).all())
    y_k = prior.prox(split.train.x[:100])
    torch.testing.assert_close(m.prior(y_k), prior.J_bvs(y_k), rtol=0, atol=1e-6)
    sol = m.prior_solution(y_k)
    assert sol.ok and bool((sol.iterations == 0).all())


def test_a_posteriori_bound_in_the_smooth_case():
    # l1: psi = 1/2 dist(x, [-1, 1]^n)^2 has a 1-Lipschitz gradient, so
    # 0 <= psi - psi_N <= (1/2) d(x, X_N)^2 (docs/method.md section 7)
    prior, split, m = _fit("l1", n=200)
    x = split.test.x
    gap = prior.psi(x) - m.potential(x)
    d2 = torch.cdist(x, split.train.x).min(dim=1).values ** 2
    assert bool((gap >= -1e-12).all()) and bool((gap <= 0.5 * prior.psi_smoothness(4.0) * d2 + 1e-12).all())
    assert float(gap.max()) > 0, "the bound check must not pass vacuously"


def test_chunking_changes_nothing(fitted):
    prior, split, whole = fitted
    pieces = MaxPlus(chunk_elements=7).fit(split.train)    # blocks of 1 query x 7 samples
    rows = MaxPlus(chunk_elements=1000).fit(split.train)   # blocks of 2 queries x 400 samples
    x = torch.cat([split.test.x[:60], _box(DIM, 20, 6.0)])
    for other in (pieces, rows):
        torch.testing.assert_close(other.potential(x), whole.potential(x), rtol=0, atol=1e-12)
        torch.testing.assert_close(other.prox(x), whole.prox(x), rtol=0, atol=1e-12)
        torch.testing.assert_close(other.prior(x), whole.prior(x), rtol=0, atol=1e-12)


def test_large_sample_sets_stay_within_the_chunk_budget(monkeypatch):
    """10^5 samples x 10^4 queries in dim 2: no block holds more than chunk_elements scores."""
    g = torch.Generator().manual_seed(0)
    n, b, chunk = 100_000, 10_000, 2 ** 22
    slopes, offsets = torch.randn(n, 2, generator=g), torch.randn(n, generator=g)
    x = torch.randn(b, 2, generator=g)
    largest = [0]
    addmm = torch.addmm

    def spy(*args, **kwargs):
        out = addmm(*args, **kwargs)
        largest[0] = max(largest[0], out.numel())
        return out

    monkeypatch.setattr(torch, "addmm", spy)
    values, arg = max_affine(x, slopes, offsets, chunk)
    monkeypatch.undo()
    assert 0 < largest[0] <= chunk
    # spot-check against the dense formula on a few queries
    dense = x[:20] @ slopes.T + offsets
    torch.testing.assert_close(values[:20], dense.max(dim=1).values)
    assert torch.equal(arg[:20], dense.argmax(dim=1))


def test_float32_data_and_queries_of_any_batch_shape():
    prior, split, m = _fit("l1", n=64)
    x = split.test.x[:12].float().reshape(2, 2, 3, DIM)
    assert m.potential(x).shape == (2, 2, 3) and m.potential(x).dtype == torch.float32
    assert m.prox(x).shape == (2, 2, 3, DIM)
    assert m.prior(x).shape == (2, 2, 3)


@pytest.mark.parametrize("value", [0, -5, 2.5, None, True])
def test_bad_chunk_elements_raise(value):
    with pytest.raises(ConfigError, match="chunk_elements"):
        methods.get("maxplus", chunk_elements=value)


def test_needs_gradients_in_the_data():
    prior = priors.get("l1", dim=2)
    split = sample_split(prior, 16, n_test=4, regime="values", generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="values_and_gradients"):
        methods.get("maxplus").fit(split.train)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk", [7, 4096])
def test_jax_backend_equals_torch_backend(dtype, chunk):
    """The JAX kernel (across the hjbench.jax_bridge boundary) gives the torch kernel's values and ties."""
    pytest.importorskip("jax")
    from baselines.maxplus import max_affine, max_affine_jax

    g = torch.Generator().manual_seed(3)
    x = torch.randn(37, 3, generator=g, dtype=dtype)
    slopes = torch.randn(23, 3, generator=g, dtype=dtype)
    slopes[5] = slopes[2]  # a tie: the smaller index must win in both
    offsets = torch.randn(23, generator=g, dtype=dtype)
    offsets[5] = offsets[2]
    v_t, a_t = max_affine(x, slopes, offsets, chunk)
    v_j, a_j = max_affine_jax(x, slopes, offsets, chunk)
    assert v_j.dtype == dtype
    torch.testing.assert_close(v_j, v_t)
    assert torch.equal(a_j, a_t)


def test_jax_backend_through_the_method():
    pytest.importorskip("jax")
    p = priors.get("minplus", dim=3)
    split = sample_split(p, 300, n_test=64, generator=torch.Generator().manual_seed(0))
    a = methods.get("maxplus").fit(split.train)
    b = methods.get("maxplus", backend="jax", chunk_elements=1000).fit(split.train)
    x = split.test.x
    torch.testing.assert_close(b.potential(x), a.potential(x))
    torch.testing.assert_close(b.prox(x), a.prox(x))
    torch.testing.assert_close(b.prior(x), a.prior(x))
    with pytest.raises(ConfigError, match="backend"):
        methods.get("maxplus", backend="numpy")
