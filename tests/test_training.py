"""The one training loop (hjbench.training.loop): schedule, modes, stopping, syncs, determinism.

Most checks use a one-parameter module whose Adam iterates are known in closed form: with a
constant gradient g the first Adam moments are m_hat = g, v_hat = g^2, so every step moves the
parameter by lr_t g / (|g| + eps) ~ lr_t sign(g).
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

from hjbench.errors import ConfigError
from hjbench.nets import ICNN
from hjbench.training import Budget, LossSpec, potential_objective, train_ensemble
from hjbench.training import loop as loop_module
from hjbench.training.losses import prox_matching_phase


class Scalar(nn.Module):
    """One parameter theta; no sign constraint declared."""

    def __init__(self, value: float = 1.0, dtype=torch.float64):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(value, dtype=dtype))


def _data(n=20, dtype=torch.float64):
    return (torch.linspace(-1, 1, n, dtype=dtype),)


def _gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def linear(net, batch, step):          # constant gradient 1: theta decreases by ~lr_t per step
    return net.theta + 0 * batch[0].sum()


def quadratic(net, batch, step):       # minimum at theta = 3
    return (net.theta - 3) ** 2 + 0 * batch[0].sum()


def test_lr_at_follows_the_documented_schedule():
    b = Budget(steps=10, lr=1.0, lr_decay=0.5, lr_decay_every=3)
    assert [b.lr_at(s) for s in range(1, 11)] == [1, 1, 1, .5, .5, .5, .25, .25, .25, .125]
    assert Budget(steps=500).decay_every == 100          # the paper's five phases, scaled


def test_the_loop_steps_with_the_scheduled_learning_rate():
    b = Budget(steps=10, lr=0.1, lr_decay=0.5, lr_decay_every=3, check_every=5)
    net = Scalar(1.0)
    train_ensemble([net], linear, [_data()], budget=b, generators=_gens(0))
    expected = 1.0 - sum(b.lr_at(s) for s in range(1, 11))
    assert float(net.theta.detach()) == pytest.approx(expected, abs=1e-6)


def test_fixed_mode_runs_every_step_and_converged_mode_stops_early():
    common = dict(steps=3000, lr=0.05, check_every=20)
    fixed = train_ensemble([Scalar(0.0)], quadratic, [_data()], budget=Budget(**common),
                           generators=_gens(0))[0]
    assert (fixed.stop_reason, fixed.steps_run, fixed.mode) == ("max_steps", 3000, "fixed")
    net = Scalar(0.0)
    conv = train_ensemble([net], quadratic, [_data()], generators=_gens(0),
                          budget=Budget(mode="converged", tol=1e-3, window=100, **common))[0]
    assert conv.stop_reason == "converged" and conv.mode == "converged"
    assert conv.steps_run < 3000 and conv.steps_run % 20 == 0
    assert abs(float(net.theta.detach()) - 3) < 0.1
    assert conv.final_train_loss == pytest.approx((float(net.theta.detach()) - 3) ** 2, rel=1e-9)


def test_early_stopping_restores_the_best_validation_state():
    def objective(net, batch, step):   # training pulls theta to 5, validation prefers 0
        target = 0.0 if step is None else 5.0
        return (net.theta - target) ** 2 + 0 * batch[0].sum()

    b = Budget(steps=100, lr=0.1, lr_decay=1.0, check_every=5, val_fraction=0.25, patience=2)
    net = Scalar(0.5)
    log = train_ensemble([net], objective, [_data()], budget=b, generators=_gens(0))[0]
    assert log.stop_reason == "early_stopped" and log.steps_run == 15 and log.best_step == 5
    assert len(log.val_loss) == len(log.steps) == 3 and log.val_loss[0] < log.val_loss[1]
    at_best = Scalar(0.5)
    train_ensemble([at_best], objective, [_data()], budget=b.replace(steps=5, patience=None),
                   generators=_gens(0))
    assert torch.equal(net.theta, at_best.theta)


def test_divergence_is_reported_with_the_last_finite_parameters():
    def objective(net, batch, step):   # NaN once theta < 0
        return torch.sqrt(net.theta) + 0 * batch[0].sum()

    net = Scalar(1.0)
    log = train_ensemble([net], objective, [_data()], generators=_gens(0),
                         budget=Budget(steps=100, lr=0.3, check_every=2))[0]
    assert log.stop_reason == "diverged" and log.diverged and log.steps_run < 100
    assert math.isfinite(float(net.theta.detach())) and float(net.theta.detach()) > 0
    assert math.isfinite(log.final_train_loss)
    assert not math.isfinite(log.train_loss[-1]) and log.best_step == log.steps[-2] - 1


def test_a_huge_learning_rate_on_an_icnn_is_diverged_never_max_steps():
    g = torch.Generator().manual_seed(0)
    x = 4 * (2 * torch.rand(64, 2, generator=g) - 1)
    net = ICNN(2, 16, 1, generator=g)
    log = train_ensemble([net], potential_objective(LossSpec("mse"), 50), [(x, (x ** 2).sum(-1))],
                         budget=Budget(steps=50, lr=1e6, check_every=5), generators=_gens(1))[0]
    assert log.stop_reason == "diverged"
    assert all(bool(torch.isfinite(p).all()) for p in net.parameters())


def test_host_synchronises_only_at_checks(monkeypatch):
    """Device values are read back once per check and once at the end, and nowhere else."""
    calls, stray = [], []
    original = loop_module._to_host
    monkeypatch.setattr(loop_module, "_to_host", lambda v: calls.append(1) or original(v))
    library = ("training/loop.py", "training/losses.py", "nets/icnn.py")

    def spy(name):
        real = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            frame = sys._getframe(1)
            if frame.f_code.co_filename.endswith(library) and frame.f_code.co_name != "_to_host":
                stray.append(f"{name} in {frame.f_code.co_name}")
            return real(self, *args, **kwargs)
        return wrapper

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, spy(name))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 2, generator=g)
    b = Budget(steps=45, lr=1e-2, check_every=10, batch_size=16, val_fraction=0.2, patience=50)
    train_ensemble([ICNN(2, 8, 1, generator=g) for _ in range(2)],
                   potential_objective(LossSpec("sobolev"), 45), [(x, (x ** 2).sum(-1), x)] * 2,
                   budget=b, generators=_gens(1, 2))
    assert stray == []
    assert len(calls) == 5 + 1          # checks at 10, 20, 30, 40, 45; final losses


def test_projection_is_the_declared_property_of_the_module():
    g = torch.Generator().manual_seed(0)
    x = 4 * (2 * torch.rand(200, 2, generator=g) - 1)
    net = ICNN(2, 16, 2, generator=g)
    train_ensemble([net], potential_objective(LossSpec("mse"), 100), [(x, torch.sin(x).sum(-1))],
                   budget=Budget(steps=100, lr=5e-2), generators=_gens(0))
    assert all(bool((W >= 0).all()) for W in net.W) and bool((net.w >= 0).all())
    assert any(bool((W == 0).any()) for W in net.W), "the projection was never active"
    free = Scalar(1.0)     # declares nothing: free to go negative
    train_ensemble([free], linear, [_data()], budget=Budget(steps=30, lr=0.1, lr_decay=1.0), generators=_gens(0))
    assert float(free.theta.detach()) < 0


def test_training_is_deterministic_for_given_generators():
    def run(seed):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=g)
        net = ICNN(3, 8, 1, generator=g)
        train_ensemble([net], potential_objective(LossSpec("mse"), 40), [(x, x.abs().sum(-1))],
                       budget=Budget(steps=40, lr=1e-2, batch_size=16, val_fraction=0.25),
                       generators=_gens(seed))
        return torch.cat([p.flatten() for p in net.parameters()])

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_prox_matching_schedule_and_objective():
    """Warm-up steps use the l1 loss, then gamma_j * (1 - exp(-(r / gamma_j)^2)), gamma halving."""
    spec = LossSpec("prox_matching", warmup_fraction=0.25, gamma=0.4, gamma_stages=3, scale=2.0)
    phases = [prox_matching_phase(spec, 12, s) for s in range(1, 13)]
    assert phases == [None] * 3 + [0.4] * 3 + [0.2] * 3 + [0.1] * 3
    net = ICNN(2, 8, 1, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    x, p = torch.randn(10, 2, generator=g), torch.randn(10, 2, generator=g)
    objective = potential_objective(spec, 12)
    with torch.no_grad():
        err = net.grad(x) - p
        r = err.norm(dim=-1) / (2.0 * math.sqrt(2))
        assert float(objective(net, (x, p), 1)) == pytest.approx(float(err.abs().mean() / 2))
        got = float(objective(net, (x, p), 8))
        assert got == pytest.approx(float(0.2 * (1 - torch.exp(-(r / 0.2) ** 2)).mean()))
        assert float(objective(net, (x, p), None)) == pytest.approx(float((err ** 2).mean() / 4))


def test_mismatched_members_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="same number of samples"):
        train_ensemble([Scalar(), Scalar()], linear, [_data(20), _data(21)],
                       budget=Budget(steps=2), generators=_gens(0, 1))
    with pytest.raises(ConfigError, match="same number"):
        train_ensemble([Scalar()], linear, [_data(), _data()], budget=Budget(steps=2),
                       generators=_gens(0))
