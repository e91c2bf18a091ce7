"""The max-plus bounds (hjbench.score.bounds) against hand values, closed forms and Monte Carlo.

Every constant is recomputed here from the formulas of docs/bounds.md, independently of the
implementation (which sums a series and works in logs); the max-plus interpolant is a local
three-line function built from the family's psi and prox, not the baseline.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hjbench import priors
from hjbench.score import bounds
from hjbench.errors import ConfigError

BOX = 4.0


def maxplus(prior, x_train, x):
    """psi_N(x) = max_k psi(x_k) + <grad psi(x_k), x - x_k>, grad psi = prox; shape (m,)."""
    v = prior.prox(x_train)
    c = prior.psi(x_train) - (v * x_train).sum(-1)
    return (x @ v.T + c).max(-1).values


def uniform(n, dim, gen, box=BOX):
    return (2.0 * torch.rand(n, dim, generator=gen, dtype=torch.float64) - 1.0) * box


def pointwise_constants(prior, x, x_train):
    """The keyword constants of posterior_bound_pointwise for the prior's regime (piece keys included)."""
    consts = bounds.prior_constants(prior, BOX)
    consts.pop("geometry", None)
    if prior.regime == "piecewise_smooth":
        consts.update(key=prior.psi_piece_key(x.double()), key_train=prior.psi_piece_key(x_train.double()))
    return consts


# -- constants --------------------------------------------------------------------------------
def test_unit_ball_volume_hand_values():
    hand = {1: 2.0, 2: math.pi, 3: 4 * math.pi / 3, 4: math.pi ** 2 / 2, 5: 8 * math.pi ** 2 / 15}
    for n, v in hand.items():
        assert bounds.unit_ball_volume(n) == pytest.approx(v, rel=1e-13)
    assert math.isfinite(bounds.log_unit_ball_volume(500))  # no overflow in high dimension


def test_gamma_factors_hand_values():
    # Gamma(1 + p/n): Gamma(3) = 2, Gamma(2) = 1, Gamma(3/2) = sqrt(pi)/2, Gamma(5) = 24
    assert bounds.gamma_factor(4, 2) == pytest.approx(2.0)
    assert bounds.gamma_factor(2, 2) == pytest.approx(1.0)
    assert bounds.gamma_factor(2, 4) == pytest.approx(math.sqrt(math.pi) / 2)
    assert bounds.gamma_factor(4, 1) == pytest.approx(24.0)
    assert bounds.diameter(4, 2.0) == pytest.approx(8.0)


@pytest.mark.parametrize("s", [0.0625, 0.5, 1.0, 2.0, 4.0])
def test_truncated_gamma_integral_against_quadrature(s):
    # h = int_0^1 s v^{s-1} e^{-uv} dv = int_0^1 exp(-u z^{4/s}) 4 z^3 dz  (v = w^{1/s}, w = z^4)
    z = torch.linspace(0, 1, 20_001, dtype=torch.float64)
    for u in [1e-8, 0.3, 5.0, 49.0, 120.0]:
        quad = float(torch.trapezoid(torch.exp(-u * z ** (4 / s)) * 4 * z ** 3, z))
        assert bounds.truncated_gamma_integral(s, math.log(u)) == pytest.approx(quad, rel=2e-5)


def closed_form_bound(regime, n, N, a, K):
    """K a^p [Gamma(1+s) u^{-s} P(s, u) + ((2 sqrt n)^p - 1) e^{-u}] for integer s = p/n, with
    P(1, u) = 1 - e^{-u} and P(2, u) = 1 - e^{-u}(1 + u) (docs/bounds.md, theorem 2)."""
    p = 4 if regime == "smooth" else 2
    s = p // n
    u = N * bounds.unit_ball_volume(n) / 4 ** n
    P = {1: 1 - math.exp(-u), 2: 1 - math.exp(-u) * (1 + u), 4: 1 - math.exp(-u) * (1 + u + u * u / 2 + u ** 3 / 6)}[s]
    return K * a ** p * (math.gamma(1 + s) * u ** -s * P + ((2 * math.sqrt(n)) ** p - 1) * math.exp(-u))


@pytest.mark.parametrize("regime,n,N,a,L,G", [
    ("smooth", 2, 100, 1.0, 1.0, None),   # s = 2
    ("smooth", 4, 1000, 4.0, 2.0, None),  # s = 1
    ("smooth", 1, 30, 4.0, 1.0, None),    # s = 4
    ("lipschitz", 1, 50, 4.0, None, 5.0),  # s = 2
    ("lipschitz", 2, 300, 3.0, None, 7.0),  # s = 1
])
def test_bound_matches_hand_computed_closed_form(regime, n, N, a, L, G):
    K = L ** 2 / 4 if regime == "smooth" else 4 * G ** 2
    got = bounds.forward_mse_bound(regime, n, N, a, L=L, G=G)
    assert got.value == pytest.approx(closed_form_bound(regime, n, N, a, K), rel=1e-10)
    assert got.name == f"maxplus_apriori_{regime}"
    assert got.slope == bounds.theoretical_slope(regime, n) == (-4 / n if regime == "smooth" else -2 / n)


def test_bound_small_case_by_hand():
    # dim 2, N = 100, a = 1, L = 1: u = 100 pi / 16; E[d^4] <= 2 u^-2 (1 - e^-u (1+u)) + 63 e^-u
    u = 100 * math.pi / 16
    hand = 0.25 * (2 / u ** 2 * (1 - math.exp(-u) * (1 + u)) + 63 * math.exp(-u))
    assert bounds.forward_mse_bound("smooth", 2, 100, 1.0, L=1.0).value == pytest.approx(hand, rel=1e-12)
    assert hand == pytest.approx(1.29696e-3, rel=1e-5)  # the number quoted in docs/bounds.md, section 4


@pytest.mark.parametrize("n", [1, 2, 3, 8, 64])
def test_leading_term_and_slope(n):
    """For large N the bound is Gamma(1+p/n) (N omega_n/(4a)^n)^{-p/n} times K; slope -p/n."""
    N = 1e6 * 4.0 ** n / bounds.unit_ball_volume(n)  # u = N omega_n / 4^n = 1e6: tail e^{-u} = 0
    for regime, p, K in (("smooth", 4, 0.25), ("lipschitz", 2, 4.0)):
        lead = K * math.gamma(1 + p / n) * (N * bounds.unit_ball_volume(n) / (4 * BOX) ** n) ** (-p / n)
        b1 = bounds.forward_mse_bound(regime, n, N, BOX, L=1.0, G=1.0).value
        b2 = bounds.forward_mse_bound(regime, n, 10 * N, BOX, L=1.0, G=1.0).value
        assert b1 == pytest.approx(lead, rel=1e-9)
        assert math.log10(b2 / b1) == pytest.approx(bounds.theoretical_slope(regime, n), rel=1e-9)


def test_bound_never_exceeds_trivial_diameter_bound():
    for n in (1, 3, 10, 64):
        D = bounds.diameter(n, BOX)
        for N in (1, 10, 1e6):
            assert bounds.nearest_distance_moment_bound(2, n, N, BOX) <= D ** 2 * (1 + 1e-12)


def test_samples_needed_inverts_the_bound():
    for regime, n in (("smooth", 2), ("smooth", 4), ("lipschitz", 1), ("lipschitz", 3)):
        target = 1e-3
        N = bounds.samples_needed(target, regime, n, BOX, L=1.0, G=2.0)
        assert N == int(N)
        assert bounds.forward_mse_bound(regime, n, N, BOX, L=1.0, G=2.0).value <= target
        assert bounds.forward_mse_bound(regime, n, N - 1, BOX, L=1.0, G=2.0).value > target
    assert bounds.samples_needed(1e9, "smooth", 2, BOX, L=1.0) == 1.0  # trivially met
    assert bounds.samples_needed(1e-2, "smooth", 64, BOX, L=1.0) == pytest.approx(10 ** bounds.log10_samples_needed(
        1e-2, "smooth", 64, BOX, L=1.0), rel=1e-6)
    assert bounds.samples_needed(1e-6, "lipschitz", 64, BOX, G=40.0) == math.inf  # beyond float range
    assert math.isfinite(bounds.log10_samples_needed(1e-6, "lipschitz", 64, BOX, G=40.0))


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="L="):
        bounds.forward_mse_bound("smooth", 2, 10, BOX, L=math.inf)
    with pytest.raises(ConfigError, match="regime"):
        bounds.forward_mse_bound("kinked", 2, 10, BOX, L=1.0)
    with pytest.raises(ConfigError, match="n_samples"):
        bounds.forward_mse_bound("smooth", 2, 0, BOX, L=1.0)
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ConfigError, match="outside the box"):
        bounds.posterior_bound_pointwise(x + 5.0, x, "smooth", L=1.0, box=BOX)


def test_bound_for_prior_reads_family_constants():
    for name, dim, regime in (("l1", 3, "smooth"), ("neg_l1", 5, "piecewise_smooth"),
                              ("minplus", 4, "piecewise_smooth")):
        p = priors.get(name, dim=dim, t=1.0)
        got = bounds.bound_for_prior(p, 500, BOX)
        L = p.psi_smoothness(BOX) if regime == "smooth" else p.psi_piece_smoothness(BOX)
        geometry = p.psi_piece_geometry(BOX) if regime == "piecewise_smooth" else None
        want = bounds.forward_mse_bound(regime, dim, 500, BOX, L=L, G=p.psi_lipschitz(BOX), geometry=geometry)
        assert got == want and got.regime == p.regime == regime
    cols = got.columns(float("nan"), 2.0)
    assert cols["bound_holds"] is None and math.isnan(cols["bound_ratio"])
    assert cols["bound_rel_value"] == pytest.approx(got.value / 2.0)


# -- Monte Carlo ------------------------------------------------------------------------------
def test_distance_moment_bound_vs_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    for n in (1, 2, 3, 5, 8):
        for N in (10, 100, 1000):
            d = torch.stack([bounds.nearest_distance(uniform(800, n, gen), uniform(N, n, gen)) for _ in range(5)])
            for p in (2, 4):
                assert float((d ** p).mean()) <= bounds.nearest_distance_moment_bound(p, n, N, BOX)
    # not vacuous: in 1-D the bound exceeds the truth by 2^p / Gamma-ratio (1/4 for p=2, 1/16 for p=4)
    d = torch.stack([bounds.nearest_distance(uniform(2000, 1, gen), uniform(1000, 1, gen)) for _ in range(5)])
    assert float((d ** 2).mean()) / bounds.nearest_distance_moment_bound(2, 1, 1000, BOX) > 0.2
    assert float((d ** 4).mean()) / bounds.nearest_distance_moment_bound(4, 1, 1000, BOX) > 0.05


@pytest.mark.parametrize("name", ["l1", "neg_l1", "minplus"])
@pytest.mark.parametrize("dim", range(1, 9))
def test_apriori_bound_holds_for_maxplus(name, dim):
    p = priors.get(name, dim=dim, t=1.0)
    gen = torch.Generator().manual_seed(100 + dim)
    for N in (20, 200):
        mses = [float(((p.psi(x) - maxplus(p, xt, x)) ** 2).mean())
                for xt, x in ((uniform(N, dim, gen), uniform(500, dim, gen)) for _ in range(20))]
        assert np.mean(mses) <= bounds.bound_for_prior(p, N, BOX).value


@pytest.mark.parametrize("name", ["l1", "neg_l1", "minplus"])
@pytest.mark.parametrize("dim", [1, 3, 8])
def test_posterior_certificate_holds_pointwise_for_maxplus(name, dim):
    p = priors.get(name, dim=dim, t=1.0)
    gen = torch.Generator().manual_seed(dim)
    xt, x = uniform(300, dim, gen), uniform(1000, dim, gen)
    gap = p.psi(x) - maxplus(p, xt, x)
    consts = pointwise_constants(p, x, xt)
    b = bounds.posterior_bound_pointwise(x, xt, p.regime, box=BOX, **consts)
    assert bool((gap >= -1e-12).all()) and bool((gap <= b + 1e-12).all())
    cert = bounds.certificate_for_prior(p, maxplus(p, xt, x), x, xt, BOX)
    # mse == value up to rounding for neg_l1 in dim 1: its pieces are quadratics with Hessian I,
    # where the pointwise bound (1/2) d^2 is attained (the bound is sharp)
    assert cert.holds and cert.mse_holds and cert.mse <= cert.value * (1 + 1e-9)
    assert cert.value == pytest.approx(float((b ** 2).mean()))
    # float32 inputs (as a run stores them) keep the guarantee within the float32 tolerance
    x32, xt32 = x.float(), xt.float()
    cert32 = bounds.posterior_certificate(p.psi(x32.double()), maxplus(p, xt32, x32), x32, xt32,
                                          p.regime, box=BOX, **pointwise_constants(p, x32, xt32))
    assert cert32.holds
    assert bounds.certificate_for_prior(p, maxplus(p, xt32, x32).double(), x32.double(), xt32, BOX).holds
    # numpy in, numpy out
    b_np = bounds.posterior_bound_pointwise(x.numpy(), xt.numpy(), p.regime, **consts)
    assert isinstance(b_np, np.ndarray) and np.allclose(b_np, b.numpy())


def test_posterior_certificate_catches_perturbed_interpolant():
    p = priors.get("l1", dim=2, t=1.0)
    gen = torch.Generator().manual_seed(3)
    xt, x = uniform(200, 2, gen), uniform(2000, 2, gen)
    v = p.prox(xt)
    c = p.psi(xt) - (v * xt).sum(-1)
    c[:5] += 0.5  # five samples' values lifted: psi_N > psi near them
    wrong = (x @ v.T + c).max(-1).values
    cert = bounds.certificate_for_prior(p, wrong, x, xt, BOX)
    assert not cert.holds and cert.n_below > 0
    nan_hat = maxplus(p, xt, x)
    nan_hat[0] = math.nan  # a NaN potential is never "inside the envelope"
    cert = bounds.certificate_for_prior(p, nan_hat, x, xt, BOX)
    assert not cert.holds and cert.n_nonfinite == 1 and math.isnan(cert.mse)


def test_nearest_distance_chunks_match_brute_force():
    gen = torch.Generator().manual_seed(5)
    xt, x = uniform(257, 3, gen), uniform(101, 3, gen)
    brute = (x[:, None, :] - xt[None]).norm(dim=-1).min(dim=1).values
    assert torch.allclose(bounds.nearest_distance(x, xt, chunk_entries=300), brute, rtol=0, atol=1e-12)
    assert not x.requires_grad and x.dtype == torch.float64  # inputs untouched


@pytest.mark.parametrize("name", ["l1", "neg_l1", "minplus"])
def test_prior_side_bound_pointwise(name):
    """0 <= J_bvs(y) - J_N(y) <= b(x)/t at y = prox(x), J_N(y) = max_k S(x_k) - |y - x_k|^2/(2t)."""
    t, dim = 0.7, 3
    p = priors.get(name, dim=dim, t=t)
    gen = torch.Generator().manual_seed(9)
    xt, x = uniform(400, dim, gen), uniform(500, dim, gen)
    y = p.prox(x)
    j_n = (p.S(xt)[None, :] - ((y[:, None, :] - xt[None]) ** 2).sum(-1) / (2 * t)).max(-1).values
    b = bounds.posterior_bound_pointwise(x, xt, p.regime, **pointwise_constants(p, x, xt))
    gap = p.J_bvs(y) - j_n
    assert bool((gap >= -1e-10).all()) and bool((gap <= b / t + 1e-10).all())
    fwd = bounds.forward_mse_bound(p.regime, dim, 400, BOX, **bounds.prior_constants(p, BOX))
    assert bounds.prior_mse_bound(p.regime, dim, 400, BOX, t, **bounds.prior_constants(p, BOX)).value == \
        pytest.approx(fwd.value / t ** 2)




# -- the piecewise smooth regime (docs/bounds.md, section 5) ------------------------------------
def test_piecewise_bound_small_case_by_hand():
    """neg_l1, n = 2, a = 4, N = 100: f = 1/4, Delta = 4 sqrt 2, L = 1, G = 5 sqrt 2, D = 8 sqrt 2;
    (1/4) Delta^4 Gamma(3) (N f)^-2 P(2, N f) + (4 G^2 D^2 - Delta^4 / 4) e^{-N f}, and the
    Lipschitz bound 4 G^2 a^2 [u^-1 P(1, u) + 15 e^{-u}], u = N pi / 16, is larger."""
    mu, u = 25.0, 100 * math.pi / 16
    main = 0.25 * 1024 * 2 / mu ** 2 * (1 - math.exp(-mu) * (1 + mu))
    hand = main + (4 * 50 * 128 - 256) * math.exp(-mu)
    lip = 4 * 50 * 16 * ((1 - math.exp(-u)) / u + 15 * math.exp(-u))
    got = bounds.bound_for_prior(priors.get("neg_l1", dim=2, t=1.0), 100, BOX)
    assert got.value == pytest.approx(hand, rel=1e-12) and hand < lip
    assert got.name == "maxplus_apriori_piecewise_smooth" and got.slope == -2.0
    assert bounds.theoretical_slope("piecewise_smooth", 4) == -1.0
    # the piecewise bound never exceeds the Lipschitz one (the smaller valid bound is returned)
    for N in (2, 10, 1e3):
        g = bounds.forward_mse_bound("piecewise_smooth", 8, N, BOX, L=1.0, G=14.0, geometry=(-8 * math.log(2), 8.0))
        assert g.value <= bounds.forward_mse_bound("lipschitz", 8, N, BOX, G=14.0).value
    with pytest.raises(ConfigError, match="geometry"):
        bounds.forward_mse_bound("piecewise_smooth", 2, 10, BOX, L=1.0, G=1.0)
    with pytest.raises(ConfigError, match="log f"):
        bounds.forward_mse_bound("piecewise_smooth", 2, 10, BOX, L=1.0, G=1.0, geometry=(0.25, 1.0))


@pytest.mark.parametrize("name,params", [("neg_l1", {}), ("minplus", {}),
                                         ("minplus", {"mus": [[1.0, 0.5, 0.0], [0.0, -0.3, 0.2]]})])
def test_piece_region_volume_lemma_by_monte_carlo(name, params):
    """vol(B(x, r) cap C_i(x)) >= f (2a)^n (r / Delta)^n: the fraction of uniform points of the box in
    the ball around x and on x's piece is at least f (r/Delta)^n (the homothety lemma)."""
    dim = 3
    p = priors.get(name, dim=dim, t=1.0, **params)
    assert p.regime == "piecewise_smooth"
    log_f, delta = p.psi_piece_geometry(BOX)
    gen = torch.Generator().manual_seed(11)
    z = uniform(200_000, dim, gen)
    kz = p.psi_piece_key(z)
    for _ in range(20):
        x = uniform(1, dim, gen)
        same = (kz == p.psi_piece_key(x)).all(-1)
        for r in (0.5, 2.0, delta):
            frac = float((same & ((z - x).norm(dim=-1) <= r)).double().mean())
            assert frac >= 0.9 * math.exp(log_f) * (r / delta) ** dim
    fracs = [float((kz == k).all(-1).double().mean()) for k in torch.unique(kz[torch.isfinite(kz).all(-1)], dim=0)]
    assert min(fracs) >= 0.98 * math.exp(log_f)  # f bounds every region's volume fraction


def test_piece_keys_match_the_prox():
    """Where a key is finite, the prox is the gradient of that piece (the premise of theorem 5)."""
    gen = torch.Generator().manual_seed(4)
    x = uniform(500, 3, gen)
    neg = priors.get("neg_l1", dim=3, t=0.5)
    assert torch.equal(neg.prox(x), x + 0.5 * neg.psi_piece_key(x))
    assert torch.isnan(neg.psi_piece_key(torch.tensor([[0.0, 1.0, -1.0]]))).all()
    mp = priors.get("minplus", dim=3, t=1.0)
    k = mp.psi_piece_key(x).squeeze(-1).long()
    mu = torch.tensor(mp.mus, dtype=torch.float64)
    assert torch.allclose(mp.prox(x), (x + mu[k]) / 2, atol=1e-14)  # sigma = t = 1
    assert priors.get("minplus", dim=3, sigmas=[1.0, 0.5]).regime == "lipschitz"
    assert priors.get("minplus", dim=1).psi_piece_geometry(BOX) == (0.0, 8.0)  # both means coincide


def test_piecewise_apriori_bound_is_not_vacuous():
    """Max-plus MSE over the bound was ~1e-5..1e-4 with the Lipschitz bound; the piecewise bound is
    within a factor of ~1000 of the Monte Carlo mean at n <= 4 (measured ratios 0.007..0.04)."""
    gen = torch.Generator().manual_seed(21)
    for name in ("neg_l1", "minplus"):
        for dim in (2, 3, 4):
            p = priors.get(name, dim=dim, t=1.0)
            mse = np.mean([float(((p.psi(x) - maxplus(p, xt, x)) ** 2).mean())
                           for xt, x in ((uniform(200, dim, gen), uniform(500, dim, gen)) for _ in range(10))])
            ratio = mse / bounds.bound_for_prior(p, 200, BOX).value
            lip = mse / bounds.forward_mse_bound("lipschitz", dim, 200, BOX, G=p.psi_lipschitz(BOX)).value
            assert 1e-3 < ratio < 1 and ratio > 20 * lip, (name, dim, ratio, lip)


def test_piecewise_certificate_is_tighter_than_lipschitz():
    p = priors.get("minplus", dim=2, t=1.0)
    gen = torch.Generator().manual_seed(8)
    xt, x = uniform(300, 2, gen), uniform(800, 2, gen)
    pw = bounds.posterior_bound_pointwise(x, xt, p.regime, **pointwise_constants(p, x, xt))
    lip = bounds.posterior_bound_pointwise(x, xt, "lipschitz", G=p.psi_lipschitz(BOX))
    gap = p.psi(x) - maxplus(p, xt, x)
    assert bool((gap <= pw + 1e-12).all()) and bool((pw <= lip).all()) and float(pw.mean()) < 0.1 * float(lip.mean())
    same = bounds.nearest_same_piece_distance(x, xt, p.psi_piece_key(x), p.psi_piece_key(xt))
    assert bool((same >= bounds.nearest_distance(x, xt)).all())
    nan_keys = torch.full((300, 1), math.nan, dtype=torch.float64)  # no sample on a single piece
    assert torch.isinf(bounds.nearest_same_piece_distance(x, xt, p.psi_piece_key(x), nan_keys)).all()


# -- one-sided slope tests on real max-plus fits (docs/method.md section 7) -----------------------
COUNTS = (30, 70, 170, 400, 1000, 3000)  # six sample counts over two decades


def _maxplus_errors(dim, floor=0.0, reps=4, seed=0):
    """Held-out forward MSE of baselines.maxplus fitted on hjbench.data.sample_split data (float64);
    ``floor`` plants an estimator stuck at an error floor: its potential is maxplus - floor, so
    its squared error (psi - psi_N + floor)^2 >= floor^2 stops falling."""
    import baselines
    from hjbench import data, methods

    baselines.register()
    p = priors.get("l1", dim=dim, t=1.0)
    gen = torch.Generator().manual_seed(seed)
    ns, errs = [], []
    for N in COUNTS:
        for _ in range(reps):
            split = data.sample_split(p, N, n_test=1500, box=BOX, generator=gen, dtype=torch.float64)
            m = methods.get("maxplus").fit(split.train, seed=0)
            psi = p.psi(split.test.x)
            errs.append(float(((psi - m.potential(split.test.x) + floor) ** 2).mean()))
            ns.append(N)
    return ns, errs


@pytest.mark.parametrize("dim", [2, 4])
def test_maxplus_slope_passes_one_sided_test(dim):
    """The fitted slope is not significantly shallower than -4/n. Dim 2 gives about -2.0 (the
    interval contains -2); dim 4 about -1.15, steeper than -1 (boundary layer and l1's flat cube
    before the asymptotic regime, docs/bounds.md section 8), which the one-sided test accepts."""
    theory = bounds.theoretical_slope("smooth", dim)
    fit = bounds.fit_loglog_slope(*_maxplus_errors(dim))
    assert bounds.slope_not_shallower(fit, theory) is True, fit
    assert bounds.slope_agreement(fit, theory) in ("consistent", "steeper than theory"), fit


@pytest.mark.parametrize("dim,floor", [(2, 0.05), (4, 0.5)])
def test_estimator_at_an_error_floor_fails_one_sided_test(dim, floor):
    """maxplus - floor plateaus at floor^2 (about the max-plus MSE at N ~ 400): its slope
    interval lies above -4/n, so the one-sided test rejects it."""
    theory = bounds.theoretical_slope("smooth", dim)
    fit = bounds.fit_loglog_slope(*_maxplus_errors(dim, floor=floor, reps=2))
    assert bounds.slope_not_shallower(fit, theory) is False and fit.low > theory, fit
