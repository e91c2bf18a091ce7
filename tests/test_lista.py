"""The unrolled shrinkage baseline "lista" (docs/method.md section 5; issue 4, item 2).

Known answers: with its analytic weights the network is K steps of ISTA for the prox of
lambda ||.||_1, bit for bit, and with many layers it is the soft threshold; its learned maps
include the exact proxes of l1, neg_l1 and the concave quadratic; trained on l1 prox pairs its
held-out error falls with the number of samples.
"""

from __future__ import annotations

import pytest
import torch

import baselines.lista  # noqa: F401  (registers "lista" even when other baselines are missing)
from baselines.lista import LISTA, UnrolledShrinkage, soft_threshold
from hjbench import methods, priors
from hjbench.run import config
from hjbench.data import Dataset, sample_split
from hjbench.errors import ConfigError, NotProvidedError


def _ista(x, n_iter, t, r, lam):
    """Hand-written ISTA for argmin_y lam ||y||_1 + ||y - x||^2 / (2t), step s = r t, y_0 = 0."""
    y = torch.zeros_like(x)
    for _ in range(n_iter):
        y = soft_threshold((1 - r) * y + r * x, r * t * lam)
    return y


@pytest.mark.parametrize("bad", [
    {"n_layers": 0}, {"n_layers": 2.0}, {"step": 0.0}, {"step": 1.5}, {"l1_weight": -0.1},
    {"budget": {"lr": -1e-3}}, {"budget": {"steps": 0}}, {"budget": {"width": 0}},
    {"budget": {"depth": -1}}, {"budget": {"lr_decay": 2.0}},
])
def test_bad_parameters_are_refused_at_construction(bad):
    key = next(iter(bad))
    if key == "budget":
        key = "budget." + next(iter(bad["budget"]))
    with pytest.raises(ConfigError, match=key):
        methods.get("lista", **bad)


def test_harness_refuses_unknown_option_and_wrong_regime():
    grid = {"dims": [2], "n_samples": [10], "priors": ["l1"]}
    with pytest.raises(ConfigError, match=r"params\.K"):
        config.validate({**grid, "methods": [{"name": "lista", "params": {"K": 3}}]})
    with pytest.raises(ConfigError, match="n_layers"):
        config.validate({**grid, "methods": [{"name": "lista", "params": {"n_layers": 0}}]})
    with pytest.raises(ConfigError, match="prox_pairs"):
        config.validate({**grid, "regime": "values", "methods": ["lista"]})
    values = Dataset(x=torch.zeros(4, 2), t=1.0, regime="values", S=torch.zeros(4))
    with pytest.raises(ConfigError, match="prox_pairs"):
        methods.get("lista", **LISTA.test_params).fit(values)


@pytest.mark.parametrize("n_atoms,n_knots", [(0, 0), (5, 2)])
def test_analytic_weights_reproduce_ista_bit_for_bit(device, dtype, n_atoms, n_knots):
    g = torch.Generator().manual_seed(3)
    t, r, lam, K = 1.3, 0.4, 0.8, 7
    net = UnrolledShrinkage(3, K, n_atoms, n_knots, t=t, step=r, l1_weight=lam, generator=g,
                            dtype=dtype).to(device)
    x = ((2 * torch.rand(500, 3, generator=g, dtype=dtype) - 1) * 4).to(device)
    with torch.no_grad():
        out = net(x)
    assert torch.equal(out, _ista(x, K, t, r, lam))


def test_analytic_weights_with_many_layers_give_the_soft_threshold():
    g = torch.Generator().manual_seed(4)
    t, lam = 0.7, 1.5
    net = UnrolledShrinkage(4, 80, 3, 1, t=t, step=0.5, l1_weight=lam, generator=g,
                            dtype=torch.float64)
    x = (2 * torch.rand(300, 4, generator=g, dtype=torch.float64) - 1) * 4
    with torch.no_grad():
        # error contracts by (1 - r) = 1/2 per layer: 4 * 2^-80 is below rounding
        torch.testing.assert_close(net(x), soft_threshold(x, t * lam), rtol=0, atol=1e-14)
    # with r = 1 one layer is already exact: y_1 = soft(x, t lam)
    one = UnrolledShrinkage(4, 1, 0, 0, t=t, step=1.0, l1_weight=lam, generator=g, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(one(x), soft_threshold(x, t * lam))


def test_represents_expanding_and_linear_proxes_exactly():
    """One layer holds x + t sign(x) (neg_l1, threshold -t) and 2x/(2-t) (concave, threshold 0)."""
    t = 1.0
    x = torch.tensor([[-3.0, 0.5], [0.2, -0.1], [2.5, 4.0]], dtype=torch.float64)
    net = UnrolledShrinkage(2, 1, 0, 0, t=t, step=1.0, l1_weight=0.0,
                            generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        net.theta.fill_(-t)
        torch.testing.assert_close(net(x), priors.get("neg_l1", dim=2, t=t).prox(x))
        net.theta.zero_()
        net.B.mul_(2 / (2 - t))
        torch.testing.assert_close(net(x), priors.get("concave_quadratic", dim=2, t=t).prox(x))


def test_represents_the_paper_minplus_prox_exactly():
    """Equal sigma: prox = a x + b mean(mu) + b sign(<x, v>) v / 2, v = mu_2 - mu_1, from 2 atoms."""
    dim, t = 3, 1.0
    prior = priors.get("minplus", dim=dim, t=t)
    mu1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    mu2 = torch.full((dim,), dim ** -0.5, dtype=torch.float64)
    a, b, v = 1 / (1 + t), t / (1 + t), mu2 - mu1          # sigma_1 = sigma_2 = 1
    net = UnrolledShrinkage(dim, 1, 2, 0, t=t, step=1.0, l1_weight=0.0,
                            generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        net.B[0, :dim] = a * torch.eye(dim, dtype=torch.float64)
        net.B[0, dim:] = v                                 # two atoms reading <x, v>
        net.theta[0, 0, dim] = -1.0                        # u + sign(u) ...
        net.D[:, dim] = b * v / 2
        net.D[:, dim + 1] = -b * v / 2                     # ... minus u: b sign(<x, v>) v / 2
        net.d.copy_(b * (mu1 + mu2) / 2)
        x = (2 * torch.rand(400, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 1) * 4
        torch.testing.assert_close(net(x), prior.prox(x))


def test_neutral_default_start_is_near_identity():
    """l1_weight = 0 (default) starts at (1 - (1 - r)^K) x: no family's answer is built in."""
    m = LISTA()
    net = UnrolledShrinkage(2, m.n_layers, 3, 1, t=1.0, step=m.step, l1_weight=m.l1_weight,
                            generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.linspace(-4, 4, 18, dtype=torch.float64).reshape(9, 2)
    with torch.no_grad():
        torch.testing.assert_close(net(x), (1 - (1 - m.step) ** m.n_layers) * x)


def test_prox_only_and_state_round_trip():
    prior = priors.get("l1", dim=2)
    split = sample_split(prior, 64, n_test=16, generator=torch.Generator().manual_seed(0))
    m = methods.get("lista", **LISTA.test_params).fit(split.train, seed=1)
    assert m.provides == {"prox"} and m.data_regime == "prox_pairs"
    for kind in ("prior", "potential"):
        with pytest.raises(NotProvidedError):
            getattr(m, kind)(split.test.x)
    restored = LISTA(**m.get_params()).load_state_dict(m.state_dict())
    assert torch.equal(restored.prox(split.test.x), m.prox(split.test.x))


def test_held_out_prox_error_falls_with_n_samples():
    prior = priors.get("l1", dim=2)
    params = dict(budget=dict(steps=300, lr=1e-2, lr_decay_every=150, width=8, depth=1), n_layers=3)
    errors = []
    for n in (20, 1000):
        split = sample_split(prior, n, n_test=1000, generator=torch.Generator().manual_seed(2))
        m = methods.get("lista", **params).fit(split.train, seed=2)
        errors.append(float(((m.prox(split.test.x) - prior.prox(split.test.x)) ** 2).sum(-1).mean()))
    assert errors[1] < errors[0] / 2, errors
    assert errors[1] < 2e-3, errors
