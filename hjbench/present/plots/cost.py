"""What the methods cost: fit time against N, evaluation time per point (docs/method.md section 6).

Both figures read the long summary. Fit time hardly depends on the prior family, so the
fit-time figure has one panel per dim (and one row per device): each method's line is the
median over priors of the cells' median ``fit_seconds``, its band the range over priors.
The bars give, at the largest N of each dim, the median over priors of
``prox_seconds_per_point`` and ``prior_seconds_per_point`` on a log scale; a method without
a prior has no prior bar and an "n/a" label instead (never a zero bar).

Devices: the summary has no device column; pass ``trials`` (which do) and, when the run
used several devices, one figure per device is drawn from a per-device summary
(:func:`hjbench.present.summary.summarize`). With a single device its name goes in the title.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..style import TRUTH_COLOR
from ..style import MethodStyle
from ..style import method_label
from ..style import method_regimes
from ..style import paper_context
from ._common import (FORMATS, FigureResult, decade_limits, fitted_slope, log_axes, metric_label, new_figure,
                      save_figure)
from ._grid import row_major
from ._grid import grid_adjust
from ._grid import grid_size

__all__ = ["fit_time", "eval_time_bars", "cost_figures"]


def _per_prior(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    sub = summary[summary["metric"] == metric]
    return sub.groupby(["method", "dim", "n_samples"], sort=False)["median"].agg(
        median="median", low="min", high="max", n_priors="count").reset_index()


def fit_time(summary: pd.DataFrame, out_dir: Path | str, *, device: str = "", style: MethodStyle | None = None,
             stem: str = "fit_time", dpi: int = 300, formats: tuple[str, ...] = FORMATS,
             keep_figure: bool = False) -> FigureResult:
    """Fit seconds against N (log-log), one panel per dim, one line per method (see module doc)."""
    style = style or MethodStyle.for_methods(summary["method"])
    table, regimes = _per_prior(summary, "fit_seconds"), method_regimes(summary)
    dims = sorted(int(d) for d in summary["dim"].unique())
    methods = style.sort(summary["method"].unique())
    records, notes = [], []
    with paper_context():
        ncols = len(dims)
        fig = new_figure(*grid_size(1, ncols, figure_legend_rows=math.ceil(len(methods) / 4)))
        axes = fig.subplots(1, ncols, squeeze=False)[0]
        grid_adjust(fig, 1, ncols, figure_legend_rows=math.ceil(len(methods) / 4))
        for ax, dim in zip(axes, dims):
            ns = np.array(sorted(summary.loc[summary["dim"] == dim, "n_samples"].unique()))
            for method in methods:
                cell = table[(table["method"] == method) & (table["dim"] == dim)].set_index("n_samples").reindex(ns)
                y = cell["median"].to_numpy(float)
                if not np.isfinite(y).any():
                    notes.append(f"{method}, dim {dim}: no finite fit_seconds")
                    continue
                ax.plot(ns, y, color=style.color(method), marker=style.marker(method), markersize=2.6,
                        label=method_label(method, regimes.get(method)), gid=f"fit_seconds|{dim}|{method}")
                ax.fill_between(ns, cell["low"].to_numpy(float), cell["high"].to_numpy(float),
                                color=style.color(method), alpha=0.15, lw=0)
                slope = fitted_slope(ns, y)
                for k, n in enumerate(ns):
                    records.append({"method": method, "dim": dim, "n_samples": int(n), "device": device,
                                    "y": y[k], "low": cell["low"].iloc[k], "high": cell["high"].iloc[k],
                                    "slope": slope})
            log_axes(ax, ns, decade_limits(table.loc[table["dim"] == dim, ["median", "low", "high"]].to_numpy().ravel()))
            ax.set_title(f"dim {dim}" + (f", {device}" if device else ""))
        axes[0].set_ylabel(metric_label("fit_seconds"))
        fig.supxlabel("number of training samples $N$", y=0.01, va="bottom", fontsize=7)
        handles = [h for h in axes[0].get_legend_handles_labels()[0]]
        seen = {h.get_label() for h in handles}
        for ax in axes[1:]:
            handles += [h for h in ax.get_legend_handles_labels()[0] if h.get_label() not in seen]
            seen |= {h.get_label() for h in handles}
        ncol = min(len(handles), 4 if ncols <= 2 else 6)
        fig.legend(handles=row_major(handles, ncol), loc="upper center", bbox_to_anchor=(0.5, 1.0),
                   ncol=ncol, frameon=False)
        paths = save_figure(fig, out_dir, stem, dpi=dpi, formats=formats)
    caption = ("Fit time against N (log-log): median over prior families of the per-cell median over "
               "repetitions; band: range over prior families." + (f" Device: {device}." if device else ""))
    if notes:
        caption += " Notes: " + "; ".join(notes) + "."
    return FigureResult(paths, pd.DataFrame.from_records(records), notes, caption, fig if keep_figure else None)


def eval_time_bars(summary: pd.DataFrame, out_dir: Path | str, *, device: str = "",
                   style: MethodStyle | None = None, stem: str = "eval_time", dpi: int = 300,
                   formats: tuple[str, ...] = FORMATS, keep_figure: bool = False) -> FigureResult:
    """Prox and prior evaluation seconds per point at the largest N, per method and dim (log bars)."""
    style = style or MethodStyle.for_methods(summary["method"])
    methods, regimes = style.sort(summary["method"].unique()), method_regimes(summary)
    dims = sorted(int(d) for d in summary["dim"].unique())
    records, notes = [], []
    width = 0.8 / max(1, len(dims))
    with paper_context():
        fig = new_figure(min(7.0, max(3.3, 0.45 * len(methods) * 2 + 0.8)), 2.3)
        axes = fig.subplots(1, 2, squeeze=False, sharey=True)[0]
        fig.subplots_adjust(wspace=0.08, top=0.72, bottom=0.28)
        shades = np.linspace(0.35, 1.0, len(dims))
        for ax, metric in zip(axes, ("prox_seconds_per_point", "prior_seconds_per_point")):
            table = _per_prior(summary, metric)
            for i, method in enumerate(methods):
                for k, dim in enumerate(dims):
                    nmax = summary.loc[summary["dim"] == dim, "n_samples"].max()
                    row = table[(table["method"] == method) & (table["dim"] == dim) & (table["n_samples"] == nmax)]
                    value = float(row["median"].iloc[0]) if len(row) else math.nan
                    x = i - 0.4 + width * (k + 0.5)
                    records.append({"metric": metric, "method": method, "dim": dim, "n_samples": int(nmax),
                                    "device": device, "y": value})
                    if math.isfinite(value) and value > 0:
                        ax.bar(x, value, width=width * 0.92, color=style.color(method), alpha=float(shades[k]),
                               gid=f"{metric}|{dim}|{method}", edgecolor="none")
                    else:
                        why = "n/a" if not math.isfinite(value) else "<=0"
                        ax.text(x, 0.02, why, rotation=90, ha="center", va="bottom", fontsize=4.5,
                                color=TRUTH_COLOR, transform=ax.get_xaxis_transform())
                        if math.isfinite(value):
                            notes.append(f"{method}, dim {dim}: {metric} = {value:.3g} <= 0, not drawn on a log axis")
            ax.set_yscale("log")
            ax.set_xlim(-0.6, len(methods) - 0.4)
            ax.set_xticks(range(len(methods)), [method_label(m, regimes.get(m)) for m in methods], rotation=35,
                          ha="right")
            ax.set_title(metric_label(metric).replace(" [s / point]", "") + (f" ({device})" if device else ""))
        axes[0].set_ylabel("seconds per point")
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(color="0.3", alpha=float(a), label=f"dim {d}") for d, a in zip(dims, shades)],
                   loc="upper center", ncol=len(dims), frameon=False, title="at the largest N of each dim")
        paths = save_figure(fig, out_dir, stem, dpi=dpi, formats=formats)
    caption = ("Evaluation time per point at the largest N (log scale): median over prior families of the "
               "per-cell median over repetitions; lighter bars are smaller dims; n/a where the method does "
               "not provide the output." + (f" Device: {device}." if device else ""))
    if notes:
        caption += " Notes: " + "; ".join(notes) + "."
    return FigureResult(paths, pd.DataFrame.from_records(records), notes, caption, fig if keep_figure else None)


def cost_figures(summary: pd.DataFrame, out_dir: Path | str, *, trials: pd.DataFrame | None = None,
                 style: MethodStyle | None = None, dpi: int = 300,
                 formats: tuple[str, ...] = FORMATS) -> dict[str, FigureResult]:
    """:func:`fit_time` and :func:`eval_time_bars`, once per device found in ``trials``."""
    style = style or MethodStyle.for_methods(summary["method"])
    devices = [] if trials is None or "device" not in trials else sorted(trials["device"].dropna().unique())
    per_device = {str(devices[0]) if devices else "": summary}
    if len(devices) > 1:
        from ..summary import summarize

        per_device = {str(d): summarize(trials[trials["device"] == d]) for d in devices}
    out = {}
    for device, table in per_device.items():
        suffix = "_" + "".join(c if c.isalnum() else "-" for c in device) if len(per_device) > 1 else ""
        out[f"fit_time{suffix}"] = fit_time(table, out_dir, device=device, style=style, stem=f"fit_time{suffix}",
                                            dpi=dpi, formats=formats)
        out[f"eval_time{suffix}"] = eval_time_bars(table, out_dir, device=device, style=style,
                                                   stem=f"eval_time{suffix}", dpi=dpi, formats=formats)
    return out
