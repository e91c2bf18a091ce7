"""The JAX fast path: the same network, the same training, member by member.

* ``hjbench.nets.icnn_jax`` gives the torch ICNN's values and input gradients (float64 to
  1e-10, float32 to 1e-5) for random parameters of any sign, with and without a first bias;
* ``train_icnn_ensemble`` reproduces a plain torch loop (torch.optim.Adam, full batch,
  ``project_`` after each step, lr from ``budget.lr_at``, the LossSpec written out here) to
  ~1e-8 after 50 float64 steps, including LPN's warm-up and gamma stages;
* an ensemble is the same as its members trained one by one; stopped members are frozen;
  divergence and early stopping are reported per member.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys

import pytest
import torch

from hjbench.errors import ConfigError
from hjbench.nets import ICNN
from hjbench.training import Budget, LossSpec, potential_objective, train_ensemble

jax = pytest.importorskip("jax")

from hjbench import jax_bridge as interop  # noqa: E402
from hjbench.nets import icnn_jax  # noqa: E402
from hjbench.training.jax_loop import train_icnn_ensemble  # noqa: E402

BETA, DIM, WIDTH, N = 5.0, 3, 12, 48
F64 = torch.float64


def _net(dim=DIM, width=WIDTH, depth=2, seed=0, dtype=F64):
    return ICNN(dim, width, depth, beta=BETA, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _data(R, seed=0, n=N, dim=DIM):
    """x in [-2, 2]^dim, v = ||x||^2 / 2 + sin(x_1), p = its gradient."""
    g = torch.Generator().manual_seed(seed)
    x = 4 * torch.rand(R, n, dim, generator=g, dtype=F64) - 2
    v = 0.5 * (x * x).sum(-1) + torch.sin(x[..., 0])
    p = x.clone()
    p[..., 0] += torch.cos(x[..., 0])
    return x, v, p


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


def test_importing_the_backend_loads_no_jax():
    code = ("import sys, hjbench, hjbench.training, hjbench.training.jax_loop; "
            "assert 'jax' not in sys.modules, 'jax imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the network ----------------------------------------------------------------------------------
@pytest.mark.parametrize("first_bias", [True, False], ids=["b0", "no_b0"])
@pytest.mark.parametrize("depth", [0, 1, 2])
@pytest.mark.parametrize("dim", [1, 3])
def test_value_and_gradient_equal_torch(dim, depth, first_bias, dtype, tol):
    net = _net(dim, 9, depth, seed=dim + 10 * depth, dtype=dtype)
    g = torch.Generator().manual_seed(depth)
    with torch.no_grad():
        for prm in net.parameters():           # any sign: the clamp at use is exercised
            prm.copy_(torch.randn(prm.shape, generator=g, dtype=dtype) / math.sqrt(prm.numel()) * 3)
        if not first_bias:
            net.b0.zero_()
    state = {k: v for k, v in net.state_dict().items() if first_bias or k != "b0"}
    x = 3 * torch.randn(40, dim, generator=g, dtype=dtype)   # large |beta u|: both softplus branches
    f_t, g_t = net.value_and_grad(x)
    with interop.x64() if dtype == F64 else contextlib.nullcontext():
        params = icnn_jax.from_torch_state(state)
        f_j, g_j = jax.jit(icnn_jax.value_and_grad, static_argnums=2)(params, interop.to_jax(x), BETA)
        f_only = jax.jit(icnn_jax.value, static_argnums=2)(params, interop.to_jax(x), BETA)
        f_j, g_j, f_only = (interop.to_torch(a) for a in (f_j, g_j, f_only))
        back = icnn_jax.to_torch_state(params, like=state)
    rtol, atol = tol
    assert (net.W0 @ x.T * BETA).max() > 20                  # threshold branch reached
    torch.testing.assert_close(f_j, f_t.detach(), rtol=rtol, atol=atol)
    torch.testing.assert_close(f_only, f_t.detach(), rtol=rtol, atol=atol)
    torch.testing.assert_close(g_j, g_t.detach(), rtol=rtol, atol=atol)
    assert list(back) == list(state) and all(back[k].dtype == dtype for k in back)
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_float64_needs_the_x64_context():
    with pytest.raises(ConfigError, match="x64"):
        interop.to_jax(torch.zeros(2, dtype=F64))


# -- training against a plain torch loop ------------------------------------------------------------
def _torch_reference(state, x, v, p, loss: LossSpec, budget: Budget):
    """torch.optim.Adam on an ICNN, full batch, project_ after each step, the LossSpec by hand."""
    net = _net()
    net.load_state_dict(state)
    opt = torch.optim.Adam(net.parameters(), lr=budget.lr)
    n_warm = int(round(loss.warmup_fraction * budget.steps))
    stage_len = max(1, math.ceil((budget.steps - n_warm) / loss.gamma_stages))
    losses = []
    for step in range(1, budget.steps + 1):
        for group in opt.param_groups:
            group["lr"] = budget.lr_at(step)
        opt.zero_grad()
        f, g = net.value_and_grad(x)
        err = g - p
        if loss.kind == "mse":
            out = ((net(x) - v) ** 2).mean()
        elif loss.kind == "sobolev":
            out = ((f - v) ** 2).mean() + loss.weight * (err ** 2).mean()
        elif step <= n_warm:
            out = err.abs().mean() / loss.scale
        else:
            gamma = loss.gamma / 2 ** min((step - n_warm - 1) // stage_len, loss.gamma_stages - 1)
            r = torch.linalg.vector_norm(err, dim=-1) / (loss.scale * math.sqrt(DIM))
            out = gamma * (1 - torch.exp(-(r / gamma) ** 2)).mean()
        out.backward()
        opt.step()
        net.project_()
        losses.append(float(out.detach()))
    return net.state_dict(), losses


BUDGET = Budget(steps=50, lr=2e-2, lr_decay=0.5, lr_decay_every=20, check_every=10, width=WIDTH)
LOSSES = {"mse": LossSpec("mse"), "sobolev": LossSpec("sobolev", weight=0.5),
          "prox_matching": LossSpec("prox_matching", warmup_fraction=0.3, gamma=0.5, gamma_stages=4)}


@pytest.mark.parametrize("kind", list(LOSSES))
def test_training_equals_a_plain_torch_loop(kind):
    x, v, p = _data(1)
    state = _net(seed=3).state_dict()
    ref, ref_losses = _torch_reference(state, x[0], v[0], p[0], LOSSES[kind], BUDGET)
    out, logs = train_icnn_ensemble(x, v, p, init_states=[state], beta=BETA, loss=LOSSES[kind],
                                    budget=BUDGET, seeds=[0])
    assert list(out[0]) == list(state) and out[0]["W0"].dtype == F64
    for k in ref:
        assert _rel(out[0][k], ref[k]) < 1e-8, k
    log = logs[0]
    assert (log.steps, log.steps_run, log.best_step, log.stop_reason, log.backend) == \
        ([10, 20, 30, 40, 50], 50, 50, "max_steps", "jax")
    assert log.train_loss == pytest.approx([ref_losses[s - 1] for s in log.steps], rel=1e-8)
    assert ref_losses[-1] < ref_losses[0] and math.isfinite(log.final_train_loss)


def test_an_ensemble_equals_its_members_trained_alone():
    x, v, p = _data(4, seed=1)
    states = [_net(seed=s).state_dict() for s in range(4)]
    kw = dict(beta=BETA, loss=LOSSES["mse"], budget=BUDGET)
    together, logs = train_icnn_ensemble(x, v, p, init_states=states, seeds=[0, 1, 2, 3], **kw)
    for r in range(4):
        alone, log = train_icnn_ensemble(x[r:r + 1], v[r:r + 1], None, init_states=[states[r]],
                                         seeds=[r], **kw)
        assert all(_rel(together[r][k], alone[0][k]) < 1e-10 for k in states[r])
        assert logs[r].train_loss == pytest.approx(log[0].train_loss, rel=1e-10)
    assert not torch.equal(together[0]["w"], together[1]["w"])


# -- stopping, per member -------------------------------------------------------------------------
def test_converged_member_stops_early_and_stays_frozen():
    x, v, p = _data(2, seed=2)
    v[0] = torch.randn(N, generator=torch.Generator().manual_seed(0), dtype=F64)  # noise: plateaus
    v[1] = 30 * v[1]                                                              # keeps improving
    states = [_net(seed=s).state_dict() for s in range(2)]
    run = lambda budget: train_icnn_ensemble(x, v, None, init_states=states, beta=BETA,  # noqa: E731
                                             loss=LOSSES["mse"], budget=budget, seeds=[0, 1])
    out, logs = run(BUDGET.replace(mode="converged", steps=60, window=20, tol=1e-2))
    assert (logs[0].stop_reason, logs[0].mode) == ("converged", "converged")
    assert logs[0].steps_run < 60 and logs[0].steps == list(range(10, logs[0].steps_run + 1, 10))
    assert (logs[1].stop_reason, logs[1].steps_run) == ("max_steps", 60)
    # frozen: the member's state is the one of a fixed run of exactly steps_run steps
    alone, _ = run(BUDGET.replace(steps=logs[0].steps_run))
    assert all(_rel(out[0][k], alone[0][k]) < 1e-10 for k in states[0])
    assert not torch.equal(out[0]["W0"], states[0]["W0"])


def test_divergence_is_per_member_and_keeps_the_last_finite_state():
    x, v, p = _data(2, seed=3)
    v[0, 5] = math.nan                       # member 0: non-finite from the first step
    states = [_net(seed=s).state_dict() for s in range(2)]
    run = lambda budget: train_icnn_ensemble(x, v, None, init_states=states, beta=BETA,  # noqa: E731
                                             loss=LOSSES["mse"], budget=budget, seeds=[0, 1])
    out, logs = run(BUDGET.replace(lr=30.0))  # member 1: loss > 1e4 x its first loss by step 20
    assert [log.stop_reason for log in logs] == ["diverged", "diverged"]
    assert [(log.steps_run, log.best_step) for log in logs] == [(10, 0), (20, 9)]
    assert all(torch.equal(out[0][k], states[0][k]) for k in states[0])      # its initial state
    # member 1 returns the state whose loss its last good check (step 10) read: after 9 steps
    nine, _ = run(BUDGET.replace(lr=30.0, steps=9))
    assert all(_rel(out[1][k], nine[1][k]) < 1e-10 for k in states[1])
    assert math.isfinite(logs[1].final_train_loss) and math.isnan(logs[0].final_train_loss)


@pytest.mark.parametrize("lr", [2e-2, 30.0], ids=["converges", "diverges"])
def test_logs_and_states_equal_the_torch_backend(lr):
    """Full batch, no split, float64: the same run as hjbench.training.train_ensemble."""
    x, v, p = _data(2, seed=2)
    v[0] = torch.randn(N, generator=torch.Generator().manual_seed(0), dtype=F64)
    budget = BUDGET.replace(mode="converged", steps=60, window=20, tol=1e-2, lr=lr)
    states = [_net(seed=s).state_dict() for s in range(2)]
    out, logs = train_icnn_ensemble(x, v, None, init_states=states, beta=BETA, loss=LOSSES["mse"],
                                    budget=budget, seeds=[0, 1])
    nets = [_net(seed=s) for s in range(2)]
    ref = train_ensemble(nets, potential_objective(LOSSES["mse"], budget.steps),
                         [(x[r], v[r]) for r in range(2)], budget=budget,
                         generators=[torch.Generator().manual_seed(r) for r in range(2)])
    for r in range(2):
        got, want = logs[r].as_dict(), ref[r].as_dict()
        for key in ("steps", "steps_run", "best_step", "stop_reason", "mode"):
            assert got[key] == want[key], (r, key)
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-8)
        assert got["final_train_loss"] == pytest.approx(want["final_train_loss"], rel=1e-8)
        assert all(_rel(out[r][k], nets[r].state_dict()[k]) < 1e-8 for k in states[r])
    assert {log.stop_reason for log in logs} == ({"converged", "max_steps"} if lr < 1 else {"diverged"})


def test_minibatch_validation_restores_the_best_state_float32():
    x, v, p = _data(2, seed=4, n=80)
    x, v = x.float(), v.float()
    states = [_net(seed=s, dtype=torch.float32).state_dict() for s in range(2)]
    budget = BUDGET.replace(steps=60, batch_size=16, val_fraction=0.25, patience=3, check_every=4,
                            lr=5e-2)
    run = lambda seeds: train_icnn_ensemble(x, v, None, init_states=states, beta=BETA,  # noqa: E731
                                            loss=LOSSES["mse"], budget=budget, seeds=seeds)
    out, logs = run([7, 8])
    again, _ = run([7, 8])
    other, _ = run([9, 8])
    assert all(torch.equal(out[r][k], again[r][k]) for r in range(2) for k in states[0])
    assert not torch.equal(out[0]["W0"], other[0]["W0"]) and torch.equal(out[1]["W0"], other[1]["W0"])
    for r, seed in enumerate([7, 8]):
        val = torch.randperm(80, generator=torch.Generator().manual_seed(seed))[:20]
        net = _net(seed=r, dtype=torch.float32)
        net.load_state_dict(out[r])
        with torch.no_grad():
            val_loss = float(((net(x[r, val]) - v[r, val]) ** 2).mean())
        log = logs[r]
        assert out[r]["W0"].dtype == torch.float32 and len(log.val_loss) == len(log.steps)
        assert val_loss == pytest.approx(min(log.val_loss), rel=1e-5)
        assert log.best_step == log.steps[log.val_loss.index(min(log.val_loss))]
        assert log.stop_reason in ("early_stopped", "max_steps") and log.val_loss[-1] >= min(log.val_loss)


def test_bad_arguments_are_named():
    x, v, p = _data(2)
    states = [_net(seed=s).state_dict() for s in range(2)]
    kw = dict(beta=BETA, budget=BUDGET, seeds=[0, 1])
    with pytest.raises(ConfigError, match="grads"):
        train_icnn_ensemble(x, v, None, init_states=states, loss=LOSSES["sobolev"], **kw)
    with pytest.raises(ConfigError, match="one entry per member|need one"):
        train_icnn_ensemble(x, v, None, init_states=states[:1], loss=LOSSES["mse"], **kw)
    with pytest.raises(ConfigError, match="dim"):
        train_icnn_ensemble(x[..., :2], v, None, init_states=states, loss=LOSSES["mse"], **kw)
