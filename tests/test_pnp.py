"""The plug-and-play baselines "pnp" and "pnp_gradient_step" (docs/method.md section 5; issue 4, item 3).

Known answers: the gradient-step denoiser's explicit gradient equals autograd's, its prox is the
gradient of its potential (D = grad psi_theta), evaluation has no side effects; both learners'
held-out prox errors fall with the number of samples on l1.
"""

from __future__ import annotations

import pytest
import torch

import baselines.pnp  # noqa: F401  (registers the methods even when other baselines are missing)
from baselines.pnp import GradientStepDenoiser, PlugAndPlay, ScalarMLP
from hjbench import methods, priors
from hjbench.run import config
from hjbench.data import sample_split
from hjbench.errors import ConfigError, NotProvidedError


@pytest.fixture(scope="module")
def l1_split():
    prior = priors.get("l1", dim=2)
    return prior, sample_split(prior, 128, n_test=32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["pnp", "pnp_gradient_step"])
@pytest.mark.parametrize("bad", [{"lr": -1e-3}, {"depth": 0}, {"width": 0}, {"steps": 0},
                                 {"batch_size": 0}, {"patience": 3}])
def test_bad_parameters_are_refused_at_construction(name, bad):
    with pytest.raises(ConfigError, match=f"budget.{next(iter(bad))}"):
        methods.get(name, budget=bad)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_gradient_step_needs_a_positive_value_weight(bad):
    with pytest.raises(ConfigError, match="value_weight"):
        methods.get("pnp_gradient_step", value_weight=bad)


def test_harness_refuses_unknown_option_and_wrong_regime():
    grid = {"dims": [2], "n_samples": [10], "priors": ["l1"]}
    with pytest.raises(ConfigError, match=r"params\.sigma"):
        config.validate({**grid, "methods": [{"name": "pnp", "params": {"sigma": 0.1}}]})
    with pytest.raises(ConfigError, match="values_and_gradients"):
        config.validate({**grid, "regime": "prox_pairs", "methods": ["pnp_gradient_step"]})


def test_declared_outputs(l1_split):
    prior, split = l1_split
    pnp = methods.get("pnp", **PlugAndPlay.test_params).fit(split.train, seed=0)
    gs = methods.get("pnp_gradient_step", **GradientStepDenoiser.test_params).fit(split.train, seed=0)
    assert pnp.provides == {"prox"} and pnp.data_regime == "prox_pairs"
    assert gs.provides == {"prox", "potential"} and gs.data_regime == "values_and_gradients"
    for m, missing in ((pnp, ("potential", "prior")), (gs, ("prior",))):
        for kind in missing:
            with pytest.raises(NotProvidedError, match="does not provide"):
                getattr(m, kind)(split.test.x)


def test_explicit_gradient_equals_autograd(dtype):
    g = torch.Generator().manual_seed(1)
    net = ScalarMLP(3, 7, 2, s_in=1.7, s_out=0.6, offset=0.3, generator=g, dtype=dtype)
    with torch.no_grad():
        net.w.copy_(torch.randn(7, generator=g, dtype=dtype))
    x = torch.randn(11, 3, generator=g, dtype=dtype)
    value, grad = net.value_and_grad(x)
    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(net(xr).sum(), xr)
    rtol, atol = (1e-5, 1e-5) if dtype == torch.float32 else (1e-12, 1e-12)
    torch.testing.assert_close(grad, auto, rtol=rtol, atol=atol)
    torch.testing.assert_close(value, net(x))


def test_untrained_gradient_step_denoiser_is_the_identity():
    net = ScalarMLP(2, 5, 1, offset=2.5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    value, grad = net.value_and_grad(x)
    assert torch.equal(grad, torch.zeros_like(x)) and torch.allclose(value, torch.full((6,), 2.5, dtype=torch.float64))


def test_gradient_step_prox_is_the_gradient_of_its_potential(l1_split):
    """D = I - grad g_theta = grad psi_theta with psi_theta = q - g_theta (central differences)."""
    prior, split = l1_split
    m = methods.get("pnp_gradient_step", **GradientStepDenoiser.test_params)
    m.fit(split.train.to(dtype=torch.float64), seed=0)
    x, h = split.test.x.double(), 1e-6
    eye = torch.eye(2, dtype=torch.float64)
    fd = torch.stack([(m.potential(x + h * e) - m.potential(x - h * e)) / (2 * h) for e in eye], -1)
    torch.testing.assert_close(m.prox(x), fd, rtol=1e-6, atol=1e-6)


def test_gradient_step_evaluation_has_no_side_effects(l1_split):
    prior, split = l1_split
    m = methods.get("pnp_gradient_step", **GradientStepDenoiser.test_params).fit(split.train, seed=0)
    params = list(m.net_.parameters())
    before = [p.detach().clone() for p in params]
    for requires_grad in (False, True):
        x = split.test.x.clone().requires_grad_(requires_grad)
        x0 = x.detach().clone()
        for out in (m.prox(x), m.potential(x)):
            assert not out.requires_grad and out.grad_fn is None
        assert x.requires_grad is requires_grad and x.grad is None and torch.equal(x.detach(), x0)
    assert all(p.grad is None and not p.requires_grad for p in params)
    assert all(torch.equal(p, b) for p, b in zip(params, before))


def test_state_round_trip(l1_split):
    prior, split = l1_split
    for name, cls in (("pnp", PlugAndPlay), ("pnp_gradient_step", GradientStepDenoiser)):
        m = methods.get(name, **cls.test_params).fit(split.train, seed=3)
        restored = cls(**m.get_params()).load_state_dict(m.state_dict())
        for kind in m.provides:
            assert torch.equal(getattr(restored, kind)(split.test.x), getattr(m, kind)(split.test.x))


@pytest.mark.parametrize("name,steps", [("pnp", 300), ("pnp_gradient_step", 600)])
def test_held_out_prox_error_falls_with_n_samples(name, steps):
    prior = priors.get("l1", dim=2)
    params = dict(budget=dict(steps=steps, lr=1e-2, lr_decay_every=steps // 2, width=32, depth=2))
    errors = []
    for n in (20, 1000):
        split = sample_split(prior, n, n_test=1000, generator=torch.Generator().manual_seed(2))
        m = methods.get(name, **params).fit(split.train, seed=2)
        errors.append(float(((m.prox(split.test.x) - prior.prox(split.test.x)) ** 2).sum(-1).mean()))
    assert errors[1] < errors[0] / 2, errors
    assert errors[1] < 1e-2, errors
