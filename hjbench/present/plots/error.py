"""Error against n_samples and error over the bound (docs/method.md sections 6-7).

All figures read the long summary (one row per cell x metric, schema version 1), so figures
and tables of a run always agree:

* :func:`error_vs_n`: a metric's median over repetitions against N on log-log axes, faceted
  by prior (columns) and dim (rows), one line per method with its 95% band, the a priori
  bound of docs/method.md section 7 as a dashed line where it applies (forward error: ``bound_value``
  for raw MSE, ``bound_rel_value`` for relative MSE), least-squares slopes in the legend.
* :func:`error_vs_n_by_regime`: the same, one figure per data regime of the methods ("values",
  "values_and_gradients", "prox_pairs"), so that headline comparisons stay within a regime.
* :func:`error_figures`: the three families (forward, prox, prior) at once (and per regime).
* :func:`bound_ratio`: empirical forward MSE over the bound, with a line at 1.
* :func:`run_figure`: what ``hjbench run`` writes at its end (forward error against N).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..style import MethodStyle
from ..style import method_regimes
from ...score.catalogue import FAMILIES
from ...score.catalogue import CATALOGUE
from ._common import FORMATS
from ._common import FigureResult
from ._common import load_run_trials
from ._common import load_summary
from ._common import metric_label
from ._grid import line_grid

__all__ = ["error_vs_n", "error_vs_n_by_regime", "error_figures", "bound_ratio", "run_figure"]

_WHAT = {"forward": "Forward error (learned potential against psi)",
         "prox": "Prox error (learned prox against the exact prox)",
         "prior": "Prior error (learned prior against J_bvs at y = prox(x_test))"}


def error_vs_n(summary: pd.DataFrame, out_dir: Path | str, metric: str = "forward_rel_mse", *,
               style: MethodStyle | None = None, trials: pd.DataFrame | None = None,
               stem: str | None = None, dpi: int = 300, formats: tuple[str, ...] = FORMATS,
               keep_figure: bool = False, methods: list[str] | None = None) -> FigureResult:
    """Median of ``metric`` against n_samples, log-log, per prior (columns) and dim (rows).

    Args:
        summary: the long summary (columns method, prior, dim, n_samples, t, regime, metric,
            median, ci_low, ci_high, n_finite, n_trials, n_ok).
        out_dir: folder for ``{stem}.pdf`` and ``{stem}.png`` (default stem ``error_vs_n_{metric}``).
        metric: a metric of the schema, e.g. ``forward_rel_mse`` or ``prox_mse``.
        style: method colours and order (default: from the method registry).
        trials: the run's trials, if at hand, to give failed cells their status and message.
        dpi, formats: PNG resolution and the files written (PDF and PNG by default).
        keep_figure: keep the matplotlib Figure on the result (tests read its Line2D data).
        methods: draw only these methods (default: every method of the summary).

    Returns the paths, the plotted values (``data``: one row per method x panel x N, with the
    plotted ``y`` (NaN where a gap), the summary's median and interval, the status and
    reason, the fitted slope; plus ``series == "bound"`` rows) and notes on every gap.
    """
    family = next((f for f, ms in FAMILIES.items() if metric in ms), None)
    entry = CATALOGUE.get(metric)
    return line_grid(summary, metric, out_dir=out_dir, stem=stem or f"error_vs_n_{metric}",
                     ylabel=metric_label(metric), style=style, bound_metric=entry.bound if entry else None,
                     trials=trials, dpi=dpi, formats=formats, keep_figure=keep_figure,
                     what=_WHAT.get(family, metric_label(metric)), methods=methods)


def error_vs_n_by_regime(summary: pd.DataFrame, out_dir: Path | str, metric: str = "forward_rel_mse", *,
                         style: MethodStyle | None = None, trials: pd.DataFrame | None = None,
                         dpi: int = 300, formats: tuple[str, ...] = FORMATS,
                         keep_figure: bool = False) -> dict[str, FigureResult]:
    """:func:`error_vs_n` once per data regime: {regime: result}, stem
    ``error_vs_n_{metric}_{regime}``; a regime none of whose methods has the metric is left out."""
    style = style or MethodStyle.for_methods(summary["method"])
    regimes = method_regimes(summary)
    have = set(summary.loc[(summary["metric"] == metric) & (summary["n_finite"] > 0), "method"])
    out = {}
    for regime in dict.fromkeys(regimes[m] for m in style.sort(summary["method"].unique())):
        chosen = [m for m in style.sort(summary["method"].unique()) if regimes[m] == regime]
        if regime and have & set(chosen):
            out[regime] = error_vs_n(summary, out_dir, metric, style=style, trials=trials, dpi=dpi, formats=formats,
                                     keep_figure=keep_figure, methods=chosen, stem=f"error_vs_n_{metric}_{regime}")
    return out


def error_figures(summary: pd.DataFrame, out_dir: Path | str, *, raw: bool = False,
                  style: MethodStyle | None = None, trials: pd.DataFrame | None = None,
                  dpi: int = 300, formats: tuple[str, ...] = FORMATS,
                  by_regime: bool = False) -> dict[str, FigureResult]:
    """:func:`error_vs_n` for forward, prox and prior error (relative MSE, or raw MSE if ``raw``).

    Families whose metric has no rows in ``summary`` are left out of the returned dict. With
    ``by_regime``, also one figure per data regime, keyed ``"{family}|{regime}"``.
    """
    style = style or MethodStyle.for_methods(summary["method"])
    present = set(summary["metric"].unique())
    out = {}
    for family, (rel, raw_metric) in FAMILIES.items():
        metric = raw_metric if raw else rel
        if metric in present:
            out[family] = error_vs_n(summary, out_dir, metric, style=style, trials=trials, dpi=dpi,
                                     formats=formats)
            if by_regime:
                per = error_vs_n_by_regime(summary, out_dir, metric, style=style, trials=trials, dpi=dpi,
                                           formats=formats)
                out.update({f"{family}|{regime}": r for regime, r in per.items()})
    return out


def bound_ratio(summary: pd.DataFrame, out_dir: Path | str, *, style: MethodStyle | None = None,
                trials: pd.DataFrame | None = None, stem: str = "bound_ratio", dpi: int = 300,
                formats: tuple[str, ...] = FORMATS, keep_figure: bool = False) -> FigureResult:
    """Median over repetitions of forward_mse / bound_value (``bound_ratio``) against N, line at 1.

    Below 1 the method does better than the worst-case a priori guarantee of the max-plus
    interpolant on the same data (docs/method.md section 7); methods without a potential have no line.
    """
    result = line_grid(summary, "bound_ratio", out_dir=out_dir, stem=stem, ylabel=metric_label("bound_ratio"),
                       style=style, hline=1.0, trials=trials, dpi=dpi, formats=formats, keep_figure=keep_figure,
                       what="Ratio of the forward MSE to the a priori max-plus bound")
    return result


def run_figure(run_dir: Path | str, summary: pd.DataFrame | None = None, *,
               raw: bool = False) -> FigureResult:
    """The figure ``hjbench run`` writes at its end: forward error against N, per prior and dim.

    Writes ``run_dir/figures/error_vs_n_forward_rel_mse.{pdf,png}`` (``forward_mse`` if
    ``raw``). ``summary`` defaults to the run's summary.parquet (or one computed from its
    trials).
    """
    run_dir = Path(run_dir)
    trials = load_run_trials(run_dir)
    if summary is None:
        summary, _ = load_summary(run_dir, trials)
    metric = FAMILIES["forward"][1 if raw else 0]
    return error_vs_n(summary, run_dir / "figures", metric, trials=trials)
