"""Reconstruction error of downstream tasks against N (docs/method.md section 8; hjbench.score.tasks).

One figure per solver: panels are tasks (rows: kind and noise level sigma) by cells (columns:
prior and dim); in each panel, one line per method through the median over repetitions of
``task_{kind}_s{sigma}_{solver}_{metric}`` against n_samples (log-log, 95% band), and the
exact-prox floor ``..._exact_rel_error`` as a dashed line (the median over the cell's methods at
each N: every method of a cell solves the same signals, so the floor does not depend on the
method; it moves with N only because each cell draws its own held-out signals). Missing or
NaN cells are gaps (reasons in the notes), never interpolated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..style import TRUTH_COLOR
from ..style import MethodStyle
from ..style import paper_context
from ..style import prior_order
from ...errors import ConfigError
from ...score.catalogue import task_metric
from ...score.catalogue import task_parts
from ._common import FORMATS
from ._common import FigureResult
from ._common import decade_limits
from ._common import fitted_slope
from ._common import log_axes
from ._common import new_figure
from ._common import save_figure

__all__ = ["task_error_vs_n", "task_figures", "task_keys"]


def task_keys(summary: pd.DataFrame) -> pd.DataFrame:
    """The task columns among a long summary's metrics, parsed: metric, kind, noise, solver, name."""
    rows = [{"metric": m, **{("name" if k == "metric" else k): v for k, v in parts.items()}}
            for m in summary["metric"].unique() if (parts := task_parts(str(m))) is not None]
    return pd.DataFrame(rows, columns=["metric", "kind", "noise", "solver", "name"])


def _medians(summary: pd.DataFrame, metric: str, where: dict, ns: np.ndarray, method: str | None):
    sel = (summary["metric"] == metric) & (summary["prior"] == where["prior"]) & (summary["dim"] == where["dim"])
    if method is not None:
        sel &= summary["method"] == method
    rows = summary[sel]
    if method is None:
        return rows.groupby("n_samples")["median"].median().reindex(ns).to_numpy(float), None, None
    rows = rows.set_index("n_samples").reindex(ns)
    return rows["median"].to_numpy(float), rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)


def _panel(ax, summary, keys, where, ns, methods, style, records, notes) -> list[float]:
    """One task x cell panel: method lines and the dashed exact floor; returns the positive values."""
    metric, floor_metric, task = keys["metric"], keys["floor"], keys["task"]
    positive = []
    for method in methods:
        y, lo, hi = _medians(summary, metric, where, ns, method)
        if not np.isfinite(y).any():
            notes.append(f"{method}, {task}, {where['prior']} dim {where['dim']}: no finite {keys['name']} "
                         "(see the trials' messages: not applicable or failed)")
            continue
        shown = np.where(y > 0, y, np.nan)
        ax.plot(ns, shown, color=style.color(method), marker=style.marker(method), markersize=2.6, label=method,
                gid=f"{metric}|{where['prior']}|{where['dim']}|{method}")
        ax.fill_between(ns, np.where(lo > 0, lo, np.nan), hi, color=style.color(method), alpha=0.18, lw=0)
        slope = fitted_slope(ns, shown)
        positive += [v for v in np.concatenate([shown, hi]) if np.isfinite(v) and v > 0]
        records += [{"series": "method", "method": method, "task": task, **where, "n_samples": int(n),
                     "metric": metric, "y": shown[k], "ci_low": lo[k], "ci_high": hi[k], "slope": slope}
                    for k, n in enumerate(ns)]
    if floor_metric is not None:
        floor, _, _ = _medians(summary, floor_metric, where, ns, None)
        if np.isfinite(floor).any():
            ax.plot(ns, floor, color=TRUTH_COLOR, ls="--", lw=0.9, label="exact prox",
                    gid=f"floor|{floor_metric}|{where['prior']}|{where['dim']}")
            positive += [v for v in floor if np.isfinite(v) and v > 0]
            records += [{"series": "exact", "method": "exact prox", "task": task, **where, "n_samples": int(n),
                         "metric": floor_metric, "y": floor[k], "ci_low": np.nan, "ci_high": np.nan,
                         "slope": np.nan} for k, n in enumerate(ns)]
    return positive


def task_error_vs_n(summary: pd.DataFrame, out_dir: Path | str, *, solver: str = "fista",
                    metric: str = "rel_error", style: MethodStyle | None = None, stem: str | None = None,
                    dpi: int = 300, formats: tuple[str, ...] = FORMATS, keep_figure: bool = False) -> FigureResult:
    """Median task ``metric`` of ``solver`` against n_samples, per task (rows) and prior x dim (columns).

    Args:
        summary: the long summary (method, prior, dim, n_samples, metric, median, ci_low, ci_high)
            with task columns as metrics (hjbench.score.tasks).
        out_dir: folder for ``{stem}.pdf`` / ``.png`` (default stem ``tasks_{solver}_{metric}``).
        solver: which solver's columns to draw (one of the grid's ``[tasks] solvers``).
        metric: "rel_error" (floor drawn: exact_rel_error), "vs_exact", "psnr", "iterations",
            "converged" or "seconds" (no floor for these).

    Returns the paths, the plotted values (``data``: one row per point; ``series`` "method" or
    "exact") and notes on every gap.
    """
    keys = task_keys(summary)
    chosen = keys[(keys["solver"] == solver) & (keys["name"] == metric)].sort_values(["kind", "noise"])
    if chosen.empty:
        raise ConfigError(f"solver={solver!r}, metric={metric!r}: no task column "
                          f"task_<kind>_s<noise>_{solver}_{metric} in the summary; present solvers: "
                          f"{sorted(keys['solver'].unique())}")
    style = style or MethodStyle.for_methods(summary["method"])
    has = summary[summary["metric"].isin(chosen["metric"])]
    methods = style.sort(has["method"].unique())
    cells = sorted({(p, int(d)) for p, d in has[["prior", "dim"]].itertuples(index=False)},
                   key=lambda c: (prior_order(has["prior"]).index(c[0]), c[1]))
    nrows, ncols = len(chosen), len(cells)
    records, notes = [], []
    with paper_context():
        fig = new_figure(min(7.0, max(3.3, 1.9 * ncols)), 0.6 + 1.5 * nrows)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for i, row in enumerate(chosen.itertuples(index=False)):
            task = f"{row.kind}, sigma={row.noise:g}"
            floor = row.metric.replace(f"_{metric}", "_exact_rel_error") if metric == "rel_error" else None
            for j, (prior, dim) in enumerate(cells):
                ax = axes[i, j]
                where = {"prior": prior, "dim": dim}
                ns = np.array(sorted(summary.loc[(summary["prior"] == prior) & (summary["dim"] == dim),
                                                 "n_samples"].unique()), dtype=int)
                positive = _panel(ax, summary, {"metric": row.metric, "floor": floor, "task": task, "name": metric},
                                  where, ns, methods, style, records, notes)
                log_axes(ax, ns, decade_limits(positive))
                ax.set_title(f"{task}\n{prior}, dim {dim}", fontsize=6)
                if j == 0:
                    ax.set_ylabel(task_metric(row.metric).label.split(" (")[0], fontsize=6)
        fig.supxlabel("number of training samples $N$", fontsize=7)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=min(6, max(1, len(labels))), frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        paths = save_figure(fig, out_dir, stem or f"tasks_{solver}_{metric}", dpi=dpi, formats=formats)
    caption = (f"Downstream tasks, solver {solver}: {metric} against the number of samples N (log-log), median "
               "over repetitions with its 95% interval; dashed: the same solver with the exact prox. "
               + ("Notes: " + "; ".join(notes) + "." if notes else ""))
    return FigureResult(paths, pd.DataFrame.from_records(records), notes, caption, fig if keep_figure else None)


def task_figures(summary: pd.DataFrame, out_dir: Path | str, **kw) -> dict[str, FigureResult]:
    """:func:`task_error_vs_n` (rel_error with the exact floor) for every solver in the summary."""
    keys = task_keys(summary)
    return {s: task_error_vs_n(summary, out_dir, solver=s, **kw) for s in dict.fromkeys(keys["solver"])}
