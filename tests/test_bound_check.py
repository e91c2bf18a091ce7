"""``hjbench check-bound`` (hjbench.score.check) on small synthetic run folders built from real numbers.

Each run folder holds a trials.parquet following the results schema (version 1); the forward
errors, bounds and certificates in it are computed here from a local max-plus interpolant of
the l1 family, so a violation in the table is a real one.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from hjbench import priors
from hjbench.score import check as bound_check
from hjbench.score import bounds

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
    lines = []
    assert bound_check.main(target, out=lines.append) == bound_check.EXIT_NOT_A_RUN
    assert len(lines) == 1 and lines[0].startswith("error: ") and "\n" not in lines[0]
    with pytest.raises(bound_check.RunError):
        bound_check.check_run(target)


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
