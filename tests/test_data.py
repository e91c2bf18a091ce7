"""Data: reproducible bit for bit, independent test set, exactly the fields of each regime."""

from __future__ import annotations

import pytest
import torch

from hjbench import priors
from hjbench.data import REGIMES, Dataset, cross_sections, provides_regime, sample_split
from hjbench.errors import ConfigError


def _split(seed=0, **kw):
    p = priors.get("minplus", dim=3)
    return p, sample_split(p, 50, n_test=40, generator=torch.Generator().manual_seed(seed), **kw)


def test_same_seed_same_bits_other_seed_other_points():
    _, a = _split(0)
    _, b = _split(0)
    _, c = _split(1)
    for f in ("x", "S", "grad_S"):
        assert torch.equal(getattr(a.train, f), getattr(b.train, f))
    assert torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.train.x, c.train.x)


def test_test_set_is_independent_and_inside_the_box():
    _, s = _split(box=2.5)
    assert not (s.train.x[:, None, :] == s.test.x[None, :, :]).all(-1).any()
    assert float(s.train.x.abs().max()) <= 2.5 and float(s.test.x.abs().max()) <= 2.5


@pytest.mark.parametrize("regime", REGIMES)
def test_regimes_carry_exactly_their_fields(regime):
    p, s = _split(regime=regime, dtype=torch.float64)
    fields = {f for f in ("S", "grad_S", "prox") if getattr(s.train, f) is not None}
    assert fields == {"values": {"S"}, "values_and_gradients": {"S", "grad_S"},
                      "prox_pairs": {"prox"}}[regime]
    if regime == "values_and_gradients":
        pp = s.train.restrict("prox_pairs")
        assert pp.S is None and pp.grad_S is None
        torch.testing.assert_close(pp.prox, p.prox(s.train.x))
        assert s.train.restrict("values").grad_S is None


def test_restricting_to_a_richer_regime_is_refused():
    _, s = _split(regime="values")
    assert not provides_regime("values", "prox_pairs")
    with pytest.raises(ConfigError, match="cannot serve"):
        s.train.restrict("values_and_gradients")


def test_targets_are_float64_accurate_then_cast():
    p, s = _split(dtype=torch.float32)
    assert s.train.x.dtype == torch.float32 and s.train.S.dtype == torch.float32
    torch.testing.assert_close(s.train.S, p.S(s.train.x.double()).float())


def test_cross_sections():
    cs = cross_sections(4, box=4.0, n_points=9)
    assert cs["axis"].shape == (9, 4) and torch.equal(cs["axis"][:, 1:], torch.zeros(9, 3))
    torch.testing.assert_close(cs["diagonal"].norm(dim=-1), cs["s"].abs())


@pytest.mark.parametrize("bad,match", [(dict(n_samples=0), "n_samples"), (dict(box=-1.0), "box"),
                                       (dict(regime="pairs"), "regime"),
                                       (dict(distribution="cauchy"), "distribution")])
def test_bad_sampling_arguments(bad, match):
    p = priors.get("l1", dim=2)
    kw = dict(n_samples=10, generator=torch.Generator().manual_seed(0))
    kw.update(bad)
    with pytest.raises(ConfigError, match=match):
        sample_split(p, **kw)


def test_generator_is_required_and_fields_checked():
    p = priors.get("l1", dim=2)
    with pytest.raises(ConfigError, match="generator"):
        sample_split(p, 10, generator=0)
    with pytest.raises(ConfigError, match="needs field"):
        Dataset(x=torch.zeros(3, 2), t=1.0, regime="values")
