"""The HJ method: accuracy on a short budget, variants, training options, loss curves."""

from __future__ import annotations

import pytest
import torch

from hjbench import methods, priors
from hjbench.data import sample_split
from hjbench.errors import ConfigError

SHORT = dict(steps=500, width=32, lr=1e-2, lr_decay=0.3)


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
    curve = m.loss_curve_["stage1"]
    assert curve["steps_run"] == SHORT["steps"]
    assert curve["train_loss"][-1] < curve["train_loss"][0] / 10


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
    methods.get("hj", **{**SHORT, "steps": 20}).fit(values, seed=0)
    with pytest.raises(ConfigError, match="cannot serve"):
        methods.get("hj_sobolev", steps=20).fit(values, seed=0)


def test_early_stopping_and_minibatches(l1_split):
    prior, split = l1_split
    m = methods.get("hj", steps=400, width=16, lr=5e-2, batch_size=128, val_fraction=0.2, patience=2)
    m.fit(split.train, seed=1)
    log = m.loss_curve_["stage1"]
    assert log["val_loss"] and len(log["val_loss"]) == len(log["steps"])
    assert log["best_step"] <= log["steps_run"] <= 400


@pytest.mark.parametrize("bad", [dict(steps=0), dict(lr=-1.0), dict(width=0), dict(stage1_loss="l2"),
                                 dict(conjugate_samples="magic"), dict(patience=3),
                                 dict(val_fraction=1.5), dict(lr_decay=2.0), dict(beta=0.0)])
def test_bad_parameters_fail_at_construction(bad):
    with pytest.raises(ConfigError) as info:
        methods.get("hj", **bad)
    key = next(iter(bad))
    assert key in str(info.value) or "val_fraction" in str(info.value)


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
    m = methods.get("hj", steps=5, width=4).fit(split.train, seed=0)
    x = split.test.x
    assert torch.isfinite(m.potential(x)).all() and torch.isfinite(m.prior(m.prox(x))).all()
