"""Judge a finished run against the max-plus bound: ``hjbench check-bound RUN`` (BRIEF section 7).

Reads ``RUN/trials.parquet`` (or ``RUN/trials.jsonl`` when the parquet file is missing; columns
as in the results schema, version 1), judges every cell (method, prior, dim, n_samples, t),
fits the log-log slope of the forward MSE against n_samples per (method, prior, dim, t),
prints the tables and writes them to ``RUN/bound_report.md``. Rules (docs/bounds.md, section 8):

* a cell is judged on its trials with status "ok" and a finite forward_mse; a cell with none,
  or without a finite bound_value, is "not judged: <reason>";
* the max-plus interpolant (:data:`GUARANTEED_METHODS`) is "violated" when the a posteriori
  certificate fails in any trial (cert_holds False: a deterministic theorem, so a bug), or
  when the mean forward MSE over repetitions exceeds the a priori bound (a bound on the
  expectation, which the mean estimates); otherwise "holds";
* a learned method is "within the max-plus guarantee" or "worse than the max-plus guarantee"
  (mean above the bound): a yardstick, never a failure of the run;
* slopes and their 95% intervals are informative and do not change the exit code.

Exit codes of :func:`main`:

====  ============================================================================
0     every max-plus cell was judged and holds (also: the run has no max-plus cell)
2     RUN is not a run folder, or its trials table cannot be read (one-line error)
3     the max-plus interpolant violates its guarantee in at least one cell
4     no violation, but at least one max-plus cell could not be judged
====  ============================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from .bounds.apriori import BOUND_REGIMES
from .bounds.apriori import theoretical_slope
from .bounds.stats import SlopeFit
from .bounds.stats import fit_loglog_slope
from .bounds.stats import median_ci
from ..errors import HJBenchError

__all__ = ["EXIT_OK", "EXIT_NOT_A_RUN", "EXIT_VIOLATED", "EXIT_UNJUDGED", "GUARANTEED_METHODS",
           "RunError", "CellVerdict", "SlopeVerdict", "BoundReport", "load_trials", "check_run", "main"]

EXIT_OK, EXIT_NOT_A_RUN, EXIT_VIOLATED, EXIT_UNJUDGED = 0, 2, 3, 4
GUARANTEED_METHODS = frozenset({"maxplus"})  # methods the bound is a theorem about
REQUIRED = ("method", "prior", "dim", "n_samples", "status", "forward_mse", "bound_value")
_KEY = ["method", "prior", "dim", "n_samples", "t"]


class RunError(HJBenchError):
    """The folder is not a run, or its trials table cannot be read."""


@dataclass(frozen=True)
class CellVerdict:
    """One cell: forward-MSE statistics over its ok repetitions, the bound and the verdict."""

    method: str
    prior: str
    dim: int
    n_samples: int
    t: float
    n_trials: int
    n_ok: int
    median: float
    ci_low: float
    ci_high: float
    mean: float
    bound: float
    ratio: float  # mean / bound
    cert_median: float
    n_cert_fail: int
    n_above: int  # ok trials with forward_mse above the a priori bound
    guaranteed: bool
    judged: bool
    violated: bool
    verdict: str


@dataclass(frozen=True)
class SlopeVerdict:
    """Fitted log-log slope of one (method, prior, dim, t) beside the theoretical slope."""

    method: str
    prior: str
    dim: int
    t: float
    fit: SlopeFit
    theory: float
    agreement: str


@dataclass
class BoundReport:
    """Everything ``check-bound`` found; :attr:`exit_code` and :meth:`to_markdown` summarise it."""

    run_dir: Path
    run_id: str
    source: str
    n_rows: int
    cells: list[CellVerdict]
    slopes: list[SlopeVerdict]
    notes: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[CellVerdict]:
        return [c for c in self.cells if c.violated]

    @property
    def unjudged(self) -> list[CellVerdict]:
        return [c for c in self.cells if not c.judged]

    @property
    def exit_code(self) -> int:
        if self.violations:
            return EXIT_VIOLATED
        return EXIT_UNJUDGED if any(c.guaranteed for c in self.unjudged) else EXIT_OK

    def summary(self) -> str:
        guaranteed = [c for c in self.cells if c.guaranteed]
        if self.violations:
            return (f"VIOLATED: the max-plus guarantee fails in {len(self.violations)} of "
                    f"{len(guaranteed)} max-plus cells (exit {EXIT_VIOLATED})")
        bad = [c for c in self.unjudged if c.guaranteed]
        if bad:
            return (f"no violation, but {len(bad)} of {len(guaranteed)} max-plus cells could not "
                    f"be judged (exit {EXIT_UNJUDGED})")
        if not guaranteed:
            return "no max-plus cell in this run: nothing is held to the guarantee (exit 0)"
        return f"the max-plus guarantee holds in all {len(guaranteed)} max-plus cells (exit 0)"

    def to_markdown(self) -> str:
        show_t = len({c.t for c in self.cells}) > 1
        head = ["method", "prior", "dim"] + (["t"] if show_t else [])
        rows = [[c.method, c.prior, str(c.dim)] + ([_g(c.t)] if show_t else []) + [
            str(c.n_samples), f"{c.n_ok}/{c.n_trials}", _g(c.median), f"[{_g(c.ci_low)}, {_g(c.ci_high)}]",
            _g(c.mean), _g(c.bound), _g(c.ratio), f"{c.n_above}/{c.n_ok}", _g(c.cert_median),
            c.verdict] for c in self.cells]
        cells = _table(head + ["N", "ok", "median MSE", "95% CI", "mean MSE", "bound", "mean/bound",
                               "trials above", "cert (median)", "verdict"], rows)
        srows = [[s.method, s.prior, str(s.dim)] + ([_g(s.t)] if show_t else []) + [
            str(s.fit.n_counts), str(s.fit.n_points), _g(s.fit.slope), f"[{_g(s.fit.low)}, {_g(s.fit.high)}]",
            _g(s.theory), s.agreement] for s in self.slopes]
        slopes = _table(head + ["#N", "#points", "slope", "95% CI", "theory", "agreement"], srows)
        lines = [f"# Bound check: run {self.run_id}", "",
                 f"Source: `{self.source}` ({self.n_rows} trials). Bounds and rules: docs/bounds.md. "
                 "MSE = forward_mse (psi on the held-out set); bound = a priori max-plus bound; "
                 "95% CI = seeded percentile bootstrap of the median.", "",
                 "## Cells", "", cells, "", "## Log-log slopes of forward MSE against N", "", slopes, ""]
        if self.unjudged:
            lines += ["## Not judged", ""] + _grouped(self.unjudged) + [""]
        lines += [f"- {n}" for n in self.notes] + ([""] if self.notes else [])
        return "\n".join(lines + [f"**Result:** {self.summary()}", ""])


def _grouped(cells: list) -> list[str]:
    """One line per (method, verdict): cells that share a reason (a method without a potential
    is unjudged everywhere) are listed once, with the cells they cover."""
    groups: dict[tuple[str, str], list] = {}
    for c in cells:
        groups.setdefault((c.method, c.verdict), []).append(c)
    lines = []
    for (method, verdict), cs in groups.items():
        if len(cs) == 1:
            c = cs[0]
            lines.append(f"- {method} / {c.prior} / dim {c.dim} / N {c.n_samples}: {verdict}")
        else:
            span = lambda attr: ", ".join(str(v) for v in dict.fromkeys(getattr(c, attr) for c in cs))  # noqa: E731
            lines.append(f"- {method}, {len(cs)} cells (priors {span('prior')}; dims {span('dim')}; "
                         f"N {span('n_samples')}): {verdict}")
    return lines


def _g(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3g}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = lambda r: "| " + " | ".join(s.ljust(w) for s, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(r) for r in rows])


def load_trials(run_dir: str | Path) -> tuple[pd.DataFrame, str]:
    """The trials table of a run folder and the file it came from; RunError when there is none."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"not a run folder: {path} does not exist or is not a directory")
    for name, read in (("trials.parquet", pd.read_parquet),
                       ("trials.jsonl", lambda p: pd.read_json(p, lines=True))):
        file = path / name
        if file.is_file():
            try:
                frame = read(file)
            except Exception as exc:  # noqa: BLE001  (any reader failure is "unreadable")
                raise RunError(f"cannot read {file}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            missing = [c for c in REQUIRED if c not in frame.columns]
            if missing:
                raise RunError(f"not a run folder: {file} lacks the trial columns {missing}")
            if frame.empty:
                raise RunError(f"{file} holds no trials")
            return frame, name
    raise RunError(f"not a run folder: {path} has neither trials.parquet nor trials.jsonl")


def _num(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)


def _count_false(frame: pd.DataFrame, col: str) -> int:
    if col not in frame.columns:
        return 0
    return int(sum(1 for v in frame[col] if v is not None and not pd.isna(v) and not bool(v)))


def _why_not(cell: pd.DataFrame) -> str:
    counts = cell["status"].value_counts()
    return ", ".join(f"{n} {s}" for s, n in counts.items()) + _note(cell)


def _judge(key: tuple, cell: pd.DataFrame, guaranteed: bool) -> CellVerdict:
    method, prior, dim, n_samples, t = key
    ok = cell[cell["status"] == "ok"]
    mse = _num(ok, "forward_mse")
    finite = mse[np.isfinite(mse)]
    bounds = _num(cell, "bound_value")
    bound = float(np.nanmedian(bounds)) if np.isfinite(bounds).any() else math.nan
    med, lo, hi = median_ci(finite)
    mean = float(finite.mean()) if finite.size else math.nan
    cert = _num(ok, "cert_value")
    cert_med = float(np.nanmedian(cert)) if np.isfinite(cert).any() else math.nan
    n_cert_fail = _count_false(ok, "cert_holds")
    n_above = int((finite > bound).sum()) if math.isfinite(bound) else 0
    judged, violated = False, False
    if ok.empty:
        verdict = f"not judged: no ok trial: {_why_not(cell)}"
    elif not finite.size:
        verdict = f"not judged: forward_mse is NaN in all {len(ok)} ok trials{_note(ok)}"
    elif not math.isfinite(bound):
        verdict = f"not judged: no bound value{_note(cell, 'bound_name')}"
    elif guaranteed:
        judged = True
        violated = n_cert_fail > 0 or mean > bound
        verdict = (f"violated: certificate fails in {n_cert_fail}/{len(ok)} trials" if n_cert_fail
                   else "violated: mean MSE above the a priori bound" if mean > bound else "holds")
    else:
        judged = True
        verdict = "worse than the max-plus guarantee" if mean > bound else "within the max-plus guarantee"
    if judged and len(ok) < len(cell):
        verdict += f" ({len(cell) - len(ok)} of {len(cell)} trials not ok)"
    return CellVerdict(str(method), str(prior), int(dim), int(n_samples), float(t), len(cell), len(ok),
                       med, lo, hi, mean, bound, mean / bound if judged else math.nan, cert_med,
                       n_cert_fail, n_above, guaranteed, judged, violated, verdict)


def _note(frame: pd.DataFrame, col: str = "message") -> str:
    if col not in frame.columns:
        return ""
    vals = [str(v) for v in frame[col] if v is not None and not pd.isna(v) and str(v)]
    return f" ({vals[0].split('; ')[0][:120]})" if vals else ""


def _slope(key: tuple, group: pd.DataFrame) -> SlopeVerdict:
    method, prior, dim, t = key
    t = t if math.isfinite(t) else math.nan
    ok = group[group["status"] == "ok"]
    fit = fit_loglog_slope(_num(ok, "n_samples"), _num(ok, "forward_mse"))
    theory = _num(group, "theoretical_slope")
    theory = float(np.nanmedian(theory)) if np.isfinite(theory).any() else math.nan
    names = set(group["bound_name"].dropna().astype(str)) if "bound_name" in group.columns else set()
    regimes = {r for r in BOUND_REGIMES for nm in names if nm.endswith("_" + r)}
    if not math.isfinite(theory) and len(regimes) == 1:  # older rows: derive it from the bound's name
        theory = theoretical_slope(regimes.pop(), int(dim))
    if not math.isfinite(fit.low):
        agreement = f"not fitted: {fit.n_points} points at {fit.n_counts} sample counts (need 3 and 2)"
    elif not math.isfinite(theory):
        agreement = "no theoretical slope"
    elif fit.contains(theory):
        agreement = "consistent"
    else:
        agreement = "steeper than theory" if fit.high < theory else "shallower than theory"
    return SlopeVerdict(str(method), str(prior), int(dim), float(t), fit, theory, agreement)


def check_run(run_dir: str | Path, guaranteed: Iterable[str] = GUARANTEED_METHODS) -> BoundReport:
    """Judge every cell of the run in ``run_dir``; raises :class:`RunError` when it is not a run."""
    frame, source = load_trials(run_dir)
    frame = frame.copy()
    frame["t"] = _num(frame, "t")
    frame["status"] = frame["status"].astype(str)
    guaranteed = frozenset(guaranteed)
    order = {c: {v: i for i, v in enumerate(dict.fromkeys(frame[c]))} for c in ("method", "prior")}
    nan_last = lambda v: math.inf if not math.isfinite(v) else v  # noqa: E731
    groups = sorted(frame.groupby(_KEY, sort=False, dropna=False),
                    key=lambda kg: (order["method"][kg[0][0]], order["prior"][kg[0][1]], kg[0][2],
                                    nan_last(kg[0][4]), kg[0][3]))
    cells = [_judge(k, g, k[0] in guaranteed) for k, g in groups]
    fits: dict[tuple, list[pd.DataFrame]] = {}
    for k, g in groups:
        fits.setdefault((k[0], k[1], k[2], nan_last(k[4])), []).append(g)
    slopes = [_slope(k, pd.concat(gs)) for k, gs in fits.items()]
    notes = []
    if not any(c.guaranteed for c in cells):
        notes.append(f"no cell of {sorted(guaranteed)} in this run: no cell is held to the guarantee")
    ids = list(dict.fromkeys(str(v) for v in frame["run_id"].dropna())) if "run_id" in frame.columns else []
    run_id = ids[0] if len(ids) == 1 else Path(run_dir).name
    return BoundReport(Path(run_dir), run_id, source, len(frame), cells, slopes, notes)


def main(run_dir: str | Path, out: Callable[[str], None] = print) -> int:
    """Run the check, print the report through ``out``, write bound_report.md; return the exit code."""
    try:
        report = check_run(run_dir)
    except RunError as exc:
        out(f"error: {exc}")
        return EXIT_NOT_A_RUN
    text = report.to_markdown()
    for line in text.splitlines():
        out(line)
    try:
        (Path(run_dir) / "bound_report.md").write_text(text)
    except OSError as exc:
        out(f"note: could not write bound_report.md: {exc}")
    return report.exit_code
