"""A report that travels: one self-contained HTML file per run (figures embedded, nothing fetched).

:func:`write_html_report` renders ``templates/report.html.j2`` (jinja2, autoescaped) from what
``hjbench report`` already computes; :func:`write_standalone` computes it from a run folder
(the figures already drawn in ``figures/``, the summary, the bound check, run.json). The page has:

* headline figures (error against N, error over the bound), then the other figures, each PNG
  embedded as a ``data:image/png;base64`` URI (downscaled to at most ``max_px`` pixels wide);
* the bound check (:func:`hjbench.score.check.check_run`): its verdict, the fitted log-log
  slopes with 95% intervals beside theory, and every cell;
* coverage and optimisation-limited flags per cell, from the run's own columns
  (``*_coverage``, ``train_test_ratio``, ``opt_limited``; a run without them says so);
* the data regime each method learned from and the outputs it provides;
* the error, prior and timing tables over every N (:func:`hjbench.present.tables.to_html`),
  sortable by a click on a header (one inline script, the template's; it sorts on the
  cells' ``data-v`` values, as :data:`hjbench.present.tables.SORT_SCRIPT` does, by column);
* provenance: the commit that produced the run (run.json ``environment.git.commit`` and
  ``code_version``, not the checkout rendering the page), versions, machine, the command and
  the resolved configuration.

No ``http(s)`` reference, stylesheet link or external script: the file reads offline and can
be mailed or attached as it is.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["write_html_report", "write_standalone", "embed_png", "figure_caption", "HEADLINE_PREFIXES"]

HEADLINE_PREFIXES = ("error_vs_n", "bound_ratio")
_VALIDITY = ("forward_coverage", "prox_coverage", "prior_coverage", "train_test_ratio", "opt_limited")


def embed_png(path: str | Path, max_px: int | None = 2400, colors: int | None = 256) -> tuple[str, int, int]:
    """(``data:image/png;base64,...`` URI, width, height) of a PNG, flattened onto white,
    downscaled (Lanczos) to at most ``max_px`` pixels wide and reduced to a palette of
    ``colors`` colours (about a third of the bytes of a 300-dpi matplotlib figure, no visible
    loss); ``max_px=None, colors=None`` embeds the file's bytes unchanged."""
    from PIL import Image  # a dependency of matplotlib

    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        if (max_px is not None and width > max_px) or colors is not None:
            flat = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA")).convert("RGB")
            if max_px is not None and width > max_px:
                height, width = round(height * max_px / width), max_px
                flat = flat.resize((width, height), Image.LANCZOS)
            if colors is not None:
                flat = flat.quantize(colors, method=Image.Quantize.MEDIANCUT)
            buf = io.BytesIO()
            flat.save(buf, format="PNG")
            data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), width, height


def figure_caption(stem: str) -> str:
    """A default caption for a figure file written by :mod:`hjbench.present.plots`."""
    from ..score import catalogue

    if stem.startswith("error_vs_n_"):
        return (f"Held-out {catalogue.label(stem[len('error_vs_n_'):], 'text')} against n_samples: medians over "
                "repetitions with 95% bands, the a priori max-plus bound where it applies, fitted slopes.")
    if stem.startswith("cross_section_"):
        return "Cross-sections along the first axis (largest N, repetition 0) against the ground truth."
    return {"bound_ratio": "Forward MSE over the a priori max-plus bound (below 1: within the guarantee).",
            "fit_time": "Fit wall time against n_samples.",
            "eval_time": "Prox and prior evaluation time per point."}.get(stem, stem.replace("_", " "))


def _g(v: Any) -> str:
    return "n/a" if v is None or not isinstance(v, (int, float)) or not math.isfinite(v) else f"{v:.3g}"


def _v(v: Any) -> float | None:
    """A sort value: finite numbers as they are, infinities as +-1e308, anything else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return float(v) if math.isfinite(v) else math.copysign(1e308, v)


def _cell(v: Any) -> tuple[str, float | None]:
    """(text, sort value) of a table cell: integers as they are, floats to 3 digits, else text."""
    if hasattr(v, "item") and not isinstance(v, str):
        v = v.item()  # numpy scalars
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v), None
    return (str(v) if isinstance(v, int) else _g(v)), _v(v)


def _bound(report) -> dict:
    def test(s) -> str:
        if s.passed is None:
            return s.agreement
        return "violated" if s.violated else f"{'pass' if s.passed else 'fail'}{'' if s.binding else ' (informative)'}"

    slopes = [[_cell(s.method), _cell(s.prior), _cell(s.dim), _cell(s.fit.n_points), _cell(s.n_left_out),
               _cell(s.fit.slope), (f"[{_g(s.fit.low)}, {_g(s.fit.high)}]", _v(s.fit.low)), _cell(s.theory),
               _cell(s.bound_slope), _cell(test(s))] for s in report.slopes]
    cells = [[_cell(c.method), _cell(c.prior), _cell(c.dim), _cell(c.n_samples), (f"{c.n_ok}/{c.n_trials}", c.n_ok),
              _cell(c.median), (f"[{_g(c.ci_low)}, {_g(c.ci_high)}]", _v(c.ci_low)), _cell(c.mean), _cell(c.bound),
              _cell(c.ratio), _cell(c.verdict)] for c in report.cells]
    return {"summary": report.summary(), "notes": list(report.notes),
            "slopes": {"head": ["method", "prior", "dim", "points", "opt.-limited left out", "slope", "95% CI",
                                "theory", "bound's slope", "one-sided test"], "rows": slopes, "caption": ""},
            "cells": {"head": ["method", "prior", "dim", "N", "ok", "median MSE", "95% CI", "mean MSE", "bound",
                               "mean/bound", "verdict"], "rows": cells, "caption": ""}}


def _validity(summary) -> dict | None:
    """Per cell: coverage medians, train/test ratio and the share of opt-limited repetitions."""
    if summary is None or not len(summary):
        return None
    present = [m for m in _VALIDITY if m in set(summary["metric"])]
    if not present:
        return None
    keys = ["method", "prior", "dim", "n_samples"]
    wide = summary[summary["metric"].isin(present)].pivot_table(index=keys, columns="metric", values=["median", "mean"],
                                                                aggfunc="first", sort=False)
    rows = []
    for key, r in wide.iterrows():
        row = [_cell(k) for k in key]
        for m in present:
            if m == "opt_limited":
                share = r.get(("mean", m), math.nan)
                flag = " ‡" if r.get(("median", m), 0) > 0.5 else ""
                row.append((f"{share:.0%}{flag}" if math.isfinite(share) else "n/a", _v(share)))
            else:
                row.append(_cell(r.get(("median", m), math.nan)))
        rows.append(row)
    from ..score import catalogue

    head = keys[:3] + ["N"] + [catalogue.label(m, "text") for m in present]
    return {"head": head, "rows": rows, "caption": "n/a: the method does not provide that output."}


def _regimes(summary) -> dict:
    from .. import methods
    from .style import method_regimes

    rows = []
    if summary is not None and len(summary):
        cells = summary.drop_duplicates(["method", "prior", "dim", "n_samples"])
        for method, regime in method_regimes(summary).items():
            try:
                provides = ", ".join(sorted(methods.entry(method).cls.provides))
            except Exception:  # noqa: BLE001 (a plug-in not installed where the page is rendered)
                provides = "unknown here (not registered)"
            mine = cells[cells["method"] == method]
            rows.append([_cell(method), _cell(regime or "not recorded"), _cell(provides),
                         (f"{int(mine['n_ok'].sum())}/{int(mine['n_trials'].sum())}", _v(int(mine["n_ok"].sum())))])
    return {"head": ["method", "data regime", "provides", "ok/trials"], "rows": rows, "caption": ""}


def _provenance(info: dict, run_dir: Path) -> list[tuple[str, str]]:
    env = info.get("environment") or {}
    git = env.get("git") or {}
    command = info.get("command")
    items = {"run folder": run_dir.name, "run id": info.get("run_id"),
             "commit of the run": git.get("commit"), "uncommitted changes": git.get("dirty"),
             "code version": info.get("code_version") or env.get("code_version"),
             "code versions (resumed sessions)": ", ".join(info.get("code_versions") or []) or None,
             "mixed code": info.get("mixed_code"), "results schema": info.get("schema_version"),
             "command": " ".join(command) if isinstance(command, list) else command,
             "started": info.get("started"), "ended": info.get("ended") or "not ended (running or killed)",
             "counts by status": json.dumps(info.get("counts"), sort_keys=True) if info.get("counts") else None}
    items |= {k: env.get(k) for k in ("hjbench", "python", "torch", "jax", "numpy", "pandas", "platform",
                                        "cpu_model", "cpu_count", "gpu_model", "cuda", "torch_threads")}
    return [(k, str(v)) for k, v in items.items() if v not in (None, "", [], {})]


def page_path(run_dir: str | Path, info: dict | None = None) -> Path:
    """Where the self-contained page of a run lives: ``RUN/report/<run_id>.html``."""
    from ..run.folder import RunFolder

    run_dir = Path(run_dir)
    info = info if info is not None else RunFolder(run_dir).read_run_json()
    return run_dir / "report" / f"{info.get('run_id') or run_dir.name}.html"


def write_html_report(run_dir: str | Path, out_path: str | Path | None = None, *, figures: dict[str, Path],
                      tables: dict, bound_report=None, info: dict, summary=None,
                      captions: dict[str, str] | None = None, problems: list[str] | None = None,
                      max_px: int | None = 2400) -> Path:
    """Render the self-contained page and return its path (default ``RUN/report/<run_id>.html``).

    Args:
        figures: name -> PNG path (stems starting with :data:`HEADLINE_PREFIXES` are headline
            figures, in the order given; the others follow in "More figures").
        tables: name -> :class:`hjbench.present.tables.Table` (build them with ``all_n=True``).
        bound_report: a :class:`~hjbench.score.bounds.verdict.BoundReport`, or None (not judged).
        info: run.json as a dict. summary: the long summary (coverage, opt-limited, regimes).
        captions: name -> caption (default :func:`figure_caption`). problems: warnings shown on top.
    """
    import jinja2
    from markupsafe import Markup

    from .. import __version__
    from . import tables as tables_mod

    run_dir = Path(run_dir)
    out = Path(out_path) if out_path is not None else page_path(run_dir, info)
    figs = []
    for name, png in figures.items():
        uri, width, height = embed_png(png, max_px)
        shown = min(width, 1000)
        figs.append({"stem": name, "uri": uri, "width": shown, "height": round(height * shown / width),
                     "caption": (captions or {}).get(name) or figure_caption(name)})
    git = (info.get("environment") or {}).get("git") or {}
    env = jinja2.Environment(loader=jinja2.PackageLoader("hjbench.present", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    counts = info.get("counts") or {}
    done = info.get("ended") and not any(v for k, v in counts.items() if k not in ("ok",))
    page = env.get_template("report.html.j2").render(
        version=__version__, run_id=str(info.get("run_id") or run_dir.name), commit=git.get("commit") or info.get("code_version") or "unknown",
        dirty=bool(git.get("dirty")), status="Complete" if done else "Partial or with failed trials: see the tables",
        problems=problems or [], headline=[f for f in figs if f["stem"].startswith(HEADLINE_PREFIXES)],
        more=[f for f in figs if not f["stem"].startswith(HEADLINE_PREFIXES)],
        bound=_bound(bound_report) if bound_report is not None else None,
        bound_missing="The bound check could not be run on this folder (see the warnings above).",
        validity=_validity(summary), validity_missing="This run records no coverage or optimisation-limited "
        "columns (an older results schema); re-run it with this hjbench to see them.",
        regimes=_regimes(summary), tables=[Markup(tables_mod.to_html(t, sortable=True)) for t in tables.values()],
        provenance=_provenance(info, run_dir), config=json.dumps(info.get("config", {}), indent=2, sort_keys=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _figure_files(figures_dir: Path) -> dict[str, Path]:
    """PNGs of a run's figures/ folder: headline figures first (in :data:`HEADLINE_PREFIXES`
    order), then the others by name."""
    pngs = sorted(figures_dir.glob("*.png")) if figures_dir.is_dir() else []
    rank = lambda p: next((i for i, pre in enumerate(HEADLINE_PREFIXES) if p.stem.startswith(pre)),  # noqa: E731
                          len(HEADLINE_PREFIXES))
    return {p.stem: p for p in sorted(pngs, key=lambda p: (rank(p), p.stem))}


def write_standalone(run_dir: str | Path, out_path: str | Path | None = None, *, raw: bool = False,
                     max_px: int | None = 2400) -> Path:
    """The self-contained page of a run folder from what is on disk (see the module docstring):
    the figures in ``figures/`` (draw them first with ``hjbench report RUN``), the summary
    (summary.parquet, or computed from the trials), the bound check and run.json. ``raw``:
    tables of raw instead of relative MSE. Returns the page's path."""
    import pandas as pd

    from ..errors import HJBenchError
    from ..score.check import check_run
    from . import tables
    from .plots import load_summary

    run_dir = Path(run_dir)
    problems: list[str] = []
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8")) if (run_dir / "run.json").exists() else {}
    try:
        summary = load_summary(run_dir)[0]
    except HJBenchError as exc:  # e.g. trials of another schema version: the stored summary, if any
        summary = pd.read_parquet(run_dir / "summary.parquet") if (run_dir / "summary.parquet").exists() else None
        problems.append(f"{'summary.parquet shown as stored' if summary is not None else 'no summary'}: {exc}")
    try:
        bound = check_run(run_dir)
    except HJBenchError as exc:
        bound = None
        problems.append(f"bound check not run: {exc}")
    built = tables.build_tables(summary, raw=raw, all_n=True) if summary is not None and len(summary) else {}
    return write_html_report(run_dir, out_path, figures=_figure_files(run_dir / "figures"), tables=built,
                             bound_report=bound, info=info, summary=summary, problems=problems, max_px=max_px)
