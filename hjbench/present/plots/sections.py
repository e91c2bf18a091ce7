"""Cross-sections of learned potentials and priors, as in the paper's figures (docs/method.md sections 4, 6).

Along the first axis s e_1 and the diagonal s (1, ..., 1)/sqrt(dim), s in [-box, box]
(:func:`hjbench.data.cross_sections`), the top row shows each method's potential
psi_theta against the true psi = q - t S(., t), the bottom row each method's prior J_hat
against J and against J_bvs (the most any learner can recover). A method that provides no
potential or no prior has no curve there (never a zero line). Points where the prior's
inner solve did not converge are marked with a cross.

Two ways in:

* :func:`cross_section_figure` with fitted methods in hand;
* during a run, :func:`write_sections` right after a trial's fit (the runner does it for the
  largest n_samples of repetition 0 of each prior and dim) stores the curves as
  ``sections/<trial_id>.parquet``, which survives a kill and a resume; ``hjbench report``
  reads them back (:func:`load_sections`) and draws one figure per prior and dim
  (:func:`sections_from_table`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..style import FULL_WIDTH
from ..style import TRUTH_COLOR
from ..style import MethodStyle
from ..style import method_label
from ..style import method_regimes
from ..style import paper_context
from ._common import FORMATS
from ._common import FigureResult
from ._common import new_figure
from ._common import save_figure
from ...score.sections import SECTION_IDENTITY, SECTIONS, empty_table as _empty, section_values, truth_values

__all__ = ["section_values", "truth_values", "plot_sections", "cross_section_figure", "sections_from_table",
           "write_sections", "load_sections"]

_IDENTITY = SECTION_IDENTITY
_TRUTH = {"psi": ("potential", "-", r"$\psi$"), "J": ("prior", "-", r"$J$"),
          "J_bvs": ("prior", "--", r"$J_{\mathrm{bvs}}$")}


def plot_sections(prior: Any, values: pd.DataFrame, out_dir: Path | str, *, box: float = 4.0,
                  n_points: int = 201, stem: str | None = None, style: MethodStyle | None = None,
                  dpi: int = 300, formats: tuple[str, ...] = FORMATS, keep_figure: bool = False,
                  subtitle: str = "", methods: list[str] | None = None) -> FigureResult:
    """Draw the 2 x 2 cross-section figure of ``prior`` from the methods' ``values`` table.

    ``methods`` lists every method considered (default: those in ``values``); one with no
    rows for an output gets a note, not a curve.
    """
    truth = truth_values(prior, box=box, n_points=n_points)
    values = values.astype({"s": float, "value": float, "converged": bool})
    methods = list(dict.fromkeys(list(methods or []) + list(values["method"])))
    style = style or MethodStyle.for_methods(methods)
    methods = style.sort(methods)
    notes: list[str] = []
    drawn = []
    with paper_context():
        fig = new_figure(FULL_WIDTH, 4.1)
        axes = fig.subplots(2, 2, squeeze=False, sharex=True)
        fig.subplots_adjust(left=0.08, right=0.98, top=0.83, bottom=0.1, wspace=0.18, hspace=0.22)
        for i, quantity in enumerate(("potential", "prior")):
            for j, section in enumerate(SECTIONS):
                _section_axis(axes[i, j], truth, values, methods, style, quantity, section, box, notes, drawn)
                if i == 1:
                    axes[i, j].set_xlabel(r"$s$ (point $s\,e_1$)" if section == "axis"
                                          else r"$s$ (point $s\,(1,\dots,1)/\sqrt{n}$)")
        found = {}
        for ax in axes.ravel():
            for h, lab in zip(*ax.get_legend_handles_labels()):
                found.setdefault(lab, h)
        labels = [_TRUTH[n][2] for n in ("psi", "J", "J_bvs")] + methods
        labels = [lab for lab in labels if lab in found]
        handles = [found[lab] for lab in labels]
        regimes = method_regimes(pd.DataFrame({"method": methods}))
        shown = [method_label(lab, regimes.get(lab)) if lab in regimes else lab for lab in labels]
        fig.legend(handles, shown, loc="upper center", ncol=min(len(labels), 7), frameon=False,
                   bbox_to_anchor=(0.5, 0.96))
        title = f"{prior.name}, dim {prior.dim}, t={prior.t:g}" + (f"; {subtitle}" if subtitle else "")
        fig.suptitle(title, y=0.995, fontsize=7.5)
        stem = stem or f"cross_section_{prior.name}_d{prior.dim}"
        paths = save_figure(fig, out_dir, stem, dpi=dpi, formats=formats)
    for quantity in ("potential", "prior"):
        lacking = [m for m in methods if values[(values["method"] == m) & (values["quantity"] == quantity)].empty]
        if lacking:
            notes.append(f"no {quantity} curve for {', '.join(lacking)} (the method provides no {quantity}, "
                         "or its trial failed)")
    caption = (f"Cross-sections of {prior.name} (dim {prior.dim}) on [-{box:g}, {box:g}]: learned potentials "
               "against psi (top) and learned priors against J and J_bvs (bottom).")
    if notes:
        caption += " Notes: " + "; ".join(notes) + "."
    data = pd.concat(drawn, ignore_index=True) if drawn else pd.DataFrame()
    return FigureResult(paths, data, notes, caption, fig if keep_figure else None)


def _section_axis(ax, truth: pd.DataFrame, values: pd.DataFrame, methods: list[str], style: MethodStyle,
                  quantity: str, section: str, box: float, notes: list, drawn: list) -> None:
    """One panel: the truth curves, then each method's curve (crosses where a solve failed),
    with notes for points that did not converge or fall outside the plotted range."""
    t = truth[(truth["section"] == section) & (truth["quantity"] == quantity)]
    lo, hi = t["value"].min(), t["value"].max()
    span = max(hi - lo, 1e-12)
    ylim = (lo - 0.2 * span, hi + 0.2 * span)
    for name in ("psi", "J", "J_bvs"):
        tt = t[t["method"] == name]
        if len(tt):
            kind, ls, label = _TRUTH[name]
            ax.plot(tt["s"], tt["value"], color=TRUTH_COLOR if name != "J_bvs" else "0.5", ls=ls,
                    lw=1.4, label=label, gid=f"truth|{quantity}|{section}|{name}", zorder=1)
            drawn.append(tt.assign(series="truth"))
    for method in methods:
        v = values[(values["method"] == method) & (values["section"] == section)
                   & (values["quantity"] == quantity)]
        if v.empty:
            continue
        ax.plot(v["s"], v["value"], color=style.color(method), lw=1.0, label=method,
                gid=f"method|{quantity}|{section}|{method}", zorder=2)
        bad = v[~v["converged"].astype(bool)]
        if len(bad):
            ax.plot(bad["s"], bad["value"], ls="none", marker="x", markersize=2.5,
                    color=style.color(method), zorder=3)
            notes.append(f"{method}, {quantity} along the {section}: {len(bad)} of {len(v)} "
                         "points did not converge (crosses)")
        out = ((v["value"] < ylim[0]) | (v["value"] > ylim[1]) | ~np.isfinite(v["value"])).sum()
        if out:
            notes.append(f"{method}, {quantity} along the {section}: {out} of {len(v)} points "
                         "outside the plotted range (or not finite)")
        drawn.append(v.assign(series="method"))
    ax.set_ylim(*ylim)
    ax.set_xlim(-box, box)
    what = r"potential $\psi_\theta$" if quantity == "potential" else r"prior $\hat J$"
    ax.set_title(f"{what} along the {'first axis' if section == 'axis' else 'diagonal'}")


def cross_section_figure(prior: Any, fitted_methods: dict[str, Any], out_dir: Path | str, *,
                         box: float = 4.0, n_points: int = 201, stem: str | None = None,
                         dtype: Any = None, device: Any = "cpu", style: MethodStyle | None = None,
                         dpi: int = 300, formats: tuple[str, ...] = FORMATS, keep_figure: bool = False,
                         subtitle: str = "") -> FigureResult:
    """Evaluate ``fitted_methods`` ({name: fitted method}) along the cross-sections and draw them."""
    tables = []
    for name, method in fitted_methods.items():
        table = section_values(method, dim=prior.dim, box=box, n_points=n_points, dtype=dtype, device=device)
        tables.append(table.assign(method=name))
    values = pd.concat([t for t in tables if len(t)] or [_empty()], ignore_index=True)
    return plot_sections(prior, values, out_dir, box=box, n_points=n_points, stem=stem, style=style,
                         dpi=dpi, formats=formats, keep_figure=keep_figure, subtitle=subtitle,
                         methods=list(fitted_methods))


def sections_from_table(table: pd.DataFrame, out_dir: Path | str, *, box: float = 4.0,
                        style: MethodStyle | None = None, dpi: int = 300, formats: tuple[str, ...] = FORMATS,
                        methods: list[str] | None = None) -> list[FigureResult]:
    """One figure per (prior, prior_params, dim, t) of a stored table of :func:`section_values`
    rows (with those columns added, and optionally n_samples), e.g. from :func:`load_sections`.

    ``methods``: every method of the run; those without a curve get a note in the caption.
    """
    from ... import priors

    out = []
    keys = ["prior", "prior_params", "dim", "t"]
    for (name, params, dim, t), group in table.groupby(keys, sort=False):
        prior = priors.get(name, dim=int(dim), t=float(t), **json.loads(params or "{}"))
        n_points = int(group.groupby(["method", "section", "quantity"]).size().max())
        sub = f"N={int(group['n_samples'].max())}" if "n_samples" in group else ""
        out.append(plot_sections(prior, group, out_dir, box=box, n_points=n_points, style=style, dpi=dpi,
                                 formats=formats, subtitle=sub, methods=methods))
    return out


def write_sections(run_dir: Path | str, method: Any, identity: dict, *, box: float = 4.0, n_points: int = 201,
                   dtype: Any = None, device: Any = "cpu") -> Path:
    """Store a fitted method's cross-sections as ``run_dir/sections/<trial_id>.parquet``
    (through :meth:`hjbench.run.folder.RunFolder.write_section`, which owns the folder).

    ``identity`` is the trial's identity row (trial_id, method, prior, prior_params, dim, t,
    n_samples, repetition, ...).
    """
    from ...run.folder import RunFolder

    table = section_values(method, dim=int(identity["dim"]), box=box, n_points=n_points, dtype=dtype,
                           device=device).assign(method=identity["method"])
    for key in _IDENTITY:
        table[key] = identity[key]
    return RunFolder(run_dir).write_section(identity["trial_id"], table)


def load_sections(run_dir: Path | str) -> pd.DataFrame | None:
    """Every stored cross-section of a run (:meth:`hjbench.run.folder.RunFolder.load_sections`)."""
    from ...run.folder import RunFolder

    return RunFolder(run_dir).load_sections()
