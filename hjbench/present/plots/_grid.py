"""A faceted log-log grid of one summary metric against n_samples (the workhorse of plots).

Panels are priors (columns) by dims (rows); in each, one line per method through the cell
medians with the 95% band ci_low..ci_high, optionally a dashed bound and a horizontal
reference line. Cells are put on the panel's full n_samples grid first, so a missing cell is
a NaN in the line (a gap, never an interpolation), marked by a cross at the bottom edge;
a median <= 0, which a log axis cannot show, is marked by a triangle there and reported.
Optimisation-limited cells (:func:`.notes.opt_limited_cells`) are drawn as open markers and
left out of the fitted slopes; the figure legend names each method with its data regime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..style import COLUMN_WIDTH
from ..style import FULL_WIDTH
from ..style import TRUTH_COLOR
from ..style import OPT_LIMITED_NOTE
from ..style import MethodStyle
from ..style import method_label
from ..style import method_regimes
from ..style import paper_context
from ..style import prior_order
from ._common import FORMATS
from ...errors import ConfigError
from ._common import FigureResult
from ._common import decade_limits
from ._common import fitted_slope
from ._common import log_axes
from ._common import new_figure
from ._common import save_figure
from .notes import DRAWN
from .notes import GAP
from .notes import cell_reason
from .notes import classify
from .notes import opt_limited_cells

__all__ = ["line_grid", "panel_keys", "grid_size", "grid_adjust", "row_major"]


def panel_keys(summary: pd.DataFrame) -> tuple[list[tuple], list[int]]:
    """Column keys (prior, t, regime) in prior registry order, and the sorted dims."""
    cols = summary[["prior", "t", "regime"]].drop_duplicates()
    order = {p: i for i, p in enumerate(prior_order(summary["prior"]))}
    cols = sorted(map(tuple, cols.itertuples(index=False)), key=lambda k: (order[k[0]], k[1], str(k[2])))
    return cols, sorted(int(d) for d in summary["dim"].unique())


_LEFT, _RIGHT, _WSPACE, _PANEL_H, _ROW = 0.5, 0.08, 0.42, 1.2, 0.085  # inches
LEGEND_COLUMNS = 3  # entries per row of a panel's slope legend


def _margins(panel_legend_rows: int, figure_legend_rows: int) -> tuple[float, float, float]:
    """(top, bottom, hspace) in inches: figure legend above; tick labels, slope legends,
    the panel titles below them, and the shared x label at the very bottom."""
    below = 0.2 + _ROW * panel_legend_rows
    return 0.26 + _ROW * 1.35 * figure_legend_rows, below + 0.18, below + 0.2


def grid_size(nrows: int, ncols: int, *, panel_legend_rows: int = 0,
              figure_legend_rows: int = 1) -> tuple[float, float]:
    """Figure (width, height) in inches: a paper column for one or two panels, else full width."""
    width = min(FULL_WIDTH, max(COLUMN_WIDTH, 1.75 * ncols))
    top, bottom, hspace = _margins(panel_legend_rows, figure_legend_rows)
    return width, top + nrows * _PANEL_H + (nrows - 1) * hspace + bottom


def grid_adjust(fig, nrows: int, ncols: int, *, panel_legend_rows: int = 0,
                figure_legend_rows: int = 1) -> None:
    """Place the panels with fixed margins in inches (cheaper and steadier than a layout engine)."""
    width, height = fig.get_size_inches()
    top, bottom, hspace = _margins(panel_legend_rows, figure_legend_rows)
    panel_w = (width - _LEFT - _RIGHT - (ncols - 1) * _WSPACE) / ncols
    fig.subplots_adjust(left=_LEFT / width, right=1 - _RIGHT / width, bottom=bottom / height,
                        top=1 - top / height, wspace=_WSPACE / panel_w, hspace=hspace / _PANEL_H)


def _title(key: tuple, dim: int, vary_t: bool, vary_regime: bool) -> str:
    prior, t, regime = key
    extra = (f", t={t:g}" if vary_t else "") + (f", {regime}" if vary_regime else "")
    return f"{prior}{extra}, dim {dim}"


def line_grid(summary: pd.DataFrame, metric: str, *, out_dir: Path | str, stem: str, ylabel: str,
              style: MethodStyle | None = None, bound_metric: str | None = None,
              hline: float | None = None, trials: pd.DataFrame | None = None,
              dpi: int = 300, formats: tuple[str, ...] = FORMATS, keep_figure: bool = False,
              what: str = "", methods: list[str] | None = None) -> FigureResult:
    """Draw ``metric`` of the long ``summary`` against n_samples; see the module docstring.

    ``methods`` restricts the lines to those methods (e.g. one data regime); default: all."""
    sub = summary[summary["metric"] == metric]
    if sub.empty:
        raise ConfigError(f"metric={metric!r} has no rows in the summary; metrics present: "
                          f"{sorted(summary['metric'].unique())}")
    style = style or MethodStyle.for_methods(summary["method"])
    methods = style.sort(methods if methods is not None else summary["method"].unique())
    flags, regimes = opt_limited_cells(summary), method_regimes(summary)
    cols, dims = panel_keys(summary)
    vary_t, vary_regime = summary["t"].nunique() > 1, summary["regime"].nunique() > 1
    nrows, ncols = len(dims), len(cols)
    records, notes, not_applicable = [], [], {}
    n_entries = len(methods) + LEGEND_COLUMNS * (bound_metric is not None)
    with paper_context():
        fig = new_figure(*grid_size(nrows, ncols, panel_legend_rows=math.ceil(n_entries / LEGEND_COLUMNS),
                                    figure_legend_rows=math.ceil((len(methods) + 4) / (6 if ncols > 2 else 4))))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        grid_adjust(fig, nrows, ncols, panel_legend_rows=math.ceil(n_entries / LEGEND_COLUMNS),
                    figure_legend_rows=math.ceil((len(methods) + 4) / (6 if ncols > 2 else 4)))
        for i, dim in enumerate(dims):
            for j, key in enumerate(cols):
                ax = axes[i, j]
                at = ((summary["prior"] == key[0]) & (summary["t"] == key[1])
                      & (summary["regime"] == key[2]) & (summary["dim"] == dim))
                ns = np.array(sorted(summary.loc[at, "n_samples"].unique()), dtype=float)
                panel = _Panel()
                for method in _panel_lines(ax, panel, summary, sub[at[sub.index]], at, key, dim, ns, methods, style,
                                           metric, trials, flags, bound_metric, hline):
                    not_applicable[method] = True
                title = _title(key, dim, vary_t, vary_regime)
                notes += [f"{m}, {title}, N={n}: {reason}" for m, n, reason in panel.gaps]
                records += panel.records
                ylim = decade_limits(panel.positive)
                _finish_panel(ax, panel, ylim[0], notes, metric, key, dim)
                log_axes(ax, ns, ylim)
                ax.set_title(title)
                if j == 0:
                    ax.set_ylabel(ylabel)
        fig.supxlabel("number of training samples $N$", y=0.01, va="bottom", fontsize=7)
        _figure_legend(fig, style, methods, bound_metric, hline, records, regimes)
        paths = save_figure(fig, out_dir, stem, dpi=dpi, formats=formats)
    shown = {r["method"] for r in records}
    notes += [f"{m}: {metric} not applicable (the method does not provide this output); no line drawn"
              for m in not_applicable if m not in shown]
    if any(r.get("opt_limited") for r in records):
        notes.append(OPT_LIMITED_NOTE)
    caption = (f"{what or metric} against the number of samples N (log-log), median over repetitions with "
               "its 95% bootstrap interval; legend values are least-squares slopes of log median on log N. "
               "Crosses at the bottom mark missing cells (gaps, not interpolated); triangles mark values <= 0 "
               "that a log axis cannot show." + (" Notes: " + "; ".join(notes) + "." if notes else ""))
    return FigureResult(paths, pd.DataFrame.from_records(records), notes, caption, fig if keep_figure else None)


def _panel_lines(ax, panel: "_Panel", summary, panel_rows, at, key, dim, ns, methods, style, metric, trials, flags,
                 bound_metric, hline) -> list[str]:
    """Every method's line (optimisation-limited cells flagged), the bound and the reference line
    of one panel; returns the methods for which the metric is not applicable."""
    where = dict(prior=key[0], t=key[1], regime=key[2], dim=dim)
    lacking = []
    for method in methods:
        cell = panel_rows[panel_rows["method"] == method].set_index("n_samples").reindex(ns.astype(int))
        flagged = np.array([(method, key[0], dim, int(n), key[1], key[2]) in flags for n in ns], dtype=bool)
        if not _method_line(ax, panel, cell, method, ns, style, metric, where, trials, flagged):
            lacking.append(method)
    if bound_metric is not None:
        _bound_line(ax, panel, summary, at, bound_metric, ns, where)
    if hline is not None:
        ax.axhline(hline, color=TRUTH_COLOR, lw=0.8, ls=":", gid=f"reference|{hline:g}")
        panel.positive.append(hline)
    return lacking


@dataclass
class _Panel:
    """What one panel collects while its lines are drawn."""

    positive: list = field(default_factory=list)   # values that set the y-limits
    handles: list = field(default_factory=list)    # (line, slope label) for the panel legend
    drawn: list = field(default_factory=list)      # (line, ci_low, ci_high, y, status)
    records: list = field(default_factory=list)    # plotted values, one per point
    gaps: list = field(default_factory=list)       # (method, N, reason) of every gap
    bound_title: str | None = None


def _method_line(ax, panel: _Panel, cell: pd.DataFrame, method: str, ns: np.ndarray, style: MethodStyle,
                 metric: str, where: dict, trials: pd.DataFrame | None, flagged: np.ndarray) -> bool:
    """Draw one method's medians (gaps as NaN; ``flagged`` points as open markers, not in the
    slope); False if the output is not applicable here."""
    status = classify(cell)
    if not np.isin(status, ["ok", "partial", "nonpositive"]).any() and (status == "not_applicable").any():
        return False
    y = np.where(np.isin(status, DRAWN), cell["median"].to_numpy(float), np.nan)
    lo, hi = cell["ci_low"].to_numpy(float), cell["ci_high"].to_numpy(float)
    slope = fitted_slope(ns, np.where(flagged, np.nan, y))
    gid = f"{metric}|{where['prior']}|{where['dim']}|{method}"
    (line,) = ax.plot(ns, y, color=style.color(method), marker=style.marker(method), markersize=2.6,
                      label=method, gid=gid, markevery=[int(k) for k in np.flatnonzero(~flagged)])
    if (flagged & np.isfinite(y)).any():
        ax.plot(ns[flagged], y[flagged], ls="none", marker=style.marker(method), markersize=2.6, mfc="none",
                color=style.color(method), gid=f"open|{gid}")
    panel.handles.append((line, f"{slope:+.2f}" if math.isfinite(slope) else "n/a"))
    panel.drawn.append((line, lo, hi, y, status))
    panel.positive += [v for v in np.concatenate([y, lo, hi]) if np.isfinite(v) and v > 0]
    for k, n in enumerate(ns.astype(int)):
        reason = cell_reason(status[k], cell.iloc[k], trials, method, where, int(n), metric)
        if status[k] in GAP:
            panel.gaps.append((method, int(n), reason))
        panel.records.append({"series": "method", "method": method, **where, "n_samples": int(n),
                              "metric": metric, "median": cell["median"].iloc[k], "ci_low": lo[k],
                              "ci_high": hi[k], "y": y[k], "status": status[k], "reason": reason, "slope": slope,
                              "opt_limited": bool(flagged[k])})
    return True


def _bound_line(ax, panel: _Panel, summary: pd.DataFrame, at: pd.Series, bound_metric: str, ns: np.ndarray,
                where: dict) -> None:
    """The a priori bound of the panel (the same for every method of a cell: their median)."""
    rows = summary[at & (summary["metric"] == bound_metric)]
    b = rows.groupby("n_samples")["median"].median().reindex(ns.astype(int)).to_numpy(float)
    theory = summary[at & (summary["metric"] == "theoretical_slope")]["median"].median()
    if not np.isfinite(b).any():
        return
    ax.plot(ns, b, color=TRUTH_COLOR, ls="--", lw=0.9, label="bound",
            gid=f"bound|{bound_metric}|{where['prior']}|{where['dim']}")
    slope = fitted_slope(ns, b)
    panel.bound_title = f"slopes; bound {slope:+.2f}" + (f" (theory {theory:+.2f})" if np.isfinite(theory) else "")
    panel.positive += [v for v in b if np.isfinite(v) and v > 0]
    for k, n in enumerate(ns.astype(int)):
        panel.records.append({"series": "bound", "method": "bound", **where, "n_samples": int(n),
                              "metric": bound_metric, "median": b[k], "ci_low": np.nan, "ci_high": np.nan,
                              "y": b[k], "status": "ok", "reason": "", "slope": slope, "opt_limited": False})


def _finish_panel(ax, panel: _Panel, floor: float, notes: list, metric: str, key: tuple, dim: int) -> None:
    """Bands (lower ends <= 0 clipped to the panel floor, reported), edge markers, legend."""
    import matplotlib.transforms as mtransforms

    edge = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    handles, bound_title = panel.handles, panel.bound_title
    for line, lo, hi, y, status in panel.drawn:
        ns = np.asarray(line.get_xdata(), dtype=float)
        shown = np.isfinite(y)
        clipped = shown & np.isfinite(lo) & (lo <= 0)
        for n in ns[clipped]:
            notes.append(f"{line.get_label()}, {key[0]}, dim {dim}, N={int(n)}: {metric} 95% interval "
                         f"reaches <= 0; band clipped at the panel floor {floor:.1e}")
        low = np.where(clipped, floor, lo)
        ax.fill_between(ns, np.where(shown, low, np.nan), np.where(shown, hi, np.nan),
                        color=line.get_color(), alpha=0.18, lw=0, gid=f"band|{line.get_gid()}")
        for marker, kinds in (("x", ("missing", "absent", "not_applicable", "infinite")), ("v", ("nonpositive",))):
            at = np.isin(status, kinds)
            if at.any():
                ax.plot(ns[at], np.full(at.sum(), 0.04), ls="none", marker=marker, markersize=3.2,
                        color=line.get_color(), transform=edge, clip_on=False,
                        gid=f"edge-{marker}|{line.get_gid()}")
    if handles or bound_title:  # below the panel, outside the data: slopes in method colours
        entries = row_major(handles, LEGEND_COLUMNS)
        legend = ax.legend([h for h, _ in entries], [t for _, t in entries], title=bound_title,
                           loc="upper center", bbox_to_anchor=(0.5, -0.13),
                           ncol=max(1, min(LEGEND_COLUMNS, len(entries))), fontsize=5, title_fontsize=5,
                           handlelength=1.0, handletextpad=0.3, columnspacing=0.7, borderpad=0.2,
                           labelspacing=0.15, frameon=False, alignment="left")
        legend.set_gid(f"slopes|{metric}|{key[0]}|{dim}")


def row_major(items: list, ncol: int) -> list:
    """Reorder so that matplotlib's column-first legend fill reads row by row."""
    ncol = min(ncol, len(items))
    nrow = math.ceil(len(items) / ncol) if items else 0
    rows = [items[r * ncol:(r + 1) * ncol] for r in range(nrow)]
    return [row[c] for c in range(ncol) for row in rows if c < len(row)]


def _figure_legend(fig, style, methods, bound_metric, hline, records, regimes) -> None:
    """One legend for the figure: methods (with their data regime) that have a line, then band,
    bound and markers."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    with_line = {r["method"] for r in records if r["series"] == "method"}
    shown = [m for m in methods if m in with_line]
    handles = [Line2D([], [], color=style.color(m), marker=style.marker(m), markersize=3,
                      label=method_label(m, regimes.get(m))) for m in shown]
    handles.append(Patch(color="0.5", alpha=0.3, label="95% interval"))
    if bound_metric is not None and any(r["series"] == "bound" for r in records):
        handles.append(Line2D([], [], color=TRUTH_COLOR, ls="--", label="a priori bound"))
    if hline is not None:
        handles.append(Line2D([], [], color=TRUTH_COLOR, ls=":", label=f"ratio = {hline:g}"))
    statuses = {r["status"] for r in records}
    if statuses & {"missing", "absent", "not_applicable"}:
        handles.append(Line2D([], [], color="0.3", ls="none", marker="x", label="missing cell"))
    if any(r.get("opt_limited") for r in records):
        handles.append(Line2D([], [], color="0.3", ls="none", marker="o", mfc="none",
                              label="optimisation-limited (not in slopes)"))
    if "infinite" in statuses:
        handles.append(Line2D([], [], color="0.3", ls="none", marker="x", label=r"median $= +\infty$"))
    if "nonpositive" in statuses:
        handles.append(Line2D([], [], color="0.3", ls="none", marker="v", label=r"value $\leq 0$"))
    ncol = min(len(handles), 6 if fig.get_size_inches()[0] > 5 else 4)
    fig.legend(handles=row_major(handles, ncol), loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=ncol,
               frameon=False, handlelength=1.6, columnspacing=1.0)
