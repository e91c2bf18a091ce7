"""The metric catalogue: one record per results column, read by scoring, summaries, tables,
figures and the CLI (docs/method.md section 6).

A :class:`Metric` says what a column means and how it is shown: its labels (figure, plain
text, LaTeX), its group, its kind (``float``, ``bool``, ``str`` or ``blob``: packed per-point
data, never summarised), the raw/relative pairing of an error, the bound in the same units,
the coverage column that must be shown beside it, the training-set counterpart of a held-out
error, whether it is a headline error and whether lower is better. ``stage="trial"`` columns
are written by :func:`hjbench.score.metrics.evaluate` into every trial row;
``stage="summary"`` columns are derived per cell at summary time
(:func:`hjbench.present.summary.common_subset`). The columns of downstream tasks are generated
from their names (:mod:`.task_columns`, re-exported here).

    >>> get("prior_bvs_rel_mse").coverage
    'prior_coverage'
    >>> FAMILIES["forward"]
    ('forward_rel_mse', 'forward_mse')
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .task_columns import (
    TASK_EXACT_METRICS,
    TASK_METRICS,
    task_column,
    task_columns_in,
    task_metric,
    task_parts,
)

__all__ = ["Metric", "CATALOGUE", "METRIC_COLUMNS", "FAMILIES", "GROUPS", "KINDS", "REGIME_LABELS", "get",
           "label", "columns", "summarised", "bound_for", "coverage_for", "regime_label", "problems",
           "TASK_METRICS", "TASK_EXACT_METRICS", "task_column", "task_parts", "task_metric", "task_columns_in"]

GROUPS = ("forward", "prox", "prior", "hull", "certificate", "bound", "validity", "training", "cost", "task")
KINDS = ("float", "bool", "str", "blob")
REGIME_LABELS = {"values": "[values]", "values_and_gradients": "[values+grad]", "prox_pairs": "[prox pairs]"}


@dataclass(frozen=True)
class Metric:
    """One results column (see the module docstring for the fields' meaning)."""

    column: str
    label: str                      # figure label (matplotlib mathtext allowed)
    text: str                       # plain-text label: Markdown/HTML tables, CLI
    group: str
    kind: str = "float"
    latex: str = ""                 # LaTeX table header; defaults to ``text``
    raw: str | None = None          # a relative error's raw counterpart
    relative: str | None = None     # a raw error's relative counterpart
    bound: str | None = None        # the bound column in the same units
    coverage: str | None = None     # the coverage column shown beside this one
    train: str | None = None        # the training-set counterpart of a held-out error
    headline: bool = False
    lower_is_better: bool | None = True
    scale: float = 1.0              # display factor in tables (seconds -> microseconds)
    stage: str = "trial"
    doc: str = ""

    @property
    def tex(self) -> str:
        return self.latex or self.text


def _err(column, label, text, group, doc, **kw) -> Metric:
    return Metric(column, label, text, group, doc=doc, **kw)


_PSI, _JH, _JB = r"$\psi_\theta$", r"$\hat J$", r"$J_{\mathrm{bvs}}$"
_ENTRIES = [
    # forward: the learned potential against psi = q - t S(., t)
    _err("forward_mse", rf"MSE of {_PSI} vs $\psi$", "forward MSE", "forward",
         "mean (psi_theta - psi)^2 over finite outputs",
         relative="forward_rel_mse", bound="bound_value", coverage="forward_coverage", train="forward_train_mse",
         latex=r"$\psi$ MSE"),
    _err("forward_rel_mse", rf"relative MSE of {_PSI}", "forward rel. MSE", "forward", "forward_mse / var(psi)",
         raw="forward_mse", bound="bound_rel_value", coverage="forward_coverage", train="forward_train_rel_mse",
         headline=True, latex=r"$\psi$ rel. MSE"),
    _err("forward_coverage", rf"coverage of {_PSI}", "forward coverage", "forward",
         "fraction of test points with a finite potential", lower_is_better=False),
    _err("forward_axis_mse", rf"MSE of {_PSI} on the axis", "forward MSE (axis)", "forward",
         "forward MSE on the axis cross-section", coverage="forward_axis_coverage"),
    _err("forward_axis_coverage", "axis coverage of the potential", "forward coverage (axis)", "forward",
         "fraction of axis points with a finite potential", lower_is_better=False),
    _err("forward_train_mse", rf"training MSE of {_PSI}", "forward train MSE", "forward",
         "forward_mse on the training inputs", relative="forward_train_rel_mse"),
    _err("forward_train_rel_mse", rf"training relative MSE of {_PSI}", "forward train rel. MSE", "forward",
         "forward_train_mse / var(psi on train)", raw="forward_train_mse"),
    # prox
    _err("prox_mse", r"prox MSE, $\|\cdot\|^2$", "prox MSE", "prox", "mean ||P_theta - P||^2 over finite outputs",
         relative="prox_rel_mse", coverage="prox_coverage", train="prox_train_mse"),
    _err("prox_rel_mse", "relative prox MSE", "prox rel. MSE", "prox", "prox_mse / total variance of P",
         raw="prox_mse",
         coverage="prox_coverage", train="prox_train_rel_mse", headline=True),
    _err("prox_coverage", "prox coverage", "prox coverage", "prox", "fraction of test points with a finite prox",
         lower_is_better=False),
    _err("prox_train_mse", "training prox MSE", "prox train MSE", "prox", "prox_mse on the training inputs",
         relative="prox_train_rel_mse"),
    _err("prox_train_rel_mse", "training relative prox MSE", "prox train rel. MSE", "prox",
         "prox_train_mse / variance", raw="prox_train_mse"),
    # prior at y = prox(x_test): every point stays in
    _err("prior_bvs_mse", rf"MSE of {_JH} vs {_JB}", "prior MSE vs J_bvs", "prior",
         "over all test points; +inf if any value is non-finite",
         relative="prior_bvs_rel_mse", coverage="prior_coverage", latex=r"prior MSE vs $J_{\mathrm{bvs}}$"),
    _err("prior_bvs_rel_mse", rf"relative MSE of {_JH} vs {_JB}", "prior rel. MSE vs J_bvs", "prior",
         "prior_bvs_mse / var(J_bvs)",
         raw="prior_bvs_mse", coverage="prior_coverage", headline=True,
         latex=r"prior rel. MSE vs $J_{\mathrm{bvs}}$"),
    _err("prior_bvs_centered_rel_mse", rf"relative MSE of {_JH} vs {_JB} up to a constant", "prior centred rel. MSE",
         "prior",
         "var(J_hat - J_bvs) / var(J_bvs)", coverage="prior_coverage"),
    _err("prior_J_mse", rf"MSE of {_JH} vs $J$", "prior MSE vs J", "prior", "over all test points",
         relative="prior_J_rel_mse", coverage="prior_coverage"),
    _err("prior_J_rel_mse", rf"relative MSE of {_JH} vs $J$", "prior rel. MSE vs J", "prior", "prior_J_mse / var(J)",
         raw="prior_J_mse", coverage="prior_coverage"),
    _err("prior_bvs_mse_converged", rf"MSE of {_JH} vs {_JB}, converged points", "prior MSE (converged)", "prior",
         "prior_bvs_mse over the method's own converged, finite points", coverage="prior_coverage"),
    _err("prior_coverage", "prior coverage", "prior coverage", "prior",
         "fraction of test points converged and finite", lower_is_better=False),
    _err("prior_axis_bvs_mse", rf"MSE of {_JH} vs {_JB} on the axis", "prior MSE (axis)", "prior", "all axis points",
         coverage="prior_axis_coverage"),
    _err("prior_axis_coverage", "prior coverage on the axis", "prior coverage (axis)", "prior",
         "fraction of axis points converged and finite", lower_is_better=False),
    _err("prior_n_failed", "failed prior solves", "prior failed solves", "prior",
         "test points whose solve did not converge"),
    _err("prior_iterations_mean", "prior solve iterations", "prior iterations", "prior", "mean inner iterations", ),
    Metric("prior_ok_mask", "", "", "prior", kind="blob", lower_is_better=None,
           doc="packed converged-and-finite mask (probes.pack_mask)"),
    Metric("prior_bvs_sq_errors", "", "", "prior", kind="blob", lower_is_better=None,
           doc="per-point squared errors vs J_bvs (probes.pack_values)"),
    _err("prior_bvs_mse_common", rf"MSE of {_JH} vs {_JB}, common points", "prior MSE (common)", "prior",
         "over the points where every method of the cell converged", coverage="prior_common_fraction",
         stage="summary"),
    _err("prior_common_fraction", "common-subset fraction", "common fraction", "prior",
         "fraction of test points where every method converged",
         lower_is_better=False, stage="summary"),
    # hull probe: points of the box off range(prox), J_bvs < J
    _err("prior_hull_bvs_mse", rf"MSE of {_JH} vs {_JB} off range(prox)", "hull MSE vs J_bvs", "hull",
         "prior error at hull-probe points",
         coverage="prior_hull_coverage", latex=r"hull MSE vs $J_{\mathrm{bvs}}$"),
    _err("prior_hull_J_mse", rf"MSE of {_JH} vs $J$ off range(prox)", "hull MSE vs J", "hull",
         "prior error vs J at hull-probe points", coverage="prior_hull_coverage"),
    _err("prior_hull_n", "hull-probe points", "hull points", "hull", "points with J_bvs < J - tol found",
         lower_is_better=None),
    _err("prior_hull_coverage", "hull-probe coverage", "hull coverage", "hull", "fraction converged and finite",
         lower_is_better=False),
    # certificates
    _err("prox_residual", "preimage residual", "prox residual", "certificate", "mean ||grad psi_theta(x*(y)) - y||"),
    _err("fy_gap_mean", "Fenchel-Young gap (mean)", "FY gap mean", "certificate",
         "psi_theta + g_theta - <x, z>, >= 0", lower_is_better=None),
    _err("fy_gap_min", "Fenchel-Young gap (min)", "FY gap min", "certificate", "minimum FY gap; < 0 is inconsistent",
         lower_is_better=None),
    _err("cert_value", "a posteriori certificate", "certificate", "certificate", "a posteriori bound on forward MSE"),
    Metric("cert_holds", "", "certificate holds", "certificate", kind="bool", lower_is_better=None),
    # the a priori bound (docs/method.md section 7)
    Metric("bound_name", "", "bound", "bound", kind="str", lower_is_better=None),
    _err("bound_value", "a priori bound on the forward MSE", "bound", "bound", "a priori max-plus bound"),
    _err("bound_rel_value", "a priori bound, relative", "bound (rel.)", "bound", "bound_value / var(psi)"),
    _err("bound_ratio", "forward MSE / a priori bound", "MSE / bound", "bound", "forward_mse / bound_value"),
    Metric("bound_holds", "", "bound holds", "bound", kind="bool", lower_is_better=None),
    _err("theoretical_slope", "theoretical slope", "theory slope", "bound", "log-log slope of the bound",
         lower_is_better=None),
    # validity: training error beside held-out error (docs/method.md section 6)
    _err("train_test_ratio", "training / held-out error", "train/test ratio", "validity",
         "train rel. MSE / held-out rel. MSE of the headline error", lower_is_better=None),
    Metric("opt_limited", "", "optimisation-limited", "validity", kind="bool", lower_is_better=None,
           doc="train_test_ratio > opt_limited_ratio"),
    Metric("headline_error", "", "headline error", "validity", kind="str", lower_is_better=None,
           doc="forward or prox"),
    Metric("data_regime", "", "data regime", "validity", kind="str", lower_is_better=None),
    # the training record
    _err("steps_run", "optimiser steps", "steps", "training", "sum over stages", lower_is_better=None),
    Metric("stop_reason", "", "stop reason", "training", kind="str", lower_is_better=None),
    Metric("budget_mode", "", "budget mode", "training", kind="str", lower_is_better=None),
    Metric("backend", "", "backend", "training", kind="str", lower_is_better=None),
    _err("ensemble_size", "ensemble size", "ensemble", "training", "members", lower_is_better=None),
    Metric("diverged", "", "diverged", "training", kind="bool", lower_is_better=None),
    # cost
    _err("fit_seconds", "fit time [s]", "fit [s]", "cost", "wall seconds of fit"),
    _err("prox_seconds_per_point", "prox time [s / point]", "prox [µs/point]", "cost", "seconds per point",
         scale=1e6, latex=r"prox [$\mu$s/pt]"),
    _err("prior_seconds_per_point", "prior time [s / point]", "prior [µs/point]", "cost", "seconds per point",
         scale=1e6, latex=r"prior [$\mu$s/pt]"),
    _err("peak_memory_mb", "peak memory [MB]", "peak memory [MB]", "cost", "MiB", latex="memory [MB]"),
]

CATALOGUE: dict[str, Metric] = {m.column: m for m in _ENTRIES}
METRIC_COLUMNS: tuple[str, ...] = tuple(m.column for m in _ENTRIES if m.stage == "trial")
# error families of docs/method.md section 6: name -> (relative headline metric, raw metric)
FAMILIES: dict[str, tuple[str, str]] = {m.group: (m.column, m.raw) for m in _ENTRIES if m.headline}


def get(column: str) -> Metric:
    """The catalogue record of ``column``; ConfigError naming the allowed columns otherwise."""
    found = CATALOGUE.get(column) or task_metric(column)
    if found is None:
        raise ConfigError(f"metric={column!r} is not in the metric catalogue; allowed: "
                          f"{', '.join(CATALOGUE)}")
    return found


def label(column: str, kind: str = "figure") -> str:
    """Label of ``column`` for a ``"figure"`` (mathtext), ``"text"`` or ``"latex"``; unknown
    columns get their name with spaces."""
    m = CATALOGUE.get(column) or task_metric(column)
    if m is None:
        return column.replace("_", " ")
    return {"figure": m.label or m.text, "text": m.text, "latex": m.tex}[kind] or column.replace("_", " ")


def columns(*, group: str | None = None, kind: str | None = None, stage: str | None = None,
            headline: bool | None = None) -> tuple[str, ...]:
    """Catalogue columns filtered by group, kind, stage and headline flag, in catalogue order."""
    return tuple(m.column for m in _ENTRIES if (group is None or m.group == group)
                 and (kind is None or m.kind == kind) and (stage is None or m.stage == stage)
                 and (headline is None or m.headline == headline))


def summarised() -> tuple[str, ...]:
    """Columns a summary gives statistics for: every float and bool column (bools as 0/1)."""
    return tuple(m.column for m in _ENTRIES if m.kind in ("float", "bool"))


def bound_for(column: str) -> str | None:
    return get(column).bound


def coverage_for(column: str) -> str | None:
    return get(column).coverage


def regime_label(regime: str | None) -> str:
    """"[values]", "[values+grad]", "[prox pairs]" ("" for an unknown or missing regime)."""
    return REGIME_LABELS.get(regime or "", "")


def problems() -> list[str]:
    """Inconsistencies of the catalogue (empty when consistent): references to unknown
    columns, pairings that do not point back, unknown groups or kinds."""
    out = []
    for m in _ENTRIES:
        if m.group not in GROUPS or m.kind not in KINDS or m.stage not in ("trial", "summary"):
            out.append(f"{m.column}: group {m.group!r}, kind {m.kind!r} or stage {m.stage!r} unknown")
        for ref in ("raw", "relative", "bound", "coverage", "train"):
            target = getattr(m, ref)
            if target is not None and target not in CATALOGUE:
                out.append(f"{m.column}.{ref} = {target!r} is not a catalogue column")
        if m.raw and CATALOGUE.get(m.raw, m).relative != m.column:
            out.append(f"{m.column}.raw = {m.raw!r} does not name {m.column!r} as its relative")
        if m.relative and CATALOGUE.get(m.relative, m).raw != m.column:
            out.append(f"{m.column}.relative = {m.relative!r} does not name {m.column!r} as its raw")
        if m.kind in ("float", "bool") and not m.text:
            out.append(f"{m.column}: a summarised column needs a text label")
    if len(CATALOGUE) != len(_ENTRIES):
        out.append("duplicate catalogue columns")
    return out
