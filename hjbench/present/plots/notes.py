"""Why a point is not drawn: the status of a summary cell and a reason a reader can act on.

Statuses of one (method, prior, dim, n_samples) cell for one metric:

* ``ok``             every trial gave a finite value;
* ``partial``        some did (the median is over ``n_finite`` of ``n_trials`` repetitions);
* ``missing``        no finite value and some trial did not finish ok (failed, skipped, timeout);
* ``not_applicable`` no finite value although every trial finished ok (the method does not
                     provide the output, or the metric could not be computed: NaN + message);
* ``absent``         no row at all (the trial has not run yet, or is not in the grid);
* ``nonpositive``    a finite median <= 0, which a log axis cannot show;
* ``infinite``       a median of +inf: most repetitions have an infinite error (a prior that
                     is not finite at some test point; :mod:`hjbench.score.metrics`).

A cell is *optimisation-limited* (:func:`opt_limited_cells`) when the median over its
repetitions of the bool column ``opt_limited`` is above 1/2: most repetitions had a training
error not well below the held-out error (docs/method.md section 6). Figures draw such points hollow and
leave them out of fitted slopes; tables mark them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["classify", "cell_reason", "opt_limited_cells", "DRAWN", "GAP", "FLAG_KEYS"]

DRAWN = ("ok", "partial")
GAP = ("missing", "absent", "not_applicable", "nonpositive", "infinite")
FLAG_KEYS = ("method", "prior", "dim", "n_samples", "t", "regime")


def classify(cell: pd.DataFrame) -> np.ndarray:
    """Status of each row of ``cell`` (summary rows of one metric, NaN rows where absent)."""
    n_trials = cell["n_trials"].to_numpy(float)
    n_finite = cell["n_finite"].to_numpy(float)
    if "n_inf" in cell:
        n_finite = n_finite + np.nan_to_num(cell["n_inf"].to_numpy(float))
    n_ok = cell["n_ok"].to_numpy(float)
    median = cell["median"].to_numpy(float)
    out = np.full(len(cell), "ok", dtype=object)
    out[n_finite < n_trials] = "partial"
    out[np.isfinite(median) & (median <= 0)] = "nonpositive"
    out[np.isposinf(median)] = "infinite"
    none = ~(n_finite > 0)
    out[none & (n_ok < n_trials)] = "missing"
    out[none & (n_ok >= n_trials)] = "not_applicable"
    out[~np.isfinite(n_trials)] = "absent"
    return out


def _cell_trials(trials: pd.DataFrame | None, method: str, where: dict, n: int) -> pd.DataFrame | None:
    if trials is None or len(trials) == 0:
        return None
    mask = (trials["method"] == method) & (trials["prior"] == where["prior"]) \
        & (trials["dim"] == where["dim"]) & (trials["n_samples"] == n)
    for key in ("t", "regime"):
        if key in where and key in trials:
            mask &= trials[key] == where[key]
    return trials[mask.fillna(False).astype(bool)]


def _status_text(rows: pd.DataFrame) -> str:
    bad = rows[rows["status"] != "ok"]
    parts = []
    for status, group in bad.groupby("status", sort=True):
        messages = [m for m in group["message"].fillna("").astype(str) if m]
        first = f" ({messages[0]})" if messages else ""
        parts.append(f"{status} x{len(group)}{first}")
    return ", ".join(parts)


def cell_reason(status: str, row: pd.Series, trials: pd.DataFrame | None, method: str,
                where: dict, n: int, metric: str) -> str:
    """A one-line reason for a cell that is not drawn as a plain point ('' for ``ok``)."""
    if status == "ok":
        return ""
    if status == "absent":
        return "no trial in the run yet (still running, or not in the grid)"
    if status == "nonpositive":
        return f"median {metric} = {row['median']:.3g} <= 0 cannot be drawn on a log axis"
    if status == "infinite":
        return (f"median {metric} is +inf: in most repetitions the output is not finite at some point "
                "(see the coverage beside it)")
    rows = _cell_trials(trials, method, where, n)
    counts = f"{int(row['n_ok'])} of {int(row['n_trials'])} trials ok"
    if status == "partial":
        extra = _status_text(rows) if rows is not None else ""
        return f"median of {int(row['n_finite'])} of {int(row['n_trials'])} repetitions" + \
            (f"; {extra}" if extra else "")
    if status == "missing":
        text = _status_text(rows) if rows is not None else ""
        return text or f"{counts}, no finite {metric}"
    messages = [] if rows is None else [m for m in rows["message"].fillna("").astype(str) if m]
    return f"{metric} is NaN in every trial" + (f": {messages[0]}" if messages else "") \
        if not math.isnan(row["n_trials"]) else "no value"


def opt_limited_cells(summary: pd.DataFrame) -> set[tuple]:
    """Keys (method, prior, dim, n_samples, t, regime) of the optimisation-limited cells: median
    of ``opt_limited`` over repetitions > 1/2 (empty when the summary has no such rows)."""
    rows = summary[(summary["metric"] == "opt_limited") & (summary["median"] > 0.5)]
    return {tuple(r) for r in rows[list(FLAG_KEYS)].itertuples(index=False)}
