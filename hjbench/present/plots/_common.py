"""What every figure shares: the returned record, saving, loading a run's tables, metric labels
(read from :mod:`hjbench.score.catalogue`, the one place labels and pairings live)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..style import paper_context
from ..style import use_agg
from ...errors import ConfigError
from ...score.catalogue import FAMILIES
from ...score.catalogue import label

__all__ = ["FigureResult", "save_figure", "new_figure", "load_summary", "load_run_trials",
           "FAMILIES", "FORMATS", "metric_label", "fitted_slope", "n_label",
           "decade_limits", "log_axes"]

def metric_label(metric: str) -> str:
    """The figure label of ``metric`` (hjbench.score.catalogue)."""
    return label(metric, "figure")


@dataclass
class FigureResult:
    """What a figure function hands back.

    Attributes:
        paths: the files written (a PDF and a 300-dpi PNG per figure).
        data: the values drawn, one row per plotted point (tests compare it to the summary).
        notes: what a reader must know and cannot see: gaps (missing cells and why), values
            <= 0 that a log axis cannot show, methods for which the output is not applicable.
        caption: a one-paragraph caption that includes the notes.
        figure: the matplotlib Figure when ``keep_figure=True`` was asked, else None.
    """

    paths: list[Path] = field(default_factory=list)
    data: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    caption: str = ""
    figure: Any = None

    def __iter__(self):
        """Iterating gives the paths written, so ``for path in error_vs_n(...)`` works."""
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def png(self) -> Path | None:
        return next((p for p in self.paths if p.suffix == ".png"), None)


def new_figure(width: float, height: float):
    """A bare Agg-backed Figure (never registered with pyplot, so nothing leaks)."""
    use_agg()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


FORMATS = ("pdf", "png")


def save_figure(fig, out_dir: Path | str, stem: str, *, dpi: int = 300,
                formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``out_dir/stem.<format>`` for each of ``formats`` (PNG at ``dpi``).

    PDF embeds TrueType fonts (type 42), as publishers ask; a report that only needs the
    PNGs can pass ``formats=("png",)``, which is several times faster.
    """
    for fmt in formats:
        if fmt not in FORMATS:
            raise ConfigError(f"formats={formats!r}: {fmt!r} is not allowed; choose from {list(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.{fmt}" for fmt in formats]
    with paper_context():
        for path in paths:
            fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.03)
    return paths


def n_label(n: float) -> str:
    """Compact sample-count label where it is exact: 64, 256, 1k, 2.5k, 20k, 1M; 2048, not 2.048k."""
    n = int(n)
    for unit, size in (("M", 10**6), ("k", 10**3)):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{unit}"
    return str(n)


def decade_limits(values) -> tuple[float, float]:
    """(10^floor(log10 min), 10^ceil(log10 max)) of the positive finite ``values``: a log axis
    with these limits shows at least two labelled decades."""
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], dtype=float)
    if v.size == 0:
        return 0.1, 1.0
    lo, hi = 10.0 ** math.floor(math.log10(v.min())), 10.0 ** math.ceil(math.log10(v.max()))
    return (lo, hi * 10) if hi <= lo else (lo, hi)


def log_axes(ax, ns, ylim: tuple[float, float] | None = None) -> None:
    """Log-log axes with ticks at the sample counts ``ns`` (labels 100, 1k, ...), whole decades
    on y, and no minor tick labels (they collide in small panels)."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_yscale("log")
    ns = [float(n) for n in ns]
    if ns:
        ax.xaxis.set_major_locator(FixedLocator(ns))
        ax.xaxis.set_major_formatter(FixedFormatter([n_label(n) for n in ns]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(min(ns) / 1.25, max(ns) * 1.25)
    ax.yaxis.set_minor_formatter(NullFormatter())
    if ylim is not None:
        ax.set_ylim(*ylim)


def fitted_slope(n: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log10 y against log10 n over points with y > 0 finite; NaN if < 2."""
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(y) & (y > 0) & np.isfinite(n) & (n > 0)
    if ok.sum() < 2 or np.unique(n[ok]).size < 2:
        return math.nan
    return float(np.polyfit(np.log10(n[ok]), np.log10(y[ok]), 1)[0])


def load_run_trials(run_dir: Path | str) -> pd.DataFrame | None:
    """The run's trials (hjbench.run.folder.load_trials, else trials.parquet); None if there are none."""
    run_dir = Path(run_dir)
    try:
        from ...run.folder import load_trials

        trials = load_trials(run_dir)
    except ImportError:
        path = run_dir / "trials.parquet"
        trials = pd.read_parquet(path) if path.exists() else None
    if trials is None or len(trials) == 0:
        return None
    return trials


def load_summary(run_dir: Path | str, trials: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """The run's long summary and where it came from.

    summary.parquet when present and not older than the trial files; otherwise it is computed
    from the trials with :func:`hjbench.present.summary.summarize` (a run still going, or one that
    was never summarised). Raises ConfigError if neither is possible.
    """
    run_dir = Path(run_dir)
    path = run_dir / "summary.parquet"
    sources = [run_dir / "trials.jsonl", run_dir / "trials.parquet"]
    newest = max((p.stat().st_mtime for p in sources if p.exists()), default=-math.inf)
    if path.exists() and path.stat().st_mtime >= newest:
        return pd.read_parquet(path), "summary.parquet"
    if trials is None:
        trials = load_run_trials(run_dir)
    if trials is None:
        if path.exists():
            return pd.read_parquet(path), "summary.parquet"
        raise ConfigError(f"run_dir={str(run_dir)!r} has no trials and no summary.parquet; "
                          "run `hjbench run` first")
    try:
        from ..summary import summarize
    except ImportError as exc:
        if path.exists():
            return pd.read_parquet(path), "summary.parquet (older than the trials)"
        raise ConfigError(f"run_dir={str(run_dir)!r} has no summary.parquet and hjbench.present.summary "
                          f"is unavailable ({exc}); run `hjbench summarize RUN`") from exc
    return summarize(trials), "computed from the trials (summary.parquet absent or older)"
