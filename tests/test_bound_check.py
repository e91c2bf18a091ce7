"""``hjbench check-bound`` (hjbench.score.check) on small synthetic run folders built from real numbers.

Each run folder holds a trials.parquet following the results schema (version 1); the forward
errors, bounds and certificates in it are computed here from a local max-plus interpolant of
the l1 family, so a violation in the table is a real one.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hjbench import priors
from hjbench.score import check as bound_check
from hjbench.score import bounds

sys.path.insert(0, str(Path(__file__).parent))
import _fake_run as fake  # noqa: E402

BOX = 4.0


def uniform(n, dim, gen):
    return (2.0 * torch.rand(n, dim, generator=gen, dtype=torch.float64) - 1.0) * BOX


def maxplus_values(prior, x_train, lift=0.0, n_lift=0):
    v = prior.prox(x_train)
    c = prior.psi(x_train) - (v * x_train).sum(-1)
    c[:n_lift] += lift  # a deliberately wrong estimator lifts a few samples' values
    return lambda x: (x @ v.T + c).max(-1).values


def trial(prior, method, n_samples, rep, estimator, status="ok", message=""):
    """One schema row with real forward MSE, bound and certificate columns."""
    gen = torch.Generator().manual_seed(1000 * n_samples + rep)
    xt, x = uniform(n_samples, prior.dim, gen), uniform(1000, prior.dim, gen)
    psi = prior.psi(x)
    row = {"schema_version": 1, "run_id": "synthetic", "trial_id": f"{method}-{n_samples}-{rep}",
           "method": method, "method_params": "{}", "prior": prior.name,
           "prior_params": json.dumps(prior.params(), sort_keys=True, separators=(",", ":")),
           "dim": prior.dim, "n_samples": n_samples, "repetition": rep, "seed": rep, "method_seed": rep,
           "t": prior.t, "regime": "values_and_gradients", "box": BOX, "device": "cpu", "dtype": "float64",
           "status": status, "message": message, "forward_mse": math.nan, "cert_value": math.nan,
           "cert_holds": None}
    bound = bounds.bound_for_prior(prior, n_samples, BOX)
    if status == "ok" and estimator is not None:
        psi_hat = estimator(prior, xt)(x)
        row["forward_mse"] = float(((psi - psi_hat) ** 2).mean())
        row.update(bounds.certificate_for_prior(prior, psi_hat, x, xt, BOX).columns())
    row.update(bound.columns(row["forward_mse"], float((psi ** 2).mean())))
    return row


def exact(prior, xt):
    return maxplus_values(prior, xt)


def perturbed(prior, xt):
    return maxplus_values(prior, xt, lift=0.5, n_lift=3)


def offset(prior, xt):
    return lambda x: prior.psi(x) + 3.0


def write_run(path, rows, fmt="parquet"):
    path.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    if fmt == "parquet":
        frame.to_parquet(path / "trials.parquet")
    else:
        frame.to_json(path / "trials.jsonl", orient="records", lines=True)
    return path


@pytest.fixture(scope="module")
def l1():
    return priors.get("l1", dim=2, t=1.0)


COUNTS = (100, 300, 1000, 3000)


def test_exact_maxplus_run_passes(tmp_path, l1):
    rows = [trial(l1, "maxplus", n, r, exact) for n in COUNTS for r in range(3)]
    rows += [trial(l1, "learned_offset", n, r, offset) for n in COUNTS for r in range(2)]
    run = write_run(tmp_path / "run", rows)
    report = bound_check.check_run(run)
    mp = [c for c in report.cells if c.method == "maxplus"]
    assert len(mp) == len(COUNTS) and all(c.verdict == "holds" and c.n_cert_fail == 0 for c in mp)
    assert all(0 < c.ratio < 1 and c.ci_low <= c.median <= c.ci_high for c in mp)
    learned = [c for c in report.cells if c.method == "learned_offset"]
    assert all(c.verdict == "worse than the max-plus guarantee" and not c.violated for c in learned)
    slope = next(s for s in report.slopes if s.method == "maxplus")
    assert slope.theory == -2.0 and slope.fit.n_counts == len(COUNTS) and slope.fit.slope < -1.5
    lines = []
    assert bound_check.main(run, out=lines.append) == bound_check.EXIT_OK
    text = (run / "bound_report.md").read_text()
    assert "## Cells" in text and "worse than the max-plus guarantee" in text and "holds" in text
    assert "\n".join(lines) == text.rstrip("\n")


def test_wrong_estimator_is_caught(tmp_path, l1):
    """The interpolant with three samples' values lifted: psi_N > psi near them, the certificate
    fails in every trial, and check-bound exits with the violation code."""
    rows = [trial(l1, "maxplus", n, r, perturbed) for n in COUNTS for r in range(2)]
    assert not any(r["cert_holds"] for r in rows)
    run = write_run(tmp_path / "run", rows)
    report = bound_check.check_run(run)
    assert report.violations and all(c.verdict.startswith("violated: certificate fails") for c in report.cells)
    lines = []
    assert bound_check.main(run, out=lines.append) == bound_check.EXIT_VIOLATED
    assert "VIOLATED" in lines[-1]


def test_apriori_violation_is_caught(tmp_path, l1):
    """A max-plus row whose error exceeds the a priori bound (no certificate) is a violation too."""
    rows = [trial(l1, "maxplus", 1000, r, offset) for r in range(2)]
    for r in rows:
        r["cert_holds"], r["cert_value"] = None, math.nan
        del r["theoretical_slope"]  # an older row: the slope is derived from bound_name
    run = write_run(tmp_path / "run", rows)
    report = bound_check.check_run(run)
    assert report.slopes[0].theory == -2.0
    cell = report.cells[0]
    assert cell.violated and cell.verdict == "violated: mean MSE above the a priori bound" and cell.n_above == 2
    assert bound_check.main(run, out=lambda s: None) == bound_check.EXIT_VIOLATED


def test_failed_and_nan_cells_are_not_judged(tmp_path, l1):
    rows = [trial(l1, "maxplus", n, r, exact) for n in (100, 300) for r in range(2)]
    rows += [trial(l1, "hj", 100, r, None, status="failed", message="loss diverged at step 12") for r in range(2)]
    rows += [trial(l1, "lista", 100, r, None, message="no potential: prox-only method") for r in range(2)]
    rows += [trial(l1, "maxplus", 1000, 0, None, status="timeout", message="time limit 60 s")]
    run = write_run(tmp_path / "run", rows, fmt="jsonl")  # the jsonl fallback
    report = bound_check.check_run(run)
    assert report.source == "trials.jsonl"
    why = {(c.method, c.n_samples): c.verdict for c in report.unjudged}
    assert why[("hj", 100)] == "not judged: no ok trial: 2 failed (loss diverged at step 12)"
    assert why[("lista", 100)].startswith("not judged: forward_mse is NaN in all 2 ok trials (no potential")
    assert why[("maxplus", 1000)].startswith("not judged: no ok trial: 1 timeout")
    lines = []
    assert bound_check.main(run, out=lines.append) == bound_check.EXIT_UNJUDGED
    assert "## Not judged" in lines and any("loss diverged" in s for s in lines)


@pytest.mark.parametrize("make", ["missing", "empty", "no_columns", "corrupt", "file"])
def test_not_a_run_gives_one_line_error(tmp_path, make):
    target = tmp_path / "run"
    if make == "empty":
        target.mkdir()
    elif make == "no_columns":
        write_run(target, [{"a": 1}])
    elif make == "corrupt":
        target.mkdir()
        (target / "trials.parquet").write_bytes(b"not a parquet file")
    elif make == "file":
        target.write_text("hello")
    lines, errors = [], []
    assert bound_check.main(target, out=lines.append, err=errors.append) == bound_check.EXIT_NOT_A_RUN
    assert not lines  # the error goes to err (standard error by default), not to the report stream
    assert len(errors) == 1 and errors[0].startswith("error: ") and "\n" not in errors[0]
    with pytest.raises(bound_check.RunError):
        bound_check.check_run(target)


def test_not_a_run_error_goes_to_stderr_by_default(tmp_path, capsys):
    assert bound_check.main(tmp_path / "nope") == bound_check.EXIT_NOT_A_RUN
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: not a run folder")


# -- guarantees, one-sided slopes, optimisation-limited points -----------------------------------
def _fake_frame(tmp_path, **grid):
    run = fake.make_run(tmp_path, methods=("hj", "maxplus"), priors=("l1",), dims=(2,), **grid)
    return run, pd.read_parquet(run / "trials.parquet")


def test_guaranteed_methods_come_from_the_registry_a_column_or_the_caller(tmp_path):
    import baselines
    from hjbench import methods

    baselines.register()
    declared = {n for n in methods.names() if getattr(methods.entry(n).cls, "guarantee", None)}
    assert bound_check.registered_guarantees() == declared
    assert "maxplus" in declared and "hj" not in declared  # MaxPlus declares guarantee = "maxplus"
    run, frame = _fake_frame(tmp_path)
    assert bound_check.guaranteed_methods(frame) == declared
    assert bound_check.guaranteed_methods(frame, ["hj"]) == {"hj"}
    frame["guarantee"] = [("maxplus" if m == "hj" else None) for m in frame["method"]]  # a run's own column
    assert bound_check.guaranteed_methods(frame) == {"hj"}
    report = bound_check.check_run(run, guaranteed=[])
    assert not any(c.guaranteed for c in report.cells) and report.exit_code == bound_check.EXIT_OK
    assert any("no cell of a guaranteed method" in n for n in report.notes)


def test_too_shallow_guaranteed_slope_exits_3(tmp_path):
    """A planted max-plus whose error decays like N^-1.2 against the theory's N^-2: every cell is
    below its bound, yet the one-sided slope test fails and is binding (exit 3, with the reason)."""
    run = fake.make_run(tmp_path, methods=("hj", "maxplus"), priors=("l1",), dims=(2,),
                        n_samples=(100, 300, 1000, 3000), slope_scale={"maxplus": 0.6, "hj": 0.6})
    report = bound_check.check_run(run)
    assert not report.violations  # no cell is above its bound
    slope = {s.method: s for s in report.slopes}
    mp, hj = slope["maxplus"], slope["hj"]
    assert mp.theory == -2.0 and mp.fit.low > mp.theory and mp.passed is False
    assert mp.binding and mp.violated and mp.agreement == "shallower than theory"
    assert abs(mp.bound_slope - mp.theory) <= 0.2  # the bound is in its power-law range here
    assert hj.passed is False and not hj.binding and not hj.violated  # a learned method: informative
    lines, errors = [], []
    assert bound_check.main(run, out=lines.append, err=errors.append) == bound_check.EXIT_VIOLATED
    assert lines[-1].startswith("**Result:** VIOLATED") and "shallower than theory" in lines[-1] and not errors
    assert "violated: shallower than theory" in "\n".join(lines)


def test_steeper_slope_passes_the_one_sided_test(tmp_path):
    run = fake.make_run(tmp_path, methods=("maxplus",), priors=("l1",), dims=(2,),
                        n_samples=(100, 300, 1000, 3000), slope_scale={"maxplus": 1.5})
    report = bound_check.check_run(run)
    s = report.slopes[0]
    assert s.agreement == "steeper than theory" and s.passed is True and s.binding and not s.violated
    assert report.exit_code == bound_check.EXIT_OK


def test_slope_not_binding_where_the_bound_is_not_a_power_law(tmp_path):
    """At dim 4 and N = 100..1000 the bound is dominated by its tail term (its own slope is far
    steeper than -1): a failed slope test there is reported, not binding."""
    run = fake.make_run(tmp_path, methods=("maxplus",), priors=("l1",), dims=(4,), slope_scale={"maxplus": 0.2})
    s = bound_check.check_run(run).slopes[0]
    assert s.passed is False and s.bound_slope < 1.1 * s.theory and not s.binding and not s.violated


def test_opt_limited_points_are_left_out_of_slopes(tmp_path):
    run, frame = _fake_frame(tmp_path, n_samples=(100, 300, 1000, 3000))
    hj = (frame["method"] == "hj") & (frame["status"] == "ok")
    big = hj & (frame["n_samples"] >= 1000)
    frame.loc[big, "forward_mse"] = 5.0  # an optimisation floor at large N ...
    frame["opt_limited"] = big.where(big, None)  # ... flagged (other rows: missing = False)
    frame.to_parquet(run / "trials.parquet")
    default = {s.method: s for s in bound_check.check_run(run).slopes}["hj"]
    both = {s.method: s for s in bound_check.check_run(run, include_opt_limited=True).slopes}["hj"]
    assert default.n_left_out == int(big.sum()) and default.fit.n_points == int(hj.sum() - big.sum())
    assert both.n_left_out == 0 and both.fit.n_points == int(hj.sum())
    assert default.fit.slope < -1.5 and both.fit.slope > -1.0
    text = bound_check.check_run(run).to_markdown()
    assert "#opt-limited left out" in text and f"{int(big.sum())} optimisation-limited trials" in text


def test_piecewise_regime_is_read_from_the_bound_name(tmp_path):
    neg = priors.get("neg_l1", dim=2, t=1.0)
    rows = [trial(neg, "maxplus", n, r, exact) for n in (100, 300) for r in range(2)]
    for r in rows:
        assert r["bound_name"] == "maxplus_apriori_piecewise_smooth"
        del r["theoretical_slope"]
    report = bound_check.check_run(write_run(tmp_path / "run", rows))
    assert report.slopes[0].theory == -2.0 and all(c.verdict == "holds" for c in report.cells)


# -- statistics used by the check --------------------------------------------------------------
def test_t_quantiles_hand_values():
    for dof, q in ((1, 12.7062), (2, 4.3027), (3, 3.1824), (10, 2.2281), (30, 2.0423)):
        assert bounds.t_quantile(0.95, dof) == pytest.approx(q, abs=1e-4)
    assert bounds.t_two_sided_cdf(0.0, 4) == 0.0


def test_slope_fit_on_exact_power_law_and_noise():
    n = np.repeat([10.0, 100.0, 1000.0], 3)
    fit = bounds.fit_loglog_slope(n, 5.0 * n ** -0.75)
    assert fit.slope == pytest.approx(-0.75) and fit.high - fit.low == pytest.approx(0.0, abs=1e-9)
    noisy = 5.0 * n ** -0.75 * np.exp(np.random.default_rng(0).normal(0, 0.1, n.size))
    fit = bounds.fit_loglog_slope(n, noisy)
    assert fit.low < fit.slope < fit.high and fit.contains(-0.75)
    assert math.isnan(bounds.fit_loglog_slope([10, 10], [1.0, 2.0]).low)  # one sample count: no fit


def test_median_ci_is_seeded_and_nan_when_too_few():
    v = [3.0, 1.0, 2.0, 5.0, 4.0]
    assert bounds.median_ci(v) == bounds.median_ci(v)
    med, lo, hi = bounds.median_ci(v)
    assert med == 3.0 and 1.0 <= lo <= 3.0 <= hi <= 5.0
    assert math.isnan(bounds.median_ci([2.0, math.nan])[1])


def test_one_sided_slope_test():
    fit = bounds.SlopeFit(-0.9, -1.2, -0.6, 0.0, 12, 4)
    assert bounds.slope_not_shallower(fit, -1.0) is True and bounds.slope_agreement(fit, -1.0) == "consistent"
    assert bounds.slope_not_shallower(fit, -0.5) is True  # steeper than theory passes
    assert bounds.slope_agreement(fit, -0.5) == "steeper than theory"
    assert bounds.slope_not_shallower(fit, -1.3) is False  # the whole interval above theory
    assert bounds.slope_agreement(fit, -1.3) == "shallower than theory"
    assert bounds.slope_not_shallower(fit, math.nan) is None
    assert bounds.slope_not_shallower(bounds.SlopeFit(-1.0, math.nan, math.nan, 0.0, 2, 2), -1.0) is None
