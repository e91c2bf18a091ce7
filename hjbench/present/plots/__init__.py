"""Paper-style figures of a run, all drawn from its long summary (issue: figures and tables).

    >>> from hjbench import plots
    >>> result = plots.error_vs_n(summary, "figures/", "forward_rel_mse")   # doctest: +SKIP
    >>> result.paths, result.data, result.notes                             # doctest: +SKIP

Every figure function returns a :class:`FigureResult`: the PDF and 300-dpi PNG written, the
values drawn (a DataFrame) and notes on everything a reader cannot see (gaps, values <= 0
on log axes, outputs a method does not provide). matplotlib is imported, and the Agg
backend selected, only when a figure is drawn.
"""

from ._common import FAMILIES
from ._common import FigureResult
from ._common import load_run_trials
from ._common import load_summary
from .cost import cost_figures
from .cost import eval_time_bars
from .cost import fit_time
from .error import bound_ratio
from .error import error_figures
from .error import error_vs_n
from .error import error_vs_n_by_regime
from .error import run_figure
from .sections import cross_section_figure
from .sections import load_sections
from .sections import section_values
from .sections import sections_from_table
from .sections import write_sections

__all__ = ["FigureResult", "FAMILIES", "load_summary", "load_run_trials", "error_vs_n",
           "error_vs_n_by_regime", "error_figures", "bound_ratio", "run_figure", "fit_time", "eval_time_bars",
           "cost_figures", "cross_section_figure", "section_values", "sections_from_table",
           "write_sections", "load_sections"]
