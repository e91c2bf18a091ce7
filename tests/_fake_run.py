"""Build a synthetic run folder (run.json, trials.jsonl/.parquet, summary.parquet) for tests.

The numbers follow the results schema (/work/shared schema, ``hjbench.SCHEMA_VERSION``) and look like a real
run: errors fall as a power of n_samples (slope -4/dim for smooth and piecewise smooth priors,
-2/dim for Lipschitz ones; ``slope_scale={method: c}`` multiplies a method's slope by c, e.g.
to plant a too-shallow guaranteed method) with seeded log-normal noise over repetitions, bounds sit above the max-plus
errors, timings grow with n_samples. It holds on purpose what plots must cope with:

* a failed cell: ``FAILED_CELL`` (every repetition ``failed``, metrics NaN, a message);
* a skipped trial and a timeout trial (a cell with some repetitions missing);
* a method with no prior and no potential ("lista": prior/forward metrics NaN, "not applicable");
* a zero on a log axis: ``ZERO_CELL`` has prox_mse == prox_rel_mse == 0 in every repetition;
* a negative value: ``NEGATIVE_CELL`` has fy_gap_min < 0 (and forward_rel_mse <= 0 once).

The summary is computed here (median, seeded percentile bootstrap 95% CI over repetitions),
independently of hjbench.present.summary, so tests do not depend on it.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

METHODS = ("hj", "lpn", "lista", "maxplus")
PROVIDES = {"hj": {"prox", "potential", "prior"}, "lpn": {"prox", "potential", "prior"},
            "lista": {"prox"}, "maxplus": {"prox", "potential", "prior"}}
PRIORS = ("l1", "neg_l1")
REGIME = {"l1": "smooth", "neg_l1": "piecewise_smooth", "concave_quadratic": "smooth", "minplus": "piecewise_smooth"}
DIMS = (2, 4)
N_SAMPLES = (100, 300, 1000)
REPETITIONS = 3
FAILED_CELL = ("lpn", "neg_l1", 4, 1000)
ZERO_CELL = ("maxplus", "l1", 2, 1000)
NEGATIVE_CELL = ("hj", "l1", 4, 100)
SKIPPED_TRIAL = ("hj", "neg_l1", 2, 300, 2)
BOX = 4.0
try:  # the schema version this hjbench reads (1 before hjbench.SCHEMA_VERSION existed)
    from hjbench import SCHEMA_VERSION
except ImportError:
    SCHEMA_VERSION = 1
METRICS = ["forward_mse", "forward_rel_mse", "forward_axis_mse", "prox_mse", "prox_rel_mse",
           "prior_bvs_mse", "prior_bvs_rel_mse", "prior_J_mse", "prior_J_rel_mse",
           "prior_axis_bvs_mse", "prox_residual", "fy_gap_mean", "fy_gap_min", "prior_n_failed",
           "prior_iterations_mean", "fit_seconds", "prox_seconds_per_point",
           "prior_seconds_per_point", "peak_memory_mb", "bound_value", "bound_rel_value",
           "bound_ratio", "theoretical_slope", "cert_value"]


def bound_value(prior: str, dim: int, n: int) -> float:
    """hjbench.score.bounds' a priori bound when priors and bounds import, else a stand-in.

    The stand-in is 8 dim n^{-4/dim} (smooth, piecewise smooth) or 8 dim n^{-2/dim} (Lipschitz).
    """
    try:
        from hjbench import priors
        from hjbench.score import bounds

        return float(bounds.bound_for_prior(priors.get(prior, dim=dim, t=1.0), n, BOX).value)
    except Exception:
        p = 2.0 if REGIME[prior] == "lipschitz" else 4.0
        return 8.0 * dim * n ** (-p / dim)


def _trial(rng, method, prior, dim, n, rep, status="ok", message="", scale_slope=1.0):
    p = 2.0 if REGIME[prior] == "lipschitz" else 4.0
    slope = -p / dim
    psi2 = 2.0 * dim
    scale = {"hj": 0.05, "lpn": 0.08, "lista": 0.1, "maxplus": 0.5}.get(method, 0.02 + 0.01 * len(method))
    noise = lambda: float(np.exp(0.25 * rng.standard_normal()))  # noqa: E731
    row = {m: math.nan for m in METRICS}
    prov = PROVIDES.get(method, {"prox", "potential", "prior"})
    if status == "ok":
        fwd = scale * dim * n ** (slope * scale_slope) * noise()
        if "potential" in prov:
            row.update(forward_mse=fwd, forward_rel_mse=fwd / psi2, forward_axis_mse=3 * fwd * noise(),
                       cert_value=2 * fwd)
        prox = 0.5 * fwd * noise()
        row.update(prox_mse=prox, prox_rel_mse=prox / (0.8 * dim))
        if "prior" in prov:
            pr = 4 * fwd * noise()
            row.update(prior_bvs_mse=pr, prior_bvs_rel_mse=pr / psi2, prior_J_mse=pr * (1.0 if prior == "l1" else 5.0),
                       prior_J_rel_mse=pr / psi2 * (1.0 if prior == "l1" else 5.0), prior_axis_bvs_mse=6 * pr,
                       prox_residual=1e-4 * noise(), fy_gap_mean=0.01 * noise(), fy_gap_min=1e-5 * noise(),
                       prior_n_failed=0.0, prior_iterations_mean=0.0 if method != "lpn" else 40 * noise(),
                       prior_seconds_per_point=(2e-5 if method != "lpn" else 3e-3) * noise())
        row.update(fit_seconds=(0.002 if method == "maxplus" else 0.5) * n ** 0.6 * noise(),
                   prox_seconds_per_point=1e-6 * noise() * (n / 100 if method == "maxplus" else 1.0),
                   peak_memory_mb=50 + 0.01 * n)
        if (method, prior, dim, n) == ZERO_CELL:
            row.update(prox_mse=0.0, prox_rel_mse=0.0)
        if (method, prior, dim, n) == NEGATIVE_CELL:
            row.update(fy_gap_min=-1e-3 * noise())
            if rep == 0:
                row.update(forward_rel_mse=-1e-9)
    b = bound_value(prior, dim, n)
    row.update(bound_value=b, bound_rel_value=b / psi2, theoretical_slope=slope)
    if "potential" in prov and status == "ok":
        row["bound_ratio"] = row["forward_mse"] / b
    holds = None if math.isnan(row["bound_ratio"]) else bool(row["bound_ratio"] <= 1)
    return row | {"bound_name": f"maxplus_{REGIME[prior]}", "bound_holds": holds,
                  "cert_holds": None if math.isnan(row["cert_value"]) else True,
                  "status": status, "message": message}


def make_trials(run_id: str = "fake-run", seed: int = 0, *, methods=METHODS, priors=PRIORS, dims=DIMS,
                n_samples=N_SAMPLES, repetitions=REPETITIONS, slope_scale=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    slope_scale = slope_scale or {}
    rows = []
    for prior in priors:
        for dim in dims:
            for n in n_samples:
                for rep in range(repetitions):
                    data_seed = int(rng.integers(2**62))
                    for method in methods:
                        status, message = "ok", ""
                        if (method, prior, dim, n) == FAILED_CELL:
                            status, message = "failed", "RuntimeError: conjugate gradient diverged"
                        elif (method, prior, dim, n, rep) == SKIPPED_TRIAL:
                            status, message = "skipped", "skip: needs cuda for dim > 1"
                        elif (method, prior, dim, n, rep) == ("hj", "l1", 2, 300, 1):
                            status, message = "timeout", "timeout after 60 s"
                        row = _trial(rng, method, prior, dim, n, rep, status, message,
                                     slope_scale.get(method, 1.0))
                        if method == "lista" and status == "ok":
                            row["message"] = "potential, prior: not applicable (method provides prox only)"
                        ident = {
                            "schema_version": SCHEMA_VERSION, "run_id": run_id, "code_version": "0.1.0",
                            "trial_id": hashlib.sha256(repr((method, prior, dim, n, rep)).encode()).hexdigest()[:16],
                            "method": method, "method_params": json.dumps({"steps": 200}, separators=(",", ":")),
                            "prior": prior, "prior_params": "{}", "dim": dim, "n_samples": n,
                            "repetition": rep, "seed": data_seed, "method_seed": data_seed ^ 1,
                            "t": 1.0, "regime": "values", "box": BOX, "device": "cpu", "dtype": "float32"}
                        row["opt_limited"] = False if status == "ok" else None
                        rows.append(ident | row)
    return pd.DataFrame(rows)


def _boot_ci(values: np.ndarray, seed: int, n_boot: int = 200) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    meds = np.median(rng.choice(finite, size=(n_boot, finite.size), replace=True), axis=1)
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """Long summary as in the schema: one row per cell x metric, cells in registry order."""
    rows = []
    keys = ["method", "prior", "dim", "n_samples", "t", "regime"]
    order = {m: i for i, m in enumerate(dict.fromkeys(list(METHODS) + list(trials["method"])))}
    porder = {p: i for i, p in enumerate(dict.fromkeys(list(PRIORS) + list(trials["prior"])))}
    for key, cell in trials.groupby(keys, sort=False):
        for metric in METRICS:
            v = cell[metric].to_numpy(dtype=float)
            finite = v[np.isfinite(v)]
            lo, hi = _boot_ci(v, seed=len(rows))
            rows.append(dict(zip(keys, key)) | {
                "metric": metric, "median": float(np.median(finite)) if finite.size else math.nan,
                "ci_low": lo, "ci_high": hi, "mean": float(finite.mean()) if finite.size else math.nan,
                "n_finite": int(finite.size), "n_trials": int(len(cell)),
                "n_ok": int((cell["status"] == "ok").sum())})
    out = pd.DataFrame(rows)
    out["_m"] = out["method"].map(order)
    out["_p"] = out["prior"].map(porder)
    out = out.sort_values(["_m", "_p", "dim", "n_samples"], kind="stable").drop(columns=["_m", "_p"])
    return out.reset_index(drop=True)


def make_run(root: Path, run_id: str = "fake-run", *, summary: bool = True, ended: bool = True,
             parquet: bool = True, **grid) -> Path:
    """Write a fake run folder under ``root`` and return its path.

    ``grid`` narrows the grid (methods, priors, dims, n_samples, repetitions: see make_trials);
    run.json's config describes it. ``slope_scale`` is passed to make_trials.
    """
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    slope_scale = grid.pop("slope_scale", None)
    trials = make_trials(run_id, slope_scale=slope_scale, **grid)
    g = {"methods": METHODS, "priors": PRIORS, "dims": DIMS, "n_samples": N_SAMPLES,
         "repetitions": REPETITIONS} | grid
    with open(run_dir / "trials.jsonl", "w") as fh:
        for rec in trials.to_dict(orient="records"):
            fh.write(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                                 for k, v in rec.items()}) + "\n")
    if parquet:
        trials.to_parquet(run_dir / "trials.parquet", index=False)
    if summary:
        summarize(trials).to_parquet(run_dir / "summary.parquet", index=False)
    counts = trials["status"].value_counts().to_dict()
    counts["pending"] = 0
    comp = lambda names: [{"name": n, "params": {}, "resolved": {}} for n in names]  # noqa: E731
    run_json = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id,
        "config": {"name": "fake", "seed": 0, "repetitions": g["repetitions"], "dims": list(g["dims"]),
                   "n_samples": {str(d): list(g["n_samples"]) for d in g["dims"]}, "t": 1.0, "regime": "values",
                   "box": BOX, "n_test": 500, "n_cross": 201, "device": "cpu", "dtype": "float32",
                   "methods": comp(g["methods"]), "priors": comp(g["priors"])},
        "command": ["hjbench", "run", "--config", "configs/smoke.toml"],
        "environment": {"python": "3.11.7", "hjbench": "0.1.0", "torch": "2.13.0", "jax": "0.4.35",
                        "numpy": "2.1.0", "pandas": "2.2.3",
                        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True},
                        "cpu_model": "Fake CPU @ 2.0GHz", "cpu_count": 2, "gpu_model": None,
                        "torch_threads": 2},
        "started": "2025-01-01T10:00:00+00:00",
        "ended": "2025-01-01T10:09:30+00:00" if ended else None,
        "n_trials": int(len(trials)), "counts": {k: int(v) for k, v in counts.items()},
        "interrupted": False,
    }
    (run_dir / "run.json").write_text(json.dumps(run_json, indent=2))
    return run_dir


# -- stand-ins for fitted methods (cross-sections need fitted methods, not data) ---------------------
def fitted_standins(prior, shift: float = 0.1) -> dict:
    """{"hj": potential psi + shift and prior J_bvs + shift (not converged where |y_1| > 3.5),
    "lista": prox only}, both marked fitted for ``prior.dim`` (they need no data)."""
    import torch

    from hjbench.methods.base import AbstractMethod
    from hjbench.solution import Solution

    class Shifted(AbstractMethod):
        provides = frozenset({"prox", "potential", "prior"})

        def __init__(self, truth, shift):
            self.truth, self.shift = truth, shift

        def _prox(self, x):
            return self.truth.prox(x)

        def _potential(self, x):
            return self.truth.psi(x) + self.shift

        def _prior_solution(self, y):
            value = self.truth.J_bvs(y) + self.shift
            return Solution(value=value, converged=y[..., 0].abs() <= 3.5, residual=torch.zeros_like(value),
                            iterations=torch.zeros(value.shape, dtype=torch.long))

    class ProxOnly(AbstractMethod):
        provides = frozenset({"prox"})

        def __init__(self, truth):
            self.truth = truth

        def _prox(self, x):
            return self.truth.prox(x)

    out = {"hj": Shifted(prior, shift), "lista": ProxOnly(prior)}
    for name, method in out.items():
        method.name, method.dim_, method.t_ = name, prior.dim, prior.t
    return out
