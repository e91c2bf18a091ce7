"""Task columns: the results columns of downstream tasks, generated from their names.

A task metric (:mod:`hjbench.score.tasks`, docs/tasks.md) is one column per (problem kind,
noise level sigma, solver, metric), named

    task_{kind}_s{repr(float(sigma))}_{solver}_{metric}

e.g. ``task_denoise_s0.5_fista_rel_error``. Such columns are not listed in the catalogue
(:mod:`.catalogue`); their records are made from the name: :func:`task_column` builds the name,
:func:`task_parts` parses it, :func:`task_metric` gives its :class:`~.catalogue.Metric`
(group "task") and :func:`task_columns_in` picks them out of a list of columns. The metrics are
:data:`TASK_METRICS` (per method) and :data:`TASK_EXACT_METRICS` (the same solver with the
exact prox, the floor). :mod:`.catalogue` re-exports every name here.

    >>> task_parts(task_column("deblur", 0.1, "admm", "psnr"))["noise"]
    0.1
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .catalogue import Metric

__all__ = ["TASK_METRICS", "TASK_EXACT_METRICS", "task_column", "task_parts", "task_metric", "task_columns_in"]


# downstream tasks (hjbench.score.tasks): task_{kind}_s{noise!r}_{solver}_{metric}, records made from the name
TASK_METRICS: dict[str, tuple[str, str, bool, str]] = {
    "rel_error": ("relative reconstruction error", "rel. error", True, "sum ||x_hat - x||^2 / sum ||x||^2"),
    "vs_exact": ("distance to the exact-prox solution", "vs exact", True, "sum ||x_hat - x_ex||^2 / sum ||x_ex||^2"),
    "psnr": ("PSNR [dB]", "PSNR [dB]", False, "10 log10(range(x)^2 / MSE)"),
    "iterations": ("iterations", "iterations", True, "mean per signal, to tolerance or the cap"),
    "converged": ("fraction converged", "converged", False, "fraction of signals within tolerance"),
    "seconds": ("solve time [s]", "solve [s]", True, "wall seconds of the batched solve"),
}
TASK_EXACT_METRICS = {f"exact_{k}": (f"exact-prox {v[0]}", f"exact {v[1]}", v[2], v[3] + " (the floor)")
                      for k, v in TASK_METRICS.items() if k in ("rel_error", "iterations", "converged")}


def task_column(kind: str, noise: float, solver: str, metric: str) -> str:
    """The results column ``task_{kind}_s{repr(float(noise))}_{solver}_{metric}`` of one task metric."""
    if metric not in TASK_METRICS and metric not in TASK_EXACT_METRICS:
        raise ConfigError(f"metric={metric!r} is not a task metric; allowed: {[*TASK_METRICS, *TASK_EXACT_METRICS]}")
    return f"task_{kind}_s{float(noise)!r}_{solver}_{metric}"


_TASK_NAMES = "|".join(sorted([*TASK_METRICS, *TASK_EXACT_METRICS], key=len, reverse=True))
_TASK_RE = re.compile(rf"task_(?P<kind>[a-z_]+?)_s(?P<noise>\d+(?:\.\d+)?(?:e[+-]?\d+)?)_(?P<solver>[a-z_]+?)_"
                      rf"(?P<metric>{_TASK_NAMES})")


def task_parts(column: str) -> dict | None:
    """{"kind", "noise" (float), "solver", "metric"} of a task column, or None if it is not one."""
    found = _TASK_RE.fullmatch(column) if isinstance(column, str) else None
    return {**found.groupdict(), "noise": float(found["noise"])} if found else None


def task_metric(column: str) -> Metric | None:
    """The record of a task column (group "task"), or None if ``column`` is not one.

    >>> task_metric("task_compressed_sensing_s0.5_fista_ls_vs_exact").text
    'compressed_sensing s=0.5 fista_ls: vs exact'
    """
    from .catalogue import (
        Metric,  # here, not at the top: the catalogue imports this module
    )

    if (p := task_parts(column)) is None:
        return None
    label_, text, lower, doc = {**TASK_METRICS, **TASK_EXACT_METRICS}[p["metric"]]
    where = f"{p['kind']} s={p['noise']!r} {p['solver']}"
    figure = f"{label_} ({p['kind']}, $\\sigma$={p['noise']:g}, {p['solver']})"
    return Metric(column, figure, f"{where}: {text}", "task", lower_is_better=lower, doc=f"{where}: {doc}")


def task_columns_in(columns) -> list[str]:
    """The task columns among ``columns`` (e.g. a trials DataFrame's), in their order."""
    return [c for c in columns if task_parts(c) is not None]
