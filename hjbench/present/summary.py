"""Per-cell statistics over repetitions (results schema v1, ``summary.parquet``).

For each cell (method, prior, dim, n_samples, t, regime) and each summarised column of the
metric catalogue (:func:`hjbench.score.catalogue.summarised`: float columns, and bool columns
as 0/1 so that the median says what most repetitions did and the mean how many), with
v_1..v_k the values of the metric over the cell's trials that are not NaN (+inf, an honest
failure such as a prior error with a non-finite point, counts as a value):

* median, mean of the v_j; n_finite = finite values, n_inf = +inf values (k = n_finite +
  n_inf); n_trials = rows of the cell; n_ok = rows with status ok;
* ci_low, ci_high: 95% percentile-bootstrap interval of the median: draw B resamples of size k
  with replacement from (v_1..v_k), take each resample's median, report the 2.5% and 97.5%
  percentiles (linear interpolation; the nearest order statistics outward when a resample
  median is +inf). The generator is seeded from a stable hash of (seed, cell, metric), so the
  summary is reproducible and independent of row order. NaN when k < 2;
* data_regime: the data regime the method learned from (the trials' ``data_regime``).

Before that, :func:`common_subset` adds per trial the prior error on the points where every
method of the cell converged (``prior_bvs_mse_common``, ``prior_common_fraction``).

Cells are ordered by method registry order, prior registry order, dim, n_samples.
"""

from __future__ import annotations

import math

import numpy as np

from ..score import catalogue

__all__ = ["SUMMARY_COLUMNS", "CELL_KEYS", "summary_metrics", "bootstrap_median_ci", "summarize",
           "headline", "common_subset"]

CELL_KEYS = ("method", "prior", "dim", "n_samples", "t", "regime")
SUMMARY_COLUMNS = CELL_KEYS + ("data_regime", "metric", "median", "ci_low", "ci_high", "mean", "n_finite",
                               "n_inf", "n_trials", "n_ok")
_SHARED = ("prior", "prior_params", "dim", "n_samples", "t", "regime", "box", "seed", "repetition")


def summary_metrics() -> list[str]:
    """The metric columns summarised: every float and bool column of the catalogue."""
    return list(catalogue.summarised())


def common_subset(trials):
    """``trials`` with ``prior_bvs_mse_common`` and ``prior_common_fraction`` added.

    Trials that share their data (same prior, dim, n_samples, t, regime, box, data seed and
    repetition; the columns of these present in ``trials``) were scored on the same test
    points. Over the ok trials of such a group with a packed prior (``prior_ok_mask``,
    ``prior_bvs_sq_errors``), C = the points where every one of them converged with a finite
    value; then prior_bvs_mse_common = mean_{i in C} e_i of each, and prior_common_fraction =
    |C| / m. NaN where a trial has no prior, C is empty, or the groups' point counts differ.
    Trials without the packed columns (an older run) are returned as they are.
    """
    from ..score.probes import unpack_mask
    from ..score.probes import unpack_values

    if not {"prior_ok_mask", "prior_bvs_sq_errors"} <= set(trials.columns):
        return trials
    out = trials.copy()
    out["prior_bvs_mse_common"] = math.nan
    out["prior_common_fraction"] = math.nan
    if not len(trials):
        return out
    keys = [k for k in _SHARED if k in trials.columns]
    packed = trials["prior_ok_mask"].map(lambda v: isinstance(v, str) and ":" in v).astype(bool)
    if "status" in trials.columns:
        packed &= trials["status"] == "ok"
    for _, group in trials[packed].groupby(keys, sort=False, dropna=False):
        masks = {i: unpack_mask(str(v)) for i, v in group["prior_ok_mask"].items()}
        if len({m.size for m in masks.values()}) != 1:
            continue
        common = np.logical_and.reduce(list(masks.values()))
        out.loc[group.index, "prior_common_fraction"] = float(common.mean())
        if common.any():
            for i, text in group["prior_bvs_sq_errors"].items():
                out.loc[i, "prior_bvs_mse_common"] = float(unpack_values(str(text))[common].mean())
    return out


def _as_float(column) -> np.ndarray:
    """A trials column as float64: bools (True/False/None) as 1/0/NaN, text as NaN."""
    import pandas as pd

    if column.dtype == object or str(column.dtype) == "boolean":
        column = column.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)


def bootstrap_median_ci(values: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``values`` (not NaN, 1-D); NaN if < 2 values."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(n_boot, values.size), replace=True), axis=1)
    alpha = (1.0 - level) / 2.0
    if np.isfinite(medians).all():
        low, high = np.quantile(medians, [alpha, 1.0 - alpha])
    else:  # +inf medians: linear interpolation would give inf - inf
        low, high = np.quantile(medians, alpha, method="lower"), np.quantile(medians, 1.0 - alpha, method="higher")
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

    trials = common_subset(variant_labels(trials))
    metrics = [m for m in summary_metrics() if m in trials.columns] + list(catalogue.task_columns_in(trials.columns))
    rows = []
    for cell, group in trials.groupby(list(CELL_KEYS), sort=False, dropna=False) if len(trials) else ():
        n_ok = int((group["status"] == "ok").sum())
        key = dict(zip(CELL_KEYS, cell))
        regimes = group["data_regime"].dropna().astype(str) if "data_regime" in group else pd.Series(dtype=str)
        regime = next((r for r in regimes if r), "")
        ok = group[group["status"] == "ok"]  # a diverged (or failed) trial never enters the statistics
        for metric in metrics:
            vals = _as_float(ok[metric])
            vals = vals[~np.isnan(vals)]
            boot_seed = stable_int({"seed": seed, "metric": metric, **{k: str(v) for k, v in key.items()}})
            lo, hi = bootstrap_median_ci(vals, n_boot=n_boot, seed=boot_seed)
            rows.append({**key, "data_regime": regime, "metric": metric,
                         "median": float(np.median(vals)) if vals.size else math.nan,
                         "ci_low": lo, "ci_high": hi, "mean": float(vals.mean()) if vals.size else math.nan,
                         "n_finite": int(np.isfinite(vals).sum()), "n_inf": int(np.isinf(vals).sum()),
                         "n_trials": len(group), "n_ok": n_ok})
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    if not len(out):
        return out
    m_rank = _order(out["method"], _registered("methods"))
    p_rank = _order(out["prior"], _registered("priors"))
    k_rank = {m: i for i, m in enumerate(metrics)}
    out = out.assign(_m=out["method"].map(m_rank), _p=out["prior"].map(p_rank), _k=out["metric"].map(k_rank))
    out = out.sort_values(["_m", "_p", "dim", "n_samples", "t", "regime", "_k"], kind="stable")
    out = out.drop(columns=["_m", "_p", "_k"]).reset_index(drop=True)
    for c in ("dim", "n_samples", "n_finite", "n_inf", "n_trials", "n_ok"):
        out[c] = out[c].astype("int64")
    return _stamp(out, trials)


def _stamp(out, trials):
    """schema_version and run_id columns, string columns of the same dtype as trials.parquet."""
    from .. import SCHEMA_VERSION

    run_ids = sorted({str(r) for r in trials["run_id"].dropna()}) if "run_id" in trials else []
    out.insert(0, "run_id", ",".join(run_ids))
    out.insert(0, "schema_version", SCHEMA_VERSION)
    for c in out.columns:
        if out[c].dtype == object or str(out[c].dtype).startswith(("str", "string")):
            out[c] = out[c].astype("string")
    return out


def variant_labels(trials):
    """Trials whose method ran with several parameter sets (the backends axis of a grid) get the
    method label ``name[backend]`` (or ``name[<6 hex of the parameters>]``), so that summaries,
    tables and figures keep the variants apart."""
    if not len(trials) or "method_params" not in trials:
        return trials
    trials = trials.copy()
    for name, group in trials.groupby("method", sort=False):
        if group["method_params"].nunique() < 2:
            continue
        by_backend = "backend" in group and group.groupby("method_params")["backend"].nunique().le(1).all() \
            and group["backend"].nunique() == group["method_params"].nunique()
        from ..seeds import digest

        tags = group["backend"].astype(str) if by_backend else group["method_params"].map(lambda p: digest(p)[:6])
        trials.loc[group.index, "method"] = [f"{name}[{t}]" for t in tags]
    return trials


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
