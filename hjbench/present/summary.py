"""Per-cell statistics over repetitions (results schema v1, ``summary.parquet``).

For each cell (method, prior, dim, n_samples, t, regime) and each numeric metric column, with
v_1..v_k the finite values of the metric over the cell's trials:

* median, mean of the v_j; n_finite = k; n_trials = rows of the cell; n_ok = rows with status ok;
* ci_low, ci_high: 95% percentile-bootstrap interval of the median: draw B resamples of size k
  with replacement from (v_1..v_k), take each resample's median, report the 2.5% and 97.5%
  percentiles. The generator is seeded from a stable hash of (seed, cell, metric), so the
  summary is reproducible and independent of row order. NaN when k < 2.

Cells are ordered by method registry order, prior registry order, dim, n_samples.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SUMMARY_COLUMNS", "CELL_KEYS", "summary_metrics", "bootstrap_median_ci", "summarize",
           "headline"]

CELL_KEYS = ("method", "prior", "dim", "n_samples", "t", "regime")
SUMMARY_COLUMNS = CELL_KEYS + ("metric", "median", "ci_low", "ci_high", "mean", "n_finite", "n_trials", "n_ok")


def summary_metrics() -> list[str]:
    """The numeric metric columns summarised (every float metric of the schema)."""
    from ..score.metrics import METRIC_COLUMNS

    return [c for c in METRIC_COLUMNS if c not in ("bound_name", "bound_holds", "cert_holds")]


def bootstrap_median_ci(values: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``values`` (finite, 1-D); NaN if < 2 values."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(n_boot, values.size), replace=True), axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(medians, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _order(values, registered: list[str]) -> dict[str, int]:
    known = {name: i for i, name in enumerate(registered)}
    extra = sorted(v for v in set(values) if v not in known)
    return {**known, **{v: len(known) + i for i, v in enumerate(extra)}}


def _registered(role: str) -> list[str]:
    try:
        import importlib

        return importlib.import_module(f"hjbench.{role}").names()
    except Exception:  # noqa: BLE001 (ordering falls back to alphabetical)
        return []


def summarize(trials, *, n_boot: int = 2000, seed: int = 0):
    """Long-format summary of a trials DataFrame (one row per cell x metric)."""
    import pandas as pd

    from ..seeds import stable_int

    metrics = [m for m in summary_metrics() if m in trials.columns]
    rows = []
    if len(trials):
        for cell, group in trials.groupby(list(CELL_KEYS), sort=False, dropna=False):
            n_ok = int((group["status"] == "ok").sum())
            key = dict(zip(CELL_KEYS, cell))
            for metric in metrics:
                vals = pd.to_numeric(group[metric], errors="coerce").to_numpy(dtype=float)
                vals = vals[np.isfinite(vals)]
                boot_seed = stable_int({"seed": seed, "metric": metric, **{k: str(v) for k, v in key.items()}})
                lo, hi = bootstrap_median_ci(vals, n_boot=n_boot, seed=boot_seed)
                rows.append({**key, "metric": metric,
                             "median": float(np.median(vals)) if vals.size else math.nan,
                             "ci_low": lo, "ci_high": hi,
                             "mean": float(vals.mean()) if vals.size else math.nan,
                             "n_finite": int(vals.size), "n_trials": len(group), "n_ok": n_ok})
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    if not len(out):
        return out
    m_rank = _order(out["method"], _registered("methods"))
    p_rank = _order(out["prior"], _registered("priors"))
    k_rank = {m: i for i, m in enumerate(metrics)}
    out = out.assign(_m=out["method"].map(m_rank), _p=out["prior"].map(p_rank), _k=out["metric"].map(k_rank))
    out = out.sort_values(["_m", "_p", "dim", "n_samples", "t", "regime", "_k"], kind="stable")
    out = out.drop(columns=["_m", "_p", "_k"]).reset_index(drop=True)
    for c in ("dim", "n_samples", "n_finite", "n_trials", "n_ok"):
        out[c] = out[c].astype("int64")
    return out


def headline(summary, metric: str = "prox_rel_mse"):
    """Wide table: one row per (method, prior), one column per dim, the median of ``metric``
    at the largest n_samples of that dim, plus ``ok`` = trials with status ok / trials."""
    import pandas as pd

    sub = summary[summary["metric"] == metric]
    if not len(sub):
        return pd.DataFrame()
    largest = sub.groupby("dim")["n_samples"].transform("max")
    top = sub[sub["n_samples"] == largest]
    wide = top.pivot_table(index=["method", "prior"], columns="dim", values="median", sort=False,
                           dropna=False, aggfunc="first")
    wide.columns = [f"dim={d} n={int(sub[sub['dim'] == d]['n_samples'].max())}" for d in wide.columns]
    counts = sub.groupby(["method", "prior"], sort=False)[["n_ok", "n_trials"]].sum()
    wide["ok"] = [f"{counts.loc[i, 'n_ok']}/{counts.loc[i, 'n_trials']}" for i in wide.index]
    return wide.reset_index()
