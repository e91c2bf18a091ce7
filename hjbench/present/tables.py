"""Result tables of a run: errors with intervals, coverage and timings (at the largest N, or all N).

One row per method x prior x dim at the largest n_samples of that prior and dim in the run
(a method that failed there shows a dash, never a value from a smaller N); with
``all_n=True`` one row per n_samples as well. Values are the summary's medians over
repetitions with their 95% bootstrap intervals, so the tables agree with the figures. Labels,
pairings and coverage columns come from :mod:`hjbench.score.catalogue`. Written as Markdown
and LaTeX (booktabs), ready to paste, and as HTML for the report (optionally sortable). A
value that could not be computed is never shown as 0:

* "n/a"  the output is not applicable (every trial finished ok, the metric is NaN: e.g. a
         prior error for a method that provides no prior);
* "—"    not computed (the cell failed, was skipped, timed out, or has not run yet);
* "∞"    the median is +inf (a prior not finite at some point; coverage beside it);
* "†"    after a value: the median is over fewer repetitions than were run;
* "‡"    after a method: optimisation-limited in that cell (training error not well below
         the held-out error in most repetitions): not a sample-complexity point.

Methods carry their data regime ("hj [values]"); compare within one regime.

    >>> tables = build_tables(summary)                     # doctest: +SKIP
    >>> print(to_markdown(tables["errors"]))               # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .plots.notes import classify
from .plots.notes import opt_limited_cells
from .style import MethodStyle
from .style import method_label
from .style import method_regimes
from .style import prior_order
from ..score import catalogue

__all__ = ["Column", "Table", "build_tables", "errors_table", "prior_table", "timings_table", "to_markdown",
           "to_latex", "to_html", "write_tables", "FOOTNOTE", "SORT_SCRIPT"]

FOOTNOTE = ("n/a: not applicable (the method does not provide this output); —: not computed (failed, "
            "skipped, timed out or not run yet); ∞: infinite median (non-finite output at some point; "
            "see the coverage); †: median over fewer repetitions than were run; ‡: optimisation-limited "
            "(training error not well below the held-out error), not a sample-complexity point. "
            "[values], [values+grad], [prox pairs]: the data the method learned from. "
            "Values: median over repetitions [95% bootstrap interval].")


@dataclass(frozen=True)
class Column:
    """A metric column: summary metric, Markdown/HTML label, LaTeX label, display scale."""

    metric: str
    label: str
    latex: str
    scale: float = 1.0

    @classmethod
    def of(cls, metric: str) -> "Column":
        """The column of ``metric`` as the catalogue labels and scales it."""
        entry = catalogue.get(metric)
        return cls(metric, entry.text, entry.tex, entry.scale)


@dataclass
class Table:
    """A table's numbers: ``frame`` has the keys (method, prior, dim, n_samples, ok), ``label``
    (method with data regime), ``opt_limited`` and, per column metric m, ``m`` (scaled
    median), ``m_low``, ``m_high`` and ``m_status``."""

    title: str
    columns: list[Column]
    frame: pd.DataFrame


def _rows_at(summary: pd.DataFrame, all_n: bool) -> pd.DataFrame:
    if all_n:
        return summary
    nmax = summary.groupby(["prior", "dim"])["n_samples"].transform("max")
    return summary[summary["n_samples"] == nmax]


def _build(summary: pd.DataFrame, columns: list[Column], title: str, all_n: bool = False) -> Table:
    at = _rows_at(summary, all_n)
    style, regimes = MethodStyle.for_methods(summary["method"]), method_regimes(summary)
    flags = {k[:4] for k in opt_limited_cells(summary)}
    methods, priors = style.sort(summary["method"].unique()), prior_order(summary["prior"])
    keys = at[["prior", "dim", "n_samples"]].drop_duplicates()
    rows = []
    for method in methods:
        for prior in priors:
            for _, key in keys[keys["prior"] == prior].sort_values(["dim", "n_samples"]).iterrows():
                dim, n = int(key["dim"]), int(key["n_samples"])
                cell = at[(at["method"] == method) & (at["prior"] == prior) & (at["dim"] == dim) & (at["n_samples"] == n)]
                first = cell.iloc[0] if len(cell) else None
                row = {"method": method, "prior": prior, "dim": dim, "n_samples": n,
                       "label": method_label(method, regimes.get(method)),
                       "opt_limited": (method, prior, dim, n) in flags,
                       "ok": f"{int(first['n_ok'])}/{int(first['n_trials'])}" if first is not None else "0/0"}
                for col in columns:
                    m = cell[cell["metric"] == col.metric].set_index("metric").reindex([col.metric])
                    status = classify(m)[0]
                    row[col.metric] = m["median"].iloc[0] * col.scale
                    row[f"{col.metric}_low"] = m["ci_low"].iloc[0] * col.scale
                    row[f"{col.metric}_high"] = m["ci_high"].iloc[0] * col.scale
                    row[f"{col.metric}_status"] = "ok" if status == "nonpositive" else status
                rows.append(row)
    return Table(title, columns, pd.DataFrame(rows))


def _with_coverage(summary: pd.DataFrame, metrics: list[str], always: tuple[str, ...] = ("prior", "hull")) -> list[Column]:
    """Columns of ``metrics`` present in the summary, each followed by its coverage column
    (always for prior errors; for forward and prox errors when some coverage is below 1)."""
    present, out = set(summary["metric"]), []
    for metric in metrics:
        if metric not in present:
            continue
        out.append(Column.of(metric))
        cov = catalogue.coverage_for(metric)
        rows = summary[summary["metric"] == cov]["median"]
        if cov in present and (catalogue.get(metric).group in always or (rows < 1).any()):
            out.append(Column.of(cov))
    return list(dict.fromkeys(out))


def errors_table(summary: pd.DataFrame, *, raw: bool = False, all_n: bool = False) -> Table:
    """Forward, prox and prior error (relative MSE, or raw MSE if ``raw``), coverage beside."""
    metrics = [catalogue.FAMILIES[f][1 if raw else 0] for f in ("forward", "prox", "prior")]
    where = "every n_samples" if all_n else "the largest n_samples"
    return _build(summary, _with_coverage(summary, metrics),
                  f"Errors at {where} ({'raw' if raw else 'relative'} MSE)", all_n)


def prior_table(summary: pd.DataFrame, *, all_n: bool = False) -> Table:
    """The prior on equal terms: every point, converged points, the common subset, the hull probe."""
    metrics = ["prior_bvs_mse", "prior_bvs_mse_converged", "prior_bvs_mse_common", "prior_hull_bvs_mse"]
    where = "every n_samples" if all_n else "the largest n_samples"
    return _build(summary, _with_coverage(summary, metrics), f"Prior errors vs J_bvs at {where}", all_n)


def timings_table(summary: pd.DataFrame, *, all_n: bool = False) -> Table:
    """Fit seconds, prox and prior microseconds per point, peak memory."""
    metrics = ["fit_seconds", "prox_seconds_per_point", "prior_seconds_per_point", "peak_memory_mb"]
    cols = [Column.of(m) for m in metrics if m in set(summary["metric"])]
    return _build(summary, cols, f"Timings at {'every' if all_n else 'the largest'} n_samples", all_n)


def build_tables(summary: pd.DataFrame, *, raw: bool = False, all_n: bool = False) -> dict[str, Table]:
    """errors, prior (when the summary has prior rows) and timings tables."""
    out = {"errors": errors_table(summary, raw=raw, all_n=all_n)}
    if "prior_bvs_mse" in set(summary["metric"]):
        out["prior"] = prior_table(summary, all_n=all_n)
    out["timings"] = timings_table(summary, all_n=all_n)
    return out


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
    """(kind, median, low, high) with kind "n/a", "—", "∞", "ok" or "partial"."""
    status = row[f"{metric}_status"]
    if status == "not_applicable":
        return "n/a", math.nan, math.nan, math.nan
    if status == "infinite":
        return "∞", math.inf, math.nan, math.nan
    if status in ("missing", "absent") or not math.isfinite(row[metric]):
        return "—", math.nan, math.nan, math.nan
    return status, row[metric], row[f"{metric}_low"], row[f"{metric}_high"]


def _texts(table: Table, fmt, interval, dagger: str = "†", dash: str = "—", ddagger: str = "‡",
           inf: str = "∞") -> list[list[str]]:
    """Cell strings of every row: keys (the method with its data regime, ‡ where
    optimisation-limited), then each metric as fmt(median) + interval(lo, hi)."""
    out = []
    for _, row in table.frame.iterrows():
        cells = [row["label"] + (ddagger if row["opt_limited"] else ""), row["prior"], str(row["dim"]),
                 str(row["n_samples"])]
        for col in table.columns:
            kind, med, lo, hi = _parts(row, col.metric)
            if kind in ("n/a", "—", "∞"):
                cells.append({"—": dash, "∞": inf}.get(kind, kind))
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
                   dagger=r"$^\dagger$", dash="---", ddagger=r"$^\ddagger$", inf=r"$\infty$")
    for cells in texts:
        if previous is not None and cells[0] != previous:
            lines.append(r"\addlinespace")
        previous = cells[0]
        lines.append(" & ".join(_tex_escape(c) if i < 2 else c for i, c in enumerate(cells)) + r" \\")
    note = FOOTNOTE.replace("—", "---").replace("†", r"$^\dagger$").replace("‡", r"$^\ddagger$").replace(
        "∞", r"$\infty$")
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip{\footnotesize " + note + "}",
              r"\end{table*}", ""]
    return "\n".join(lines)


SORT_SCRIPT = ("<script>document.querySelectorAll('table.sortable th').forEach(th=>th.onclick=()=>{"
               "const i=th.cellIndex,b=th.closest('table').tBodies[0],r=[...b.rows],"
               "d=th.dataset.d=th.dataset.d==='1'?'-1':'1',"
               "v=x=>{const t=x.cells[i].dataset.v??x.cells[i].textContent;return isNaN(+t)?t:+t};"
               "r.sort((a,c)=>(v(a)>v(c)?1:v(a)<v(c)?-1:0)*d).forEach(x=>b.appendChild(x))})</script>")


def to_html(table: Table, *, sortable: bool = False) -> str:
    """An HTML table (escaped; no external resources) with the footnote as a caption.

    ``sortable``: class "sortable" and a numeric ``data-v`` per value cell (the median, or
    +-1e308 for ∞ and gaps) so that a page including :data:`SORT_SCRIPT` (one inline script)
    sorts by a click on a header; without the script the table reads as a plain one."""
    head = ["method", "prior", "dim", "N"] + [c.label for c in table.columns] + ["ok/trials"]
    rows = ["<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    texts = _texts(table, lambda v: html.escape(_num(v)), lambda lo, hi: f" <small>[{lo}, {hi}]</small>")
    for (_, row), cells in zip(table.frame.iterrows(), texts):
        tds = []
        for i, c in enumerate(cells):
            text = html.escape(c) if i < 4 or i == len(cells) - 1 else c
            col = table.columns[i - 4] if 4 <= i < len(cells) - 1 else None
            value = row[col.metric] if col is not None else math.nan
            sort = f' data-v="{value:.6g}"' if sortable and col is not None and math.isfinite(value) else (
                ' data-v="1e308"' if sortable and col is not None else "")
            tds.append(f"<td{sort}>{text}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    cls = " class=sortable" if sortable else ""
    return (f"<h3>{html.escape(table.title)}</h3><table{cls}><caption>{html.escape(FOOTNOTE)}</caption>"
            + "".join(rows) + "</tbody></table>")


def write_tables(summary: pd.DataFrame, out_dir: Path | str, *, raw: bool = False) -> list[Path]:
    """Write errors, prior (when there are prior rows) and timings as .md and .tex under
    ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in build_tables(summary, raw=raw).items():
        for suffix, text in ((".md", to_markdown(table)), (".tex", to_latex(table, label=f"tab:{name}"))):
            path = out / f"{name}{suffix}"
            path.write_text(text, encoding="utf-8")
            paths.append(path)
    return paths
