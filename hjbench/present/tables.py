"""Result tables of a run: errors with intervals and timings at the largest n_samples.

One row per method x prior x dim, at the largest n_samples of that prior and dim in the run
(a method that failed there shows a dash, never a value from a smaller N). Values are the
summary's medians over repetitions with their 95% bootstrap intervals, so the tables agree
with the figures. Written as Markdown and as LaTeX (booktabs), ready to paste, and as HTML
for the report. A value that could not be computed is never shown as 0:

* "n/a"  the output is not applicable (every trial finished ok, the metric is NaN: e.g. a
         prior error for a method that provides no prior);
* "—"    not computed (the cell failed, was skipped, timed out, or has not run yet);
* "†"    after a value: the median is over fewer repetitions than were run.

    >>> tables = build_tables(summary)                     # doctest: +SKIP
    >>> print(to_markdown(tables["errors"]))               # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .style import MethodStyle
from .style import prior_order
from .plots._common import FAMILIES
from .plots._notes import classify

__all__ = ["Column", "Table", "build_tables", "errors_table", "timings_table", "to_markdown", "to_latex",
           "to_html", "write_tables", "FOOTNOTE"]

FOOTNOTE = ("n/a: not applicable (the method does not provide this output); —: not computed (failed, "
            "skipped, timed out or not run yet); †: median over fewer repetitions than were run. "
            "Values: median over repetitions [95% bootstrap interval].")


@dataclass(frozen=True)
class Column:
    """A metric column: summary metric, Markdown/HTML label, LaTeX label, display scale."""

    metric: str
    label: str
    latex: str
    scale: float = 1.0


@dataclass
class Table:
    """A table's numbers: ``frame`` has the keys (method, prior, dim, n_samples, ok) and, per
    column metric m, ``m`` (scaled median), ``m_low``, ``m_high`` and ``m_status``."""

    title: str
    columns: list[Column]
    frame: pd.DataFrame


def _largest_n(summary: pd.DataFrame) -> pd.DataFrame:
    nmax = summary.groupby(["prior", "dim"])["n_samples"].transform("max")
    return summary[summary["n_samples"] == nmax]


def _build(summary: pd.DataFrame, columns: list[Column], title: str) -> Table:
    at = _largest_n(summary)
    style = MethodStyle.for_methods(summary["method"])
    methods, priors = style.sort(summary["method"].unique()), prior_order(summary["prior"])
    keys = at[["prior", "dim", "n_samples"]].drop_duplicates()
    rows = []
    for method in methods:
        for prior in priors:
            for _, key in keys[keys["prior"] == prior].sort_values("dim").iterrows():
                cell = at[(at["method"] == method) & (at["prior"] == prior) & (at["dim"] == key["dim"])]
                row = {"method": method, "prior": prior, "dim": int(key["dim"]), "n_samples": int(key["n_samples"])}
                first = cell.iloc[0] if len(cell) else None
                row["ok"] = f"{int(first['n_ok'])}/{int(first['n_trials'])}" if first is not None else "0/0"
                for col in columns:
                    m = cell[cell["metric"] == col.metric].set_index("metric").reindex([col.metric])
                    status = classify(m)[0]
                    row[col.metric] = m["median"].iloc[0] * col.scale
                    row[f"{col.metric}_low"] = m["ci_low"].iloc[0] * col.scale
                    row[f"{col.metric}_high"] = m["ci_high"].iloc[0] * col.scale
                    row[f"{col.metric}_status"] = "ok" if status == "nonpositive" else status
                rows.append(row)
    return Table(title, columns, pd.DataFrame(rows))


def errors_table(summary: pd.DataFrame, *, raw: bool = False) -> Table:
    """Forward, prox and prior error (relative MSE, or raw MSE if ``raw``) at the largest N."""
    which = 1 if raw else 0
    kind = "MSE" if raw else "rel. MSE"
    labels = {"forward": (f"forward {kind}", rf"$\psi$ {kind}"), "prox": (f"prox {kind}", f"prox {kind}"),
              "prior": (f"prior {kind} vs J_bvs", rf"prior {kind} vs $J_{{\mathrm{{bvs}}}}$")}
    cols = [Column(FAMILIES[f][which], *labels[f]) for f in ("forward", "prox", "prior")]
    title = f"Errors at the largest n_samples ({'raw' if raw else 'relative'} MSE)"
    return _build(summary, [c for c in cols if c.metric in set(summary["metric"])], title)


def timings_table(summary: pd.DataFrame) -> Table:
    """Fit seconds, prox and prior microseconds per point, peak memory, at the largest N."""
    cols = [Column("fit_seconds", "fit [s]", "fit [s]"),
            Column("prox_seconds_per_point", "prox [µs/point]", r"prox [$\mu$s/pt]", 1e6),
            Column("prior_seconds_per_point", "prior [µs/point]", r"prior [$\mu$s/pt]", 1e6),
            Column("peak_memory_mb", "peak memory [MB]", "memory [MB]")]
    return _build(summary, [c for c in cols if c.metric in set(summary["metric"])],
                  "Timings at the largest n_samples")


def build_tables(summary: pd.DataFrame, *, raw: bool = False) -> dict[str, Table]:
    return {"errors": errors_table(summary, raw=raw), "timings": timings_table(summary)}


# -- formatting ------------------------------------------------------------------------------
def _num(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.2e}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3g}"


def _tex_num(v: float) -> str:
    text = _num(v)
    if "e" not in text:
        return f"${text}$"
    mant, exp = text.split("e")
    return rf"${mant}{{\times}}10^{{{int(exp)}}}$"


def _parts(row: pd.Series, metric: str) -> tuple[str, float, float, float]:
    """(kind, median, low, high) with kind "n/a", "—", "ok" or "partial"."""
    status = row[f"{metric}_status"]
    if status == "not_applicable":
        return "n/a", math.nan, math.nan, math.nan
    if status in ("missing", "absent") or not math.isfinite(row[metric]):
        return "—", math.nan, math.nan, math.nan
    return status, row[metric], row[f"{metric}_low"], row[f"{metric}_high"]


def _texts(table: Table, fmt, interval, dagger: str = "†", dash: str = "—") -> list[list[str]]:
    """Cell strings of every row: keys, then each metric as fmt(median) + interval(lo, hi)."""
    out = []
    for _, row in table.frame.iterrows():
        cells = [row["method"], row["prior"], str(row["dim"]), str(row["n_samples"])]
        for col in table.columns:
            kind, med, lo, hi = _parts(row, col.metric)
            if kind in ("n/a", "—"):
                cells.append(dash if kind == "—" else kind)
                continue
            text = fmt(med) + (interval(fmt(lo), fmt(hi)) if math.isfinite(lo) and math.isfinite(hi) else "")
            cells.append(text + (dagger if kind == "partial" else ""))
        out.append(cells + [row["ok"]])
    return out


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table with the footnote under it."""
    head = ["method", "prior", "dim", "N"] + [c.label for c in table.columns] + ["ok/trials"]
    lines = [f"**{table.title}**", "", "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] * 4 + ["---:"] * len(table.columns) + ["---:"]) + "|"]
    for cells in _texts(table, _num, lambda lo, hi: f" [{lo}, {hi}]"):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines + ["", FOOTNOTE, ""])


def _tex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def to_latex(table: Table, *, label: str = "") -> str:
    """A booktabs ``table*`` (needs ``\\usepackage{booktabs}``), footnote under the tabular."""
    head = ["method", "prior", "$n$", "$N$"] + [c.latex for c in table.columns] + ["ok"]
    spec = "llrr" + "r" * len(table.columns) + "r"
    lines = [r"% requires \usepackage{booktabs}", r"\begin{table*}[t]", r"\centering", r"\small",
             rf"\caption{{{_tex_escape(table.title)}.}}" + (rf"\label{{{label}}}" if label else ""),
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    previous = None
    texts = _texts(table, _tex_num, lambda lo, hi: rf" {{\scriptsize [{lo}, {hi}]}}",
                   dagger=r"$^\dagger$", dash="---")
    for cells in texts:
        if previous is not None and cells[0] != previous:
            lines.append(r"\addlinespace")
        previous = cells[0]
        lines.append(" & ".join(_tex_escape(c) if i < 2 else c for i, c in enumerate(cells)) + r" \\")
    note = FOOTNOTE.replace("—", "---").replace("†", r"$^\dagger$")
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip{\footnotesize " + note + "}",
              r"\end{table*}", ""]
    return "\n".join(lines)


def to_html(table: Table) -> str:
    """An HTML table (escaped; no external resources) with the footnote as a caption."""
    head = ["method", "prior", "dim", "N"] + [c.label for c in table.columns] + ["ok/trials"]
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    texts = _texts(table, lambda v: html.escape(_num(v)), lambda lo, hi: f" <small>[{lo}, {hi}]</small>")
    for cells in texts:
        tds = [html.escape(c) if i < 4 or i == len(cells) - 1 else c for i, c in enumerate(cells)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in tds) + "</tr>")
    return (f"<h3>{html.escape(table.title)}</h3><table><caption>{html.escape(FOOTNOTE)}</caption>"
            + "".join(rows) + "</table>")


def write_tables(summary: pd.DataFrame, out_dir: Path | str, *, raw: bool = False) -> list[Path]:
    """Write errors.{md,tex} and timings.{md,tex} under ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in build_tables(summary, raw=raw).items():
        for suffix, text in ((".md", to_markdown(table)), (".tex", to_latex(table, label=f"tab:{name}"))):
            path = out / f"{name}{suffix}"
            path.write_text(text, encoding="utf-8")
            paths.append(path)
    return paths
