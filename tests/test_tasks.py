"""Downstream tasks as a grid axis: signals, MAP solves, scoring, columns, config, figure (docs/method.md section 8).

Known answers: the exact prox solves every MAP problem that exists to the solver's tolerance;
FISTA and ADMM reach the same minimiser on a convex family; the samplers match the moments of
exp(-J) on the box; a learned prox (the max-plus interpolant) gets closer to the exact-prox
reconstruction as N grows; what cannot exist is NaN with its reason, never zero.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import baselines.maxplus  # noqa: F401  (registers "maxplus")
import baselines.pnp  # noqa: F401  (registers "pnp": prox only)
from hjbench import methods, priors, tasks
from hjbench.data import sample_split
from hjbench.errors import ConfigError
from hjbench.priors.l1 import L1Prior
from hjbench.score.catalogue import task_column, task_parts
from hjbench.score.tasks import exact_prox, score_tasks, task_columns

T = 0.25
NOISE = (0.5, 1.0)            # >= sqrt(T): the proximal-gradient step T is <= 1/L = sigma^2


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("family", priors.names())
def test_exact_prox_reconstructions_reach_the_tolerance(family):
    """Every (kind, sigma, solver) whose MAP exists converges for every signal; the rest are the
    families whose J is unbounded below on a non-injective or too weak operator."""
    prior = priors.get(family, dim=6, t=T)
    x = tasks.draw_signals(prior, 24, box=4.0, generator=_gen(1))
    no_map = set()
    for kind in tasks.KINDS:
        A = tasks.forward_operator(kind, 6, generator=_gen(2))
        e = torch.randn(24, A.shape[0], generator=_gen(3), dtype=torch.float64)
        for sigma in NOISE:
            problem = tasks.measure(A, x, e, sigma)
            if tasks.map_reason(prior, A, sigma):
                no_map.add(kind)
                continue
            for solver in ("fista", "fista_ls", "admm"):
                sol = tasks.solve(prior.prox, problem, t=T, solver=solver, max_iter=3000, tol=1e-6, prior=prior.J)
                assert sol.ok, (kind, sigma, solver, sol.n_failed)
                if solver != "admm":
                    assert float(sol.residual.max()) <= 1e-6 * 1.01, (kind, sigma, solver)
    expected = {"l1": set(), "minplus": set(), "neg_l1": {"compressed_sensing"},
                "concave_quadratic": {"compressed_sensing", "deblur"}}
    assert no_map == expected.get(family, no_map)


@pytest.mark.parametrize("kind", ["compressed_sensing", "deblur"])
def test_fista_and_admm_agree_on_l1(kind):
    prior = priors.get("l1", dim=8, t=T)
    x = tasks.draw_signals(prior, 32, box=4.0, generator=_gen(4))
    A = tasks.forward_operator(kind, 8, generator=_gen(5))
    problem = tasks.measure(A, x, torch.randn(32, A.shape[0], generator=_gen(6), dtype=torch.float64), 0.5)
    sols = {s: tasks.solve(prior.prox, problem, t=T, solver=s, max_iter=20000, tol=1e-11, prior=prior.J)
            for s in ("fista", "admm", "ista")}
    assert all(s.ok for s in sols.values())
    torch.testing.assert_close(sols["fista"].value, sols["admm"].value, rtol=0, atol=1e-7)
    torch.testing.assert_close(sols["fista"].value, sols["ista"].value, rtol=0, atol=1e-7)


def _mean_abs_1d(density, box, n=200001):
    u = np.linspace(-box, box, n)
    w = density(u)
    return float(np.trapezoid(np.abs(u) * w, u) / np.trapezoid(w, u))


@pytest.mark.parametrize("family,params,density", [
    ("l1", {"scale": 1.5}, lambda u: np.exp(-1.5 * np.abs(u))),
    ("neg_l1", {}, lambda u: np.exp(np.abs(u))),
    ("concave_quadratic", {"c": 0.5}, lambda u: np.exp(0.25 * u * u)),
    ("minplus", {"mus": [[-1.0], [2.0]], "sigmas": [1.0, 0.5]},
     lambda u: np.maximum(np.exp(-(u + 1) ** 2 / 2), np.exp(-(u - 2) ** 2 / 1.0))),
])
def test_signals_follow_exp_minus_J_on_the_box(family, params, density):
    prior = priors.get(family, dim=1, **params)
    x = tasks.draw_signals(prior, 40000, box=4.0, generator=_gen(7))
    assert x.shape == (40000, 1) and float(x.abs().max()) <= 4.0
    se = float(x.abs().std()) / math.sqrt(40000)
    assert abs(float(x.abs().mean()) - _mean_abs_1d(density, 4.0)) < 4 * se
    again = tasks.draw_signals(prior, 40000, box=4.0, generator=_gen(7))
    assert torch.equal(x, again)


def _fit(name, prior, n, seed=0, **kw):
    split = sample_split(prior, n, n_test=8, generator=_gen(seed))
    return methods.get(name, **kw).fit(split.train, seed=seed)


@pytest.mark.parametrize("kind,dim,ns", [("denoise", 2, (32, 256, 2048)), ("compressed_sensing", 4, (64, 512, 4096))])
def test_learned_prox_reconstruction_error_falls_with_n(kind, dim, ns):
    """Max-plus on l1, the same held-out signals (same seed) for every N: the reconstruction
    approaches the exact-prox one, and its error the exact-prox floor. (In dim 2, m = 1, the
    piecewise-constant max-plus prox stalls FISTA short of the MAP: measured, not tested.)"""
    prior = priors.get("l1", dim=dim, t=T)
    cfg = tasks.TasksConfig(kinds=(kind,), noise=(0.5,), solvers=("fista", "admm"), max_iter=500, tol=1e-6,
                            n_signals=128)
    rows = [score_tasks(_fit("maxplus", prior, n), prior, cfg, seed=11, t=T) for n in ns]
    for solver in cfg.solvers:
        col = lambda m: task_column(kind, 0.5, solver, m)  # noqa: E731
        vs = [r[col("vs_exact")] for r in rows]
        assert vs[0] > vs[1] > vs[2] and vs[2] < 0.35 * vs[0], (solver, vs)
        floor = rows[0][col("exact_rel_error")]
        assert all(r[col("exact_rel_error")] == floor for r in rows)     # same signals for every N
        gaps = [r[col("rel_error")] - floor for r in rows]
        assert gaps[0] > gaps[2] and abs(gaps[2]) < 0.1 * floor, (solver, gaps, floor)
        assert rows[2][col("converged")] == 1.0


def test_columns_are_nan_with_reasons_where_they_must_be():
    cfg = tasks.TasksConfig(kinds=("denoise", "compressed_sensing"), noise=(0.5,), solvers=("fista", "fista_ls"),
                            max_iter=50, n_signals=8)
    prior = priors.get("neg_l1", dim=4, t=T)
    pnp = _fit("pnp", prior, 64, **methods.get("pnp").test_params)
    out = score_tasks(pnp, prior, cfg, seed=0, t=T)
    assert set(out) == set(task_columns(cfg))
    ls = task_column("denoise", 0.5, "fista_ls", "rel_error")
    assert math.isnan(out[ls]) and "provides no prior value" in out.reasons[ls]
    assert math.isfinite(out[task_column("denoise", 0.5, "fista_ls", "exact_rel_error")])
    assert math.isfinite(out[task_column("denoise", 0.5, "fista", "rel_error")])
    cs = task_column("compressed_sensing", 0.5, "fista", "exact_rel_error")
    assert math.isnan(out[cs]) and "no MAP" in out.reasons[cs] and "not injective" in out.reasons[cs]
    assert all(not math.isnan(v) or c in out.reasons for c, v in out.items())
    low = tasks.TasksConfig(kinds=("denoise",), noise=(0.1,), solvers=("fista", "admm"), n_signals=8)
    out = score_tasks(pnp, prior, low, seed=0, t=T)
    step = task_column("denoise", 0.1, "fista", "rel_error")
    assert math.isnan(out[step]) and "exceeds 1/L" in out.reasons[step]
    assert math.isfinite(out[task_column("denoise", 0.1, "admm", "rel_error")])


def test_methods_without_prox_and_families_without_signals_give_nan():
    cfg = tasks.TasksConfig(kinds=("denoise",), noise=(0.5,), n_signals=4)
    prior = priors.get("l1", dim=3, t=T)
    m = _fit("maxplus", prior, 16)
    m.provides = frozenset({"potential"})                 # an instance without a prox
    out = score_tasks(m, prior, cfg, seed=0, t=T)
    assert all(math.isnan(v) for v in out.values()) and "provides no prox" in out.message()

    class Elsewhere(L1Prior):
        name = "elsewhere"

    alien = Elsewhere(3, t=T)
    out = score_tasks(_fit("maxplus", prior, 16), alien, cfg, seed=0, t=T)
    assert all(math.isnan(v) for v in out.values()) and "no signal model" in out.message()
    with pytest.raises(ConfigError, match="prox time"):
        score_tasks(_fit("maxplus", prior, 16), prior, cfg, seed=0, t=1.0)


def test_the_numerical_oracle_stands_in_for_a_missing_closed_form():
    class NoClosedForm(L1Prior):
        def _prox(self, x):
            raise NotImplementedError

    prior = NoClosedForm(3, t=T)
    prox = exact_prox(prior)
    v = torch.tensor([[0.1, -2.0, 0.7], [3.0, 0.0, -0.2]], dtype=torch.float64)
    torch.testing.assert_close(prox(v), L1Prior(3, t=T).prox(v), rtol=0, atol=1e-6)


def test_task_columns_are_stable_and_parse_back():
    cfg = tasks.validate_tasks({"kinds": ["deblur", "denoise"], "noise": [0.5, 1e-3], "solvers": ["fista_ls"]},
                               dims=[8])
    cols = task_columns(cfg)
    assert len(cols) == 2 * 2 * 1 * 9 and len(set(cols)) == len(cols)
    assert cols[0] == "task_deblur_s0.5_fista_ls_rel_error"
    assert task_parts("task_denoise_s0.001_fista_ls_exact_converged") == {
        "kind": "denoise", "noise": 0.001, "solver": "fista_ls", "metric": "exact_converged"}
    assert all(task_parts(c) is not None for c in cols)


@pytest.mark.parametrize("raw,key", [
    ({"kinds": ["denoise", "inpaint"]}, "kinds"), ({"kinds": []}, "kinds"), ({"noise": [0.5, -1]}, "noise"),
    ({"noise": [0.5, 0.5]}, "noise"), ({"n_signals": 0}, "n_signals"), ({"cs_ratio": 0.95}, "cs_ratio"),
    ({"cs_ratio": 1.0}, "cs_ratio"), ({"blur_kernel": [0.5, 0.5]}, "blur_kernel"),
    ({"blur_kernel": [0.1] * 9}, "blur_kernel"), ({"blur_boundary": "reflect"}, "blur_boundary"),
    ({"solvers": ["fista", "pgd"]}, "solvers"), ({"max_iter": 2.5}, "max_iter"), ({"tol": 0}, "tol"),
    ({"tolerance": 1e-3}, "tolerance"), ({"noise": [0.1], "solvers": ["fista"]}, "noise"),
])
def test_config_errors_are_one_line(raw, key):
    with pytest.raises(ConfigError) as info:
        tasks.validate_tasks(raw, dims=[8, 16], t=T)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"config: tasks.{key}=") and "; allowed: " in text


def test_config_defaults_and_none():
    assert tasks.validate_tasks(None, dims=[8]) is None
    cfg = tasks.validate_tasks({}, dims=[8], t=T)
    assert cfg == tasks.TasksConfig() and cfg.to_dict()["noise"] == [1.0, 2.0]
    assert tasks.validate_tasks({"noise": [0.1], "solvers": ["admm"]}, dims=[8], t=T).noise == (0.1,)


def test_task_figure_draws_the_summary_medians_and_the_floor(tmp_path):
    rows = []
    for method, scale in (("maxplus", 1.0), ("hj", 2.0)):
        for n in (64, 256, 1024):
            for metric, value in ((task_column("denoise", 0.5, "fista", "rel_error"), 0.2 + scale / n),
                                  (task_column("denoise", 0.5, "fista", "exact_rel_error"), 0.2)):
                rows.append({"method": method, "prior": "l1", "dim": 8, "n_samples": n, "t": T, "regime": "values",
                             "metric": metric, "median": value, "ci_low": value * 0.9, "ci_high": value * 1.1,
                             "n_finite": 2, "n_trials": 2, "n_ok": 2})
    from hjbench.present.plots.tasks import task_error_vs_n

    res = task_error_vs_n(pd.DataFrame(rows), tmp_path, formats=("png",))
    assert res.paths[0].exists()
    lines = res.data[res.data["series"] == "method"]
    assert len(lines) == 6
    got = lines.set_index(["method", "n_samples"])["y"]
    assert got[("hj", 64)] == pytest.approx(0.2 + 2 / 64) and got[("maxplus", 1024)] == pytest.approx(0.2 + 1 / 1024)
    floor = res.data[res.data["series"] == "exact"]
    assert list(floor["y"]) == [0.2, 0.2, 0.2]
    with pytest.raises(ConfigError, match="admm"):
        task_error_vs_n(pd.DataFrame(rows), tmp_path, solver="admm")
