"""Ensembles: R members trained as one equal R separate fits; stopped members are masked.

The ensemble loop sums the members' losses and takes one Adam step on the stacked parameters;
member r's gradient comes from loss r only and Adam is elementwise, so each member must follow
its separate (R = 1) fit to rounding: 1e-10 in float64, about 1e-5 in float32.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from hjbench import methods, priors
from hjbench.data import sample_split
from hjbench.errors import ConfigError
from hjbench.nets import ICNN
from hjbench.training import Budget, LossSpec, potential_objective, train_ensemble

TOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def _icnn_members(R, dtype, n=96, dim=3):
    """R different data sets (targets |x|_1 scaled by r + 1) and R different initialisations."""
    data, nets = [], []
    for r in range(R):
        g = torch.Generator().manual_seed(100 + r)
        x = (4 * (2 * torch.rand(n, dim, generator=g) - 1)).to(dtype)
        data.append((x, (r + 1) * x.abs().sum(-1)))
        nets.append(ICNN(dim, 8, 2, generator=g, dtype=dtype))
    return nets, data


def _flat(net):
    return torch.cat([p.detach().flatten() for p in net.parameters()])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_ensemble_of_four_equals_four_separate_fits(dtype):
    budget = Budget(steps=60, lr=1e-2, batch_size=32, val_fraction=0.25, check_every=10)
    objective = potential_objective(LossSpec("mse"), budget.steps)
    nets, data = _icnn_members(4, dtype)
    logs = train_ensemble(nets, objective, data, budget=budget,
                          generators=[torch.Generator().manual_seed(s) for s in range(4)])
    for r in range(4):
        alone, member_data = _icnn_members(4, dtype)
        log = train_ensemble([alone[r]], objective, [member_data[r]], budget=budget,
                             generators=[torch.Generator().manual_seed(r)])[0]
        torch.testing.assert_close(_flat(nets[r]), _flat(alone[r]), rtol=TOL[dtype], atol=TOL[dtype])
        assert logs[r].steps == log.steps and logs[r].best_step == log.best_step
        assert logs[r].final_train_loss == pytest.approx(log.final_train_loss, rel=1e-4)


class _Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros((), dtype=torch.float64))


def _pull_to_mean(net, batch, step):       # member r's optimum: the mean of its data
    return (net.theta - batch[0].mean()) ** 2


def _pull_sqrt(net, batch, step):          # NaN once theta passes its data's mean
    return torch.sqrt(batch[0].mean() - net.theta)


@pytest.mark.parametrize("objective, targets, reason", [
    (_pull_to_mean, (1.0, 4.0, 12.0), "converged"),
    (_pull_sqrt, (0.7, 50.0, 100.0), "diverged"),
])
def test_a_member_that_stops_is_frozen_while_the_others_train(objective, targets, reason):
    budget = Budget(steps=3000, lr=0.05, lr_decay=1.0, mode="converged", tol=1e-3, window=40,
                    check_every=10)
    data = [(torch.full((8,), t, dtype=torch.float64),) for t in targets]
    nets = [_Scalar() for _ in targets]
    logs = train_ensemble(nets, objective, data, budget=budget,
                          generators=[torch.Generator().manual_seed(r) for r in range(3)])
    assert logs[0].stop_reason == reason and logs[0].steps_run < logs[2].steps_run
    for r, t in enumerate(targets):          # each equals its separate fit, stopped at its step
        alone = _Scalar()
        log = train_ensemble([alone], objective, [data[r]], budget=budget,
                             generators=[torch.Generator().manual_seed(r)])[0]
        assert (log.steps_run, log.stop_reason) == (logs[r].steps_run, logs[r].stop_reason)
        assert torch.equal(alone.theta, nets[r].theta)


def _splits(n=96, dtype=torch.float64):
    prior = priors.get("l1", dim=2)
    return [sample_split(prior, n, n_test=16, generator=torch.Generator().manual_seed(s)).train.to(dtype=dtype)
            for s in range(3)]


@pytest.mark.parametrize("name", ["hj", "hj_sobolev", "lpn", "lpn_values", "pnp",
                                  "pnp_gradient_step", "lista"])
def test_fit_many_equals_separate_fits(name):
    params = dict(methods.entry(name).cls.test_params)
    params["budget"] = {**params["budget"], "steps": 40, "batch_size": 32, "val_fraction": 0.25}
    datasets, seeds = _splits(), [5, 6, 7]
    x = datasets[0].x[:10] * 0.9
    many = methods.get(name, **params).fit_many(datasets, seeds)
    for m, d, s in zip(many, datasets, seeds):
        alone = methods.get(name, **params).fit(d, seed=s)
        for kind in m.provides - {"prior"}:
            torch.testing.assert_close(getattr(m, kind)(x), getattr(alone, kind)(x), rtol=1e-10, atol=1e-10)
        assert m.training_.keys() == alone.training_.keys() and m.training_
        assert m.ensemble_size_ == 3 and alone.ensemble_size_ == 1 and m.backend_ == "torch"
        assert m.name == name and m.fit_seconds_ > 0


def test_fit_many_refuses_mismatched_shapes_in_one_line():
    prior = priors.get("l1", dim=2)
    small = sample_split(prior, 50, n_test=4, generator=torch.Generator().manual_seed(0)).train
    big = sample_split(prior, 60, n_test=4, generator=torch.Generator().manual_seed(0)).train
    m = methods.get("hj", **methods.entry("hj").cls.test_params)
    with pytest.raises(ConfigError, match=r"\(n_samples, dim\).*group the datasets") as info:
        m.fit_many([small, big], [0, 1])
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="one seed per dataset"):
        m.fit_many([small, small], [0])


def test_methods_without_training_fit_many_one_by_one():
    if "maxplus" not in methods.names():
        pytest.skip("baselines plug-in not installed")
    fitted = methods.get("maxplus").fit_many(_splits(), [0, 1, 2])
    assert [m.ensemble_size_ for m in fitted] == [1, 1, 1]
    assert all(m.training_ == {} and m.backend_ == "none" for m in fitted)
    assert type(fitted[0]).guarantee == "maxplus" and methods.entry("hj").cls.guarantee is None


@pytest.mark.skipif(importlib.util.find_spec("hjbench.training.jax_loop") is None,
                    reason="hjbench.training.jax_loop (the JAX fast path) is not installed yet")
@pytest.mark.parametrize("name", ["hj", "lpn"])
def test_jax_backend_matches_the_torch_backend(name):
    params = dict(methods.entry(name).cls.test_params)
    params["budget"] = {**params["budget"], "steps": 30}
    datasets = _splits()
    torch_fit = methods.get(name, **params).fit_many(datasets, [0, 1, 2])
    jax_fit = methods.get(name, **params, backend="jax").fit_many(datasets, [0, 1, 2])
    x = datasets[0].x[:10]
    for a, b in zip(torch_fit, jax_fit):
        assert b.backend_ == "jax" and all(log.backend == "jax" for log in b.training_.values())
        torch.testing.assert_close(b.prox(x), a.prox(x), rtol=1e-6, atol=1e-6)
