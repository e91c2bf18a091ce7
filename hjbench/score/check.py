"""Judge a finished run against the max-plus bound: ``hjbench check-bound RUN`` (docs/method.md section 7).

Reads ``RUN/trials.parquet`` (or ``RUN/trials.jsonl`` when the parquet file is missing; columns
as in the results schema, version 1), judges every cell (method, prior, dim, n_samples, t),
fits the log-log slope of the forward MSE against n_samples per (method, prior, dim, t),
prints the tables and writes them to ``RUN/bound_report.md``. Rules (docs/bounds.md, section 9):

* the guaranteed methods (those the bound is a theorem about) are, in order of precedence:
  the ``guaranteed`` argument; else the methods with a non-empty ``guarantee`` value in the
  run's rows, if the run has that column; else the registered methods whose class declares
  a ``guarantee`` (``hjbench.methods``; the max-plus interpolant declares "maxplus");
* a cell is judged on its trials with status "ok" and a finite forward_mse; a cell with none,
  or without a finite bound_value, is "not judged: <reason>";
* a guaranteed method's cell is "violated" when the a posteriori certificate fails in any
  trial (cert_holds False: a deterministic theorem, so a bug), or when the mean forward MSE
  over repetitions exceeds the a priori bound (a bound on the expectation, which the mean
  estimates); otherwise "holds";
* any other method is "within the max-plus guarantee" or "worse than the max-plus guarantee"
  (mean above the bound): a yardstick, never a failure of the run;
* slopes: trials flagged ``opt_limited`` (training error not well below held-out error) are
  left out of the fit unless ``include_opt_limited``; the test is one-sided (pass unless the
  slope's 95% interval lies above the theoretical slope). For a guaranteed method it is
  binding where the bound's own slope over the fitted counts is within 10% of theory: a
  failure there is a violation; elsewhere it is informative.

Exit codes of :func:`main`:

====  ============================================================================
0     every guaranteed cell was judged and holds, and no binding slope test fails
      (also: the run has no guaranteed method; a note says so)
2     RUN is not a run folder, or its trials table cannot be read (one line ``error: ...``
      on ``err``, standard error by default; no traceback)
3     a guaranteed method violates its guarantee: a cell (certificate or a priori bound)
      or a binding one-sided slope test; the report's last line gives the reason
4     no violation, but at least one guaranteed cell could not be judged
====  ============================================================================
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from .bounds.apriori import BOUND_REGIMES
from .bounds.apriori import theoretical_slope
from .bounds.stats import fit_loglog_slope
from .bounds.stats import median_ci
from .bounds.stats import slope_agreement
from .bounds.stats import slope_not_shallower
from .bounds.verdict import EXIT_NOT_A_RUN, EXIT_OK, EXIT_UNJUDGED, EXIT_VIOLATED
from .bounds.verdict import BoundReport, CellVerdict, SlopeVerdict
from ..errors import HJBenchError

__all__ = ["EXIT_OK", "EXIT_NOT_A_RUN", "EXIT_VIOLATED", "EXIT_UNJUDGED", "RunError", "CellVerdict",
           "SlopeVerdict", "BoundReport", "registered_guarantees", "guaranteed_methods", "load_trials",
           "check_run", "main"]

REQUIRED = ("method", "prior", "dim", "n_samples", "status", "forward_mse", "bound_value")
_KEY = ["method", "prior", "dim", "n_samples", "t"]
BINDING_RTOL = 0.1  # the slope test binds where |bound's slope - theory| <= 10% of |theory|


class RunError(HJBenchError):
    """The folder is not a run, or its trials table cannot be read."""


def registered_guarantees() -> frozenset[str]:
    """Registered methods whose class declares a ``guarantee`` (e.g. "maxplus")."""
    from .. import methods

    return frozenset(n for n in methods.names() if getattr(methods.entry(n).cls, "guarantee", None))


def guaranteed_methods(frame: pd.DataFrame, explicit: Iterable[str] | None = None) -> frozenset[str]:
    """The methods held to the guarantee: ``explicit`` if given, else the run's ``guarantee``
    column (methods with a non-empty value) if present, else :func:`registered_guarantees`."""
    if explicit is not None:
        return frozenset(explicit)
    if "guarantee" in frame.columns:
        has = frame["guarantee"].map(lambda v: v is not None and not pd.isna(v) and str(v) != "")
        return frozenset(frame.loc[has, "method"].astype(str))
    return registered_guarantees()


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


def _regime_of(name: str) -> str | None:
    """The regime a bound name ends with (the longest match: "piecewise_smooth" before "smooth")."""
    for r in sorted(BOUND_REGIMES, key=len, reverse=True):
        if name.endswith("_" + r):
            return r
    return None


def _theory(group: pd.DataFrame, dim: int) -> float:
    """The theoretical slope column, or (older rows) the slope of the bound name's regime."""
    theory = _num(group, "theoretical_slope")
    if np.isfinite(theory).any():
        return float(np.nanmedian(theory))
    names = set(group["bound_name"].dropna().astype(str)) if "bound_name" in group.columns else set()
    regimes = {_regime_of(nm) for nm in names} - {None}
    return theoretical_slope(regimes.pop(), int(dim)) if len(regimes) == 1 else math.nan


def _opt_limited(frame: pd.DataFrame) -> np.ndarray:
    """The ``opt_limited`` flags as booleans; a missing column or value counts as False."""
    if "opt_limited" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return np.array([v is not None and not pd.isna(v) and bool(v) for v in frame["opt_limited"]], dtype=bool)


def _slope(key: tuple, group: pd.DataFrame, guaranteed: bool, include_opt_limited: bool) -> SlopeVerdict:
    method, prior, dim, t = key
    t = t if math.isfinite(t) else math.nan
    ok = group[group["status"] == "ok"]
    limited = _opt_limited(ok)
    kept = ok if include_opt_limited else ok[~limited]
    n_samples = _num(kept, "n_samples")
    fit = fit_loglog_slope(n_samples, _num(kept, "forward_mse"))
    theory = _theory(group, dim)
    bound_slope = fit_loglog_slope(n_samples, _num(kept, "bound_value")).slope
    passed = slope_not_shallower(fit, theory)
    binding = bool(guaranteed and passed is not None and math.isfinite(bound_slope)
                   and abs(bound_slope - theory) <= BINDING_RTOL * abs(theory))
    return SlopeVerdict(str(method), str(prior), int(dim), float(t), fit, theory, slope_agreement(fit, theory),
                        n_left_out=0 if include_opt_limited else int(limited.sum()), bound_slope=bound_slope,
                        passed=passed, binding=binding, violated=binding and passed is False)


def _sorted_groups(frame: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """Cells grouped by (method, prior, dim, n_samples, t), in run order of method and prior."""
    order = {c: {v: i for i, v in enumerate(dict.fromkeys(frame[c]))} for c in ("method", "prior")}
    return sorted(frame.groupby(_KEY, sort=False, dropna=False),
                  key=lambda kg: (order["method"][kg[0][0]], order["prior"][kg[0][1]], kg[0][2],
                                  _nan_last(kg[0][4]), kg[0][3]))


def _nan_last(v: float) -> float:
    return math.inf if not math.isfinite(v) else v


def check_run(run_dir: str | Path, guaranteed: Iterable[str] | None = None, *,
              include_opt_limited: bool = False) -> BoundReport:
    """Judge every cell and slope of the run in ``run_dir``; raises :class:`RunError` when it is not a run.

    Args:
        guaranteed: the methods held to the guarantee; default :func:`guaranteed_methods`.
        include_opt_limited: fit slopes over optimisation-limited trials too.
    """
    frame, source = load_trials(run_dir)
    frame = frame.copy()
    frame["t"] = _num(frame, "t")
    frame["status"] = frame["status"].astype(str)
    held = guaranteed_methods(frame, guaranteed)
    groups = _sorted_groups(frame)
    cells = [_judge(k, g, k[0] in held) for k, g in groups]
    fits: dict[tuple, list[pd.DataFrame]] = {}
    for k, g in groups:
        fits.setdefault((k[0], k[1], k[2], _nan_last(k[4])), []).append(g)
    slopes = [_slope(k, pd.concat(gs), k[0] in held, include_opt_limited) for k, gs in fits.items()]
    notes = []
    if not any(c.guaranteed for c in cells):
        notes.append(f"no cell of a guaranteed method ({sorted(held) or 'none registered'}) in this run: "
                     "no cell is held to the guarantee")
    left = sum(s.n_left_out for s in slopes)
    if left:
        notes.append(f"{left} optimisation-limited trials (opt_limited True) left out of the slope fits")
    ids = list(dict.fromkeys(str(v) for v in frame["run_id"].dropna())) if "run_id" in frame.columns else []
    run_id = ids[0] if len(ids) == 1 else Path(run_dir).name
    return BoundReport(Path(run_dir), run_id, source, len(frame), cells, slopes, notes)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def main(run_dir: str | Path, out: Callable[[str], None] = print, err: Callable[[str], None] = _stderr, *,
         guaranteed: Iterable[str] | None = None, include_opt_limited: bool = False) -> int:
    """Run the check, print the report through ``out`` (errors and notes through ``err``), write
    RUN/bound_report.md; return the exit code (module docstring)."""
    try:
        report = check_run(run_dir, guaranteed, include_opt_limited=include_opt_limited)
    except RunError as exc:
        err(f"error: {exc}")
        return EXIT_NOT_A_RUN
    text = report.to_markdown()
    for line in text.splitlines():
        out(line)
    try:
        (Path(run_dir) / "bound_report.md").write_text(text)
    except OSError as exc:
        err(f"note: could not write bound_report.md: {exc}")
    return report.exit_code
