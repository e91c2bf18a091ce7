"""One visual identity for every figure: method order, colours, markers, sizes, fonts.

A method keeps the same colour and marker in every figure of every run: both are indexed by
the method's position in the method registry (:func:`hjbench.methods.names`), not by its
position among the methods a figure happens to show. Names the registry does not know (a
plug-in that is not installed where the report is made) follow, in the order they appear
in the data, which the results schema fixes to registry order.

Nothing here imports matplotlib at module import; :func:`use_agg` selects the Agg backend
lazily, inside the plotting functions, so ``import hjbench`` stays cheap.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator

__all__ = ["MethodStyle", "registry_order", "prior_order", "use_agg", "paper_context", "method_regimes",
           "method_label", "COLUMN_WIDTH", "FULL_WIDTH", "TRUTH_COLOR", "OPT_LIMITED_NOTE"]

COLUMN_WIDTH = 3.3   # inches: one column of a two-column paper
FULL_WIDTH = 7.0     # inches: a full-width figure (faceted grids)
TRUTH_COLOR = "#222222"

# colour-blind safe (seaborn "colorblind", Wong 2011), then darker/lighter extensions
_PALETTE = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#56b4e9",
            "#7a5195", "#555555", "#4b8f00", "#93003a", "#00429d", "#949494", "#c9b800"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p", "d", "8"]


def _safe_names(kind: str) -> list[str]:
    """Registry names of ``kind`` ("methods" or "priors"), or [] if the registry cannot load."""
    try:
        import importlib

        module = importlib.import_module(f"hjbench.{kind}")
        return list(module.names())
    except Exception:  # a half-installed registry must not stop a report from being drawn
        return []


def _ordered(present: Iterable[str], reference: list[str]) -> list[str]:
    seen: list[str] = []
    for name in present:
        if name not in seen:
            seen.append(name)
    known = [n for n in reference if n in seen]
    return known + [n for n in seen if n not in reference]


def registry_order(present: Iterable[str]) -> list[str]:
    """The method names in ``present`` in registry order, unknown names last (first-seen order)."""
    return _ordered(present, _safe_names("methods"))


def prior_order(present: Iterable[str]) -> list[str]:
    """The prior names in ``present`` in prior registry order, unknown names last."""
    return _ordered(present, _safe_names("priors"))


@dataclass(frozen=True)
class MethodStyle:
    """Colour, marker and order of methods, fixed by the registry.

    ``order`` lists the methods to draw; ``slots`` maps each to its index in the full registry
    (then the unknown names), which picks its colour and marker.
    """

    order: tuple[str, ...]
    slots: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_methods(cls, present: Iterable[str]) -> "MethodStyle":
        registry = _safe_names("methods")
        full = _ordered(present, registry)
        reference = registry + [n for n in full if n not in registry]
        return cls(tuple(full), {name: reference.index(name) for name in full})

    def color(self, method: str) -> str:
        return _PALETTE[self.slots.get(method, len(self.slots)) % len(_PALETTE)]

    def marker(self, method: str) -> str:
        return _MARKERS[self.slots.get(method, len(self.slots)) % len(_MARKERS)]

    def sort(self, methods: Iterable[str]) -> list[str]:
        methods = list(dict.fromkeys(methods))
        return [m for m in self.order if m in methods] + [m for m in methods if m not in self.order]


OPT_LIMITED_NOTE = ("open markers: optimisation-limited (training error not well below the held-out "
                    "error in most repetitions), left out of fitted slopes")


def method_regimes(summary) -> dict[str, str]:
    """The data regime each method of ``summary`` learned from ("values", "values_and_gradients",
    "prox_pairs"): the summary's ``data_regime`` column, else the registered method's default
    ``data_regime``, else ""."""
    out: dict[str, str] = {}
    if "data_regime" in summary:
        for method, regime in summary[["method", "data_regime"]].drop_duplicates().itertuples(index=False):
            if isinstance(regime, str) and regime:
                out.setdefault(method, regime)
    for method in summary["method"].unique():
        if method not in out:
            try:
                import importlib

                out[method] = str(importlib.import_module("hjbench.methods").get(method).data_regime)
            except Exception:  # noqa: BLE001 (a plug-in that is not installed here: no label)
                out[method] = ""
    return out


def method_label(method: str, regime: str | None) -> str:
    """"hj [values]": the method name with its data regime (hjbench.score.catalogue.REGIME_LABELS)."""
    from ..score.catalogue import regime_label

    suffix = regime_label(regime)
    return f"{method} {suffix}" if suffix else method


def use_agg() -> None:
    """Select matplotlib's non-interactive Agg backend (called inside plotting functions only).

    Figures are built as bare :class:`matplotlib.figure.Figure` objects, never through pyplot,
    so nothing is registered globally; if pyplot is already in use (a notebook), its backend
    is left alone.
    """
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")


@contextlib.contextmanager
def paper_context() -> Iterator[None]:
    """Seaborn's "paper" context with ticks, small fonts that stay legible at print size."""
    use_agg()
    import matplotlib as mpl
    import seaborn as sns

    rc = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6,
          "ytick.labelsize": 6, "legend.fontsize": 6, "legend.title_fontsize": 6,
          "lines.linewidth": 1.1, "lines.markersize": 3, "axes.linewidth": 0.6,
          "xtick.major.width": 0.6, "ytick.major.width": 0.6, "savefig.dpi": 300,
          "pdf.fonttype": 42, "ps.fonttype": 42, "figure.dpi": 100}
    with sns.axes_style("ticks"), sns.plotting_context("paper"), mpl.rc_context(rc):
        yield
