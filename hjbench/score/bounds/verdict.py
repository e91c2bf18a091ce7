"""The verdicts of ``hjbench check-bound`` and their Markdown report (docs/bounds.md, section 9).

:class:`CellVerdict` judges one cell (method, prior, dim, n_samples, t) against the a priori
bound, :class:`SlopeVerdict` one (method, prior, dim, t) log-log slope against the theoretical
slope (one-sided: :func:`~hjbench.score.bounds.stats.slope_not_shallower`), and
:class:`BoundReport` gathers them, derives the exit code and renders the tables. The rules
that produce them live in :mod:`hjbench.score.check`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .stats import SlopeFit

__all__ = ["EXIT_OK", "EXIT_NOT_A_RUN", "EXIT_VIOLATED", "EXIT_UNJUDGED", "CellVerdict", "SlopeVerdict",
           "BoundReport"]

EXIT_OK, EXIT_NOT_A_RUN, EXIT_VIOLATED, EXIT_UNJUDGED = 0, 2, 3, 4


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
    """Fitted log-log slope of one (method, prior, dim, t) beside the theoretical slope.

    Attributes:
        fit: the least-squares fit over the ok trials kept. n_left_out: ok trials left out as
            optimisation-limited (``opt_limited`` True). theory: the bound's slope.
        bound_slope: the log-log slope of the bound values themselves over the same counts.
        agreement: "consistent", "steeper than theory", "shallower than theory" or why not.
        passed: the one-sided test (fit.low <= theory); None when not fitted.
        binding: the test decides the exit code: a guaranteed method, and a bound in its
            power-law range over these counts (|bound_slope - theory| <= 10% of |theory|).
        violated: binding and not passed.
    """

    method: str
    prior: str
    dim: int
    t: float
    fit: SlopeFit
    theory: float
    agreement: str
    n_left_out: int = 0
    bound_slope: float = math.nan
    passed: bool | None = None
    binding: bool = False
    violated: bool = False


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
    def slope_violations(self) -> list[SlopeVerdict]:
        return [s for s in self.slopes if s.violated]

    @property
    def unjudged(self) -> list[CellVerdict]:
        return [c for c in self.cells if not c.judged]

    @property
    def exit_code(self) -> int:
        if self.violations or self.slope_violations:
            return EXIT_VIOLATED
        return EXIT_UNJUDGED if any(c.guaranteed for c in self.unjudged) else EXIT_OK

    def summary(self) -> str:
        guaranteed = [c for c in self.cells if c.guaranteed]
        if self.violations or self.slope_violations:
            parts = []
            if self.violations:
                parts.append(f"the bound fails in {len(self.violations)} of {len(guaranteed)} guaranteed cells")
            if self.slope_violations:
                s = self.slope_violations[0]
                parts.append(f"{len(self.slope_violations)} guaranteed slope(s) significantly shallower than "
                             f"theory (first: {s.method} / {s.prior} / dim {s.dim}: slope {_g(s.fit.slope)}, "
                             f"95% CI [{_g(s.fit.low)}, {_g(s.fit.high)}] above {_g(s.theory)})")
            return f"VIOLATED: {'; '.join(parts)} (exit {EXIT_VIOLATED})"
        bad = [c for c in self.unjudged if c.guaranteed]
        if bad:
            return (f"no violation, but {len(bad)} of {len(guaranteed)} guaranteed cells could not "
                    f"be judged (exit {EXIT_UNJUDGED})")
        if not guaranteed:
            return "no guaranteed method in this run: nothing is held to the guarantee (exit 0)"
        return f"the guarantee holds in all {len(guaranteed)} guaranteed cells and their slopes (exit 0)"

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
            str(s.fit.n_counts), str(s.fit.n_points), str(s.n_left_out), _g(s.fit.slope),
            f"[{_g(s.fit.low)}, {_g(s.fit.high)}]", _g(s.theory), _g(s.bound_slope), _slope_test(s)]
            for s in self.slopes]
        slopes = _table(head + ["#N", "#points", "#opt-limited left out", "slope", "95% CI", "theory",
                                "bound's slope", "one-sided test"], srows)
        lines = [f"# Bound check: run {self.run_id}", "",
                 f"Source: `{self.source}` ({self.n_rows} trials). Bounds and rules: docs/bounds.md. "
                 "MSE = forward_mse (psi on the held-out set); bound = a priori max-plus bound; "
                 "95% CI = seeded percentile bootstrap of the median.", "",
                 "## Cells", "", cells, "", "## Log-log slopes of forward MSE against N", "",
                 "One-sided: a slope passes unless its 95% interval lies above the theoretical slope "
                 "(steeper is consistent with an upper bound). It is binding (decides the exit code) for a "
                 "guaranteed method where the bound's own slope is within 10% of theory.", "", slopes, ""]
        if self.unjudged:
            lines += ["## Not judged", ""] + _grouped(self.unjudged) + [""]
        lines += [f"- {n}" for n in self.notes] + ([""] if self.notes else [])
        return "\n".join(lines + [f"**Result:** {self.summary()}", ""])


def _slope_test(s: SlopeVerdict) -> str:
    if s.passed is None:
        return s.agreement
    if s.violated:
        return f"violated: {s.agreement}"
    word = "pass" if s.passed else "fail"
    return f"{word} ({s.agreement}{'' if s.binding else '; informative'})"


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
