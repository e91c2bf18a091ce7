"""The HJ method: accuracy on a short budget, variants, training options, loss curves."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from hjbench import methods, priors
from hjbench.data import sample_split
from hjbench.errors import ConfigError

SHORT = dict(budget=dict(steps=500, width=32, lr=1e-2, lr_decay=0.3))


def _rel(a, b):
    a, b = a.double(), b.double()
    return float(((a - b) ** 2).sum(-1).mean() / (b ** 2).sum(-1).mean()) if a.ndim > 1 else \
        float(((a - b) ** 2).mean() / (b ** 2).mean())


@pytest.fixture(scope="module")
def l1_split():
    prior = priors.get("l1", dim=2)
    split = sample_split(prior, 1000, n_test=2000, generator=torch.Generator().manual_seed(0))
    return prior, split


def _errors(m, prior, split):
    x = split.test.x.double()
    y = prior.prox(x)
    return {"forward": _rel(m.potential(x), prior.psi(x)),
            "prox": _rel(m.prox(x), y),
            "prior": _rel(m.prior(y), prior.J_bvs(y))}


def test_short_budget_accuracy_on_l1(l1_split):
    """Measured on this budget: forward 4.9e-3, prox 2.5e-2, prior 1.3e-2 (limits: about 4x)."""
    prior, split = l1_split
    m = methods.get("hj", **SHORT).fit(split.train, seed=0)
    err = _errors(m, prior, split)
    assert err["forward"] < 2e-2 and err["prox"] < 1e-1 and err["prior"] < 5e-2, err
    curve = m.training_["stage1"]
    assert curve.steps_run == SHORT["budget"]["steps"] and curve.stop_reason == "max_steps"
    assert curve.train_loss[-1] < curve.train_loss[0] / 10
    assert curve.final_train_loss <= curve.train_loss[-1] * 1.01


def test_prior_certificate_is_small_where_inverse_is_learned(l1_split):
    prior, split = l1_split
    m = methods.get("hj", **SHORT).fit(split.train, seed=0)
    y = m.prox(split.test.x)
    sol = m.prior_solution(y)
    assert sol.ok and sol.argument.shape == y.shape
    torch.testing.assert_close(sol.value, m.prior(y))
    assert float(sol.residual.median()) < 0.5


@pytest.mark.parametrize("name,regime", [("hj", "values"), ("hj_exact_conjugate", "values_and_gradients"),
                                         ("hj_sobolev", "values_and_gradients")])
def test_variants_declare_their_data(name, regime):
    assert methods.get(name).data_regime == regime


def test_sobolev_loss_improves_the_prox(l1_split):
    prior, split = l1_split
    plain = _errors(methods.get("hj", **SHORT).fit(split.train, seed=0), prior, split)
    sob = _errors(methods.get("hj_sobolev", **SHORT).fit(split.train, seed=0), prior, split)
    assert sob["prox"] < plain["prox"]


def test_values_only_data_is_enough_for_the_faithful_method(l1_split):
    prior, split = l1_split
    values = split.train.restrict("values")
    assert values.grad_S is None
    methods.get("hj", budget={**SHORT["budget"], "steps": 20}).fit(values, seed=0)
    with pytest.raises(ConfigError, match="cannot serve"):
        methods.get("hj_sobolev", budget={"steps": 20}).fit(values, seed=0)


def test_early_stopping_and_minibatches(l1_split):
    prior, split = l1_split
    m = methods.get("hj", budget=dict(steps=400, width=16, lr=5e-2, batch_size=128,
                                      val_fraction=0.2, patience=2))
    m.fit(split.train, seed=1)
    log = m.training_["stage1"]
    assert log.val_loss and len(log.val_loss) == len(log.steps)
    assert log.best_step <= log.steps_run <= 400
    assert log.stop_reason in ("early_stopped", "max_steps")


@pytest.mark.parametrize("bad, match", [
    (dict(budget={"steps": 0}), "budget.steps"), (dict(budget={"lr": -1.0}), "budget.lr"),
    (dict(budget={"width": 0}), "budget.width"), (dict(budget={"patience": 3}), "budget.val_fraction"),
    (dict(budget={"val_fraction": 1.5}), "budget.val_fraction"),
    (dict(budget={"lr_decay": 2.0}), "budget.lr_decay"), (dict(budget={"epochs": 3}), "epochs"),
    (dict(budget=[1]), "budget"), (dict(stage2_steps=0), "steps"),
    (dict(stage1_loss="l2"), "stage1_loss"), (dict(conjugate_samples="magic"), "conjugate_samples"),
    (dict(beta=0.0), "beta"), (dict(init="xavier"), "init"), (dict(backend="numpy"), "backend"),
    (dict(standardise="yes"), "standardise"),
])
def test_bad_parameters_fail_at_construction(bad, match):
    with pytest.raises(ConfigError, match=match) as info:
        methods.get("hj", **bad)
    assert "\n" not in str(info.value)


def test_nan_in_data_is_refused():
    prior = priors.get("l1", dim=2)
    split = sample_split(prior, 10, n_test=5, generator=torch.Generator().manual_seed(0))
    S = split.train.S.clone()
    S[3] = float("nan")
    from hjbench.data import Dataset

    with pytest.raises(ConfigError, match="NaN"):
        Dataset(x=split.train.x, t=1.0, regime="values", S=S)


def test_a_single_sample_in_one_dimension_gives_finite_outputs():
    prior = priors.get("l1", dim=1)
    split = sample_split(prior, 1, n_test=5, generator=torch.Generator().manual_seed(0))
    m = methods.get("hj", budget={"steps": 5, "width": 4}).fit(split.train, seed=0)
    x = split.test.x
    assert torch.isfinite(m.potential(x)).all() and torch.isfinite(m.prior(m.prox(x))).all()


class _AuthorsICNN(nn.Module):
    """A plain re-implementation of the authors' network and step, for comparison.

    z_1 = softplus_5(W_0 x) (no bias), z_{l+1} = softplus_5(W_l z_l + A_l x + b_l),
    f = w^T z + a^T x + b, each map an nn.Linear; after every Adam step W_l and w are clipped
    to >= 0 (no clamp in the forward pass).
    """

    def __init__(self, dim, width, depth):
        super().__init__()
        self.first = nn.Linear(dim, width, bias=False)
        self.Ws = nn.ModuleList([nn.Linear(width, width, bias=False) for _ in range(depth)])
        self.As = nn.ModuleList([nn.Linear(dim, width) for _ in range(depth)])
        self.out_z = nn.Linear(width, 1, bias=False)
        self.out_x = nn.Linear(dim, 1)

    def forward(self, x):
        z = F.softplus(self.first(x), beta=5)
        for W, A in zip(self.Ws, self.As):
            z = F.softplus(W(z) + A(x), beta=5)
        return (self.out_z(z) + self.out_x(x)).squeeze(-1)

    def clip(self):
        with torch.no_grad():
            for layer in [*self.Ws, self.out_z]:
                layer.weight.clamp_(min=0)

    def load_from(self, icnn):
        """Start from the same initial weights as hjbench's ICNN (its init is tested separately)."""
        with torch.no_grad():
            self.first.weight.copy_(icnn.W0)
            for W, A, mine_W, mine_A, mine_b in zip(self.Ws, self.As, icnn.W, icnn.A, icnn.b):
                W.weight.copy_(mine_W)
                A.weight.copy_(mine_A)
                A.bias.copy_(mine_b)
            self.out_z.weight.copy_(icnn.w[None])
            self.out_x.weight.copy_(icnn.a[None])
            self.out_x.bias.copy_(icnn.c[None])


def test_hj_paper_trains_exactly_like_the_authors_network():
    from hjbench.nets import ICNN

    prior = priors.get("l1", dim=2)
    train = sample_split(prior, 300, n_test=4, generator=torch.Generator().manual_seed(0)).train
    train = train.restrict("values").to(dtype=torch.float64)
    budget = dict(steps=10, width=16, depth=2, lr=1e-3, lr_decay_every=100, check_every=1)
    m = methods.get("hj_paper", budget=budget).fit(train, seed=4)
    assert m.potential_.s_in == m.potential_.s_out == 1.0 and m.potential_.m == 0.0
    icnn = ICNN(2, 16, 2, 5.0, init="torch", first_bias=False,
                generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ref = _AuthorsICNN(2, 16, 2).double()
    ref.load_from(icnn)
    x, psi = train.x, 0.5 * (train.x ** 2).sum(-1) - train.t * train.S
    opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = ((ref(x) - psi) ** 2).mean()
        loss.backward()
        opt.step()
        ref.clip()
        losses.append(float(loss.detach()))
    log = m.training_["stage1"]
    assert log.steps == list(range(1, 11))
    torch.testing.assert_close(torch.tensor(log.train_loss), torch.tensor(losses), rtol=1e-12, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(m.potential(x), ref(x), rtol=1e-12, atol=1e-12)
