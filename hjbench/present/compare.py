"""Compare two runs cell by cell: ``hjbench compare RUN_A RUN_B [--json] [--threshold X]``.

For every cell in both runs (method, prior, dim, n_samples and the other keys of
:data:`hjbench.present.summary.CELL_KEYS` both trials tables have) and every compared metric m
(default: the catalogue's headline errors and cost columns), with a_1..a_k the values of m over
the cell's ``ok`` trials of run A and b_1..b_l those of run B (NaN left out, +inf kept):

* ratio = median(b) / median(a): B relative to A (1 = unchanged, 2 = twice the error or time);
* ci_low, ci_high: 95% percentile-bootstrap interval of the ratio: ``n_boot`` resamples of
  each run's values, drawn independently with replacement, give ratios of resample medians
  (+inf where A's is <= 0 and B's is not); their 2.5% and 97.5% percentiles. Seeded from a
  stable hash of (seed, cell, metric): reproducible. NaN with fewer than 2 values in a run;
* status: "regression" when the interval lies entirely above 1 + threshold (below 1 / (1 +
  threshold) where higher is better), "improvement" in the mirror case, else "unchanged"; or
  "too few repetitions", "not comparable (median in A <= 0)", "missing in B", "new in B".

A cell with ok trials in A and none in B is *lost*: listed apart, and it sets the exit code as
a regression does. Runs of different schema versions are refused with one
:class:`~hjbench.errors.RunError` line: their columns need not mean the same.

    >>> print(compare_runs("results/reference", "results/my-run").to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .. import SCHEMA_VERSION
from ..errors import ConfigError, RunError
from ..score import catalogue

__all__ = ["Comparison", "compare_runs", "default_metrics", "ratio_interval", "main"]


def default_metrics() -> tuple[str, ...]:
    """The catalogue's headline errors, then its cost columns (the metrics compared by default)."""
    return catalogue.columns(headline=True) + catalogue.columns(group="cost")


def ratio_interval(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                   seed: int = 0) -> tuple[float, float, float]:
    """(median(b) / median(a), low, high) of 1-D values without NaN (module docstring); the
    ratio is NaN when median(a) <= 0, the interval when either has fewer than 2 values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    med_a, med_b = float(np.median(a)), float(np.median(b))
    ratio = med_b / med_a if med_a > 0 else math.nan
    if a.size < 2 or b.size < 2 or math.isnan(ratio):
        return ratio, math.nan, math.nan
    rng = np.random.default_rng(seed)
    ma = np.median(rng.choice(a, size=(n_boot, a.size), replace=True), axis=1)
    mb = np.median(rng.choice(b, size=(n_boot, b.size), replace=True), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(ma > 0, mb / ma, np.where(mb > 0, np.inf, np.nan))
    r, alpha = r[~np.isnan(r)], (1.0 - level) / 2.0
    if not r.size:
        return ratio, math.nan, math.nan
    finite = bool(np.isfinite(r).all())  # +inf ratios: the nearest order statistics outward
    low = np.quantile(r, alpha, method="linear" if finite else "lower")
    return ratio, float(low), float(np.quantile(r, 1.0 - alpha, method="linear" if finite else "higher"))


@dataclass
class Comparison:
    """Run B against run A (module docstring). ``rows``: one row per (cell, metric) with the cell
    keys, ``metric`` and ``n_a n_b median_a median_b ratio ci_low ci_high status``; ``lost``: the
    cells ok in A and not in B with B's statuses; ``a``/``b``: path, run id, commit of each run."""

    a: dict
    b: dict
    threshold: float
    metrics: tuple[str, ...]
    keys: tuple[str, ...]
    rows: pd.DataFrame
    lost: pd.DataFrame
    only_in_a: int
    only_in_b: int
    n_boot: int = 2000
    notes: list[str] = field(default_factory=list)

    regressions = property(lambda self: self.rows[self.rows["status"] == "regression"].reset_index(drop=True))
    improvements = property(lambda self: self.rows[self.rows["status"] == "improvement"].reset_index(drop=True))

    @property
    def exit_code(self) -> int:
        """1 when a metric regressed or a cell was lost, else 0."""
        return 1 if len(self.regressions) or len(self.lost) else 0

    def summary(self) -> str:
        """One line: what regressed (or that nothing did)."""
        n = len(self.rows[list(self.keys)].drop_duplicates()) + len(self.lost)
        if self.exit_code:
            return (f"REGRESSION: {len(self.regressions)} metric(s) of {n} common cells above {1 + self.threshold:g}x, "
                    f"{len(self.lost)} cell(s) lost (exit 1)")
        return f"no regression above {1 + self.threshold:g}x in {n} common cells, {len(self.improvements)} " \
               "improved (exit 0)"

    def to_json(self) -> str:
        """Everything as one JSON object (NaN and infinities as null / "inf")."""
        doc = {"a": self.a, "b": self.b, "threshold": self.threshold, "n_boot": self.n_boot,
               "metrics": list(self.metrics), "cell_keys": list(self.keys), "only_in_a": self.only_in_a,
               "only_in_b": self.only_in_b, "exit_code": self.exit_code, "summary": self.summary(),
               "notes": self.notes, "regressions": self.regressions, "lost": self.lost, "rows": self.rows}
        return json.dumps(_clean(doc), indent=1, allow_nan=False)

    def to_markdown(self, *, full: bool = False) -> str:
        """Regressions, lost cells, improvements and a per-method overview (``full``: every row)."""
        a, b = self.a, self.b
        lines = [f"# Comparison: B = {b['run_id']} against A = {a['run_id']}", "",
                 f"A: `{a['path']}` (commit {a.get('commit') or 'unknown'}); "
                 f"B: `{b['path']}` (commit {b.get('commit') or 'unknown'}).",
                 f"Ratio = median over B's ok repetitions / median over A's, per cell; 95% percentile-bootstrap "
                 f"interval ({self.n_boot} resamples of each run, seeded). Regression: the interval lies "
                 f"entirely above {1 + self.threshold:g}.", ""]
        sections = [("Regressions", self.regressions), ("Lost cells (ok in A, none ok in B)", self.lost),
                    ("Improvements", self.improvements), ("Overview (geometric mean ratio over cells)",
                    _overview(self.rows))] + [("Every cell and metric", self.rows)] * full
        for title, frame in sections:
            lines += [f"## {title} ({len(frame)})", "", _md_table(frame) if len(frame) else "None.", ""]
        lines += [f"- {n}" for n in self.notes] + ([""] if self.notes else [])
        return "\n".join(lines + [f"**Result:** {self.summary()}", ""])


def _overview(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (method, metric): cells compared, geometric mean ratio, regressions, improvements."""
    ratio = rows["ratio"].astype(float)
    g = rows[np.isfinite(ratio) & (ratio > 0)].groupby(["method", "metric"], sort=False)
    return pd.DataFrame({"cells": g.size(), "geo. mean ratio": g["ratio"].apply(lambda r: np.exp(np.log(r).mean())),
                         "regressions": g["status"].apply(lambda s: int((s == "regression").sum())),
                         "improvements": g["status"].apply(lambda s: int((s == "improvement").sum()))}).reset_index()


def _md_table(frame: pd.DataFrame) -> str:
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    frame = frame.drop(columns=[c for c in ("t", "regime") if c in frame and frame[c].nunique() <= 1])
    if {"ci_low", "ci_high"} <= set(frame.columns):
        frame = frame.assign(ci_low=[f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in zip(frame["ci_low"], frame["ci_high"])])
        frame = frame.drop(columns="ci_high").rename(columns={"ci_low": "95% CI"})
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule] + body)


def _clean(value: Any) -> Any:
    """JSON-ready: frames -> records, numpy scalars -> Python, NaN and NA -> None, inf -> "inf"."""
    if isinstance(value, pd.DataFrame):
        return _clean(value.to_dict("records"))
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return ("inf" if value > 0 else "-inf") if isinstance(value, float) and math.isinf(value) else value


def _schema_of(path: Path) -> Any:
    """The schema version a run folder declares: run.json's, else its first trial row's."""
    try:
        if (path / "run.json").exists():
            return json.loads((path / "run.json").read_text(encoding="utf-8")).get("schema_version")
        if (path / "trials.parquet").exists():
            return pd.read_parquet(path / "trials.parquet", columns=["schema_version"])["schema_version"].iloc[0]
        with open(path / "trials.jsonl", encoding="utf-8") as fh:
            return json.loads(fh.readline()).get("schema_version")
    except Exception:  # noqa: BLE001 (unreadable or empty: the checked reader says why later)
        return SCHEMA_VERSION


def _open(name: str, run: Any) -> tuple[dict, pd.DataFrame]:
    """(identity of the run, its trials); RunError for a folder that is not a run of this schema."""
    from ..run.folder import RunFolder, is_run_folder

    path = Path(getattr(run, "path", run))
    if not path.is_dir() or not is_run_folder(path):
        raise RunError(f"compare: {name}={str(path)!r} is not a run folder; allowed: a folder written by "
                       "`hjbench run` (run.json, trials.jsonl or trials.parquet)")
    version = _schema_of(path)
    if version != SCHEMA_VERSION:
        raise RunError(f"compare: {name}={str(path)!r} has results schema_version={version}, this hjbench "
                       f"writes version {SCHEMA_VERSION}; runs of different schema versions are not compared; "
                       "regenerate that run (for results/reference: README, 'The reference run') or compare "
                       "with the hjbench version that wrote it")
    folder = RunFolder(path)
    info = folder.read_run_json()
    env = info.get("environment") or {}
    return ({"path": str(path), "run_id": info.get("run_id", path.name), "code_version": info.get("code_version"),
             "commit": (env.get("git") or {}).get("commit"), "cpu_model": env.get("cpu_model"),
             "config": info.get("config") or {}}, folder.load_trials())


def _values(group: pd.DataFrame, metric: str) -> np.ndarray:
    v = pd.to_numeric(group[metric], errors="coerce").to_numpy(dtype=float) if metric in group else np.array([])
    return v[~np.isnan(v)]


def _status(n_a: int, n_b: int, ratio: float, lo: float, hi: float, threshold: float, higher_better: bool) -> str:
    if not n_a or not n_b:
        return "missing in B" if n_a else "new in B"
    if math.isnan(ratio) or math.isnan(lo):
        return "not comparable (median in A <= 0)" if math.isnan(ratio) else "too few repetitions"
    up, down = lo > 1 + threshold, hi < 1 / (1 + threshold)
    worse, better = (down, up) if higher_better else (up, down)
    return "regression" if worse else "improvement" if better else "unchanged"


def _check_args(threshold: float, metrics) -> tuple[str, ...]:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < math.inf:
        raise ConfigError(f"compare: threshold={threshold!r} must be a finite number >= 0; allowed: e.g. 0.25")
    metrics = tuple(default_metrics() if metrics is None else metrics)
    for m in metrics:
        if catalogue.get(m).lower_is_better is None or catalogue.get(m).kind != "float":
            raise ConfigError(f"compare: metrics entry {m!r} has no better direction; allowed: float "
                              f"metrics with one, e.g. {', '.join(default_metrics())}")
    return metrics


def compare_runs(run_a: Any, run_b: Any, *, threshold: float = 0.25, metrics=None, n_boot: int = 2000,
                 seed: int = 0) -> Comparison:
    """Compare run B against run A (paths or :class:`hjbench.api.Run`); see the module docstring.

    Args:
        threshold: relative change flagged: a regression needs the ratio's whole 95% interval
            above ``1 + threshold``.
        metrics: catalogue columns to compare (default :func:`default_metrics`).
        n_boot, seed: bootstrap resamples and base seed.
    """
    from ..seeds import stable_int
    from .summary import CELL_KEYS

    metrics = _check_args(threshold, metrics)
    a, ta = _open("run_a", run_a)
    b, tb = _open("run_b", run_b)
    keys = tuple(k for k in CELL_KEYS if k in ta.columns and k in tb.columns)
    ga = {k: g for k, g in ta.groupby(list(keys), sort=False, dropna=False)} if len(ta) else {}
    gb = {k: g for k, g in tb.groupby(list(keys), sort=False, dropna=False)} if len(tb) else {}
    common = [k for k in ga if k in gb]
    rows, lost = [], []
    for key in common:
        ok_a, ok_b = ga[key][ga[key]["status"] == "ok"], gb[key][gb[key]["status"] == "ok"]
        cell = dict(zip(keys, key))
        if len(ok_a) and not len(ok_b):
            statuses = ", ".join(f"{s} x{n}" for s, n in gb[key]["status"].value_counts().sort_index().items())
            lost.append({**cell, "n_ok_a": len(ok_a), "statuses_b": statuses})
            continue
        for metric in metrics:
            va, vb = _values(ok_a, metric), _values(ok_b, metric)
            if not va.size and not vb.size:
                continue  # not applicable (e.g. a prior error of a prox-only method)
            boot_seed = stable_int({"seed": seed, "metric": metric, **{k: str(v) for k, v in cell.items()}})
            ratio, lo, hi = (ratio_interval(va, vb, n_boot=n_boot, seed=boot_seed) if va.size * vb.size
                             else [math.nan] * 3)
            rows.append({**cell, "metric": metric, "n_a": int(va.size), "n_b": int(vb.size),
                         "median_a": float(np.median(va)) if va.size else math.nan,
                         "median_b": float(np.median(vb)) if vb.size else math.nan, "ratio": ratio,
                         "ci_low": lo, "ci_high": hi,
                         "status": _status(va.size, vb.size, ratio, lo, hi, threshold,
                                           catalogue.get(metric).lower_is_better is False)})
    frame = pd.DataFrame(rows, columns=list(keys) + ["metric", "n_a", "n_b", "median_a", "median_b", "ratio",
                                                     "ci_low", "ci_high", "status"])
    lost_frame = pd.DataFrame(lost, columns=list(keys) + ["n_ok_a", "statuses_b"])
    out = Comparison(a, b, float(threshold), metrics, keys, frame, lost_frame,
                     only_in_a=len(ga) - len(common), only_in_b=len(gb) - len(common), n_boot=n_boot)
    out.notes = _notes(a, b, out)
    return out


def _notes(a: dict, b: dict, c: Comparison) -> list[str]:
    differ = sorted(k for k in set(a["config"]) | set(b["config"]) if a["config"].get(k) != b["config"].get(k)
                    and k not in ("name", "description", "dims", "n_samples", "methods", "priors"))
    notes = ["the runs have no cell in common: nothing was compared"] if not len(c.rows) + len(c.lost) else []
    notes += [f"the runs ran on different CPUs ({a.get('cpu_model')} / {b.get('cpu_model')}): time and memory "
              "ratios compare the machines too"] if a.get("cpu_model") != b.get("cpu_model") else []
    notes += [f"the configurations differ in {', '.join(differ)}"] if differ else []
    notes += [f"cells in one run only (not compared): {c.only_in_a} in A, {c.only_in_b} in B"
              ] if c.only_in_a or c.only_in_b else []
    return notes


def main(run_a: Any, run_b: Any, *, as_json: bool = False, threshold: float = 0.25,
         out: Callable[[str], None] = print, err: Callable[[str], None] | None = None) -> int:
    """``hjbench compare RUN_A RUN_B``: print the comparison (Markdown, or JSON with ``as_json``)
    through ``out``; return 0 (no regression), 1 (a regression or a lost cell) or 2 (an argument
    or a folder that cannot be compared: one line ``error: ...`` through ``err``)."""
    try:
        comparison = compare_runs(run_a, run_b, threshold=threshold)
    except (RunError, ConfigError) as exc:
        (err or (lambda line: print(line, file=sys.stderr)))(f"error: {exc}")
        return 2
    out(comparison.to_json() if as_json else comparison.to_markdown())
    return comparison.exit_code
