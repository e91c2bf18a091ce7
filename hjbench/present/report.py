"""``hjbench report RUN``: figures, tables and a static HTML page for one run folder.

Writes, inside the run folder:

* ``figures/``  error against N (forward, prox, prior), error over the bound, fit time and
  evaluation time (:mod:`hjbench.present.plots`), and the cross-sections: drawn from the curves the
  runner stored (``sections/<trial_id>.parquet`` by :func:`hjbench.present.plots.write_sections`, or
  a ``sections.parquet``), and in any case every ``figures/cross_section_*.png`` already
  there (e.g. from :func:`hjbench.present.plots.cross_section_figure`) is shown;
* ``tables/``   errors.{md,tex} and timings.{md,tex} (:mod:`hjbench.present.tables`);
* ``report/index.html``  one page with the figures (relative links to ``../figures``), the
  tables, the run's provenance (run.json: command, config, versions, git commit, machine,
  start and end, counts by status) and a "Missing cells" section (failed, skipped, timed
  out, or not run yet, with the reason). No scripts and no external resources: it reads
  offline, and the whole folder can be copied.

Everything comes from the run's summary (summary.parquet, or one computed from the trials
when it is absent or older than them), so a run still going, or with failed cells, gets a
report that says what is missing.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from typing import Any, Callable

import pandas as pd

__all__ = ["main", "expected_cells", "missing_cells"]

_RUN_FILES = ("run.json", "trials.jsonl", "trials.parquet", "summary.parquet")
_KEYS = ["method", "prior", "dim", "n_samples"]


def expected_cells(config: dict) -> pd.DataFrame | None:
    """The grid of run.json's resolved config: one row per (method, prior, dim, n_samples) with
    the number of repetitions planned; None when the config is not a grid this understands."""
    try:
        names = lambda items: [i["name"] if isinstance(i, dict) else str(i) for i in items]  # noqa: E731
        methods, priors = names(config["methods"]), names(config["priors"])
        dims = [int(d) for d in config["dims"]]
        n_samples = config["n_samples"]
        per_dim = {d: [int(n) for n in (n_samples.get(str(d), n_samples.get(d, [])) if isinstance(n_samples, dict)
                                         else n_samples)] for d in dims}
        reps = int(config["repetitions"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    rows = [(m, p, d, n, reps) for m in methods for p in priors for d in dims for n in per_dim[d]]
    return pd.DataFrame(rows, columns=_KEYS + ["planned"])


def missing_cells(trials: pd.DataFrame | None, config: dict | None,
                  summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cells with a trial not ok, or not run yet: method, prior, dim, n_samples, what, reason.

    Reads the trials when there are any (statuses and messages); a run kept as its summary
    only (a committed reference run) is read from the summary's n_trials and n_ok.
    """
    rows, have = [], {}
    if trials is not None and len(trials):
        for key, group in trials.groupby(_KEYS, sort=False):
            key = (key[0], key[1], int(key[2]), int(key[3]))
            have[key] = len(group)
            bad = group[group["status"] != "ok"]
            if len(bad):
                what = ", ".join(f"{s} x{n}" for s, n in bad["status"].value_counts().sort_index().items())
                messages = [m for m in bad["message"].fillna("").astype(str) if m]
                rows.append(list(key) + [what, messages[0] if messages else "(no message)"])
    elif summary is not None and len(summary):
        cells = summary.drop_duplicates(_KEYS)
        for _, c in cells.iterrows():
            key = (c["method"], c["prior"], int(c["dim"]), int(c["n_samples"]))
            have[key] = int(c["n_trials"])
            if c["n_ok"] < c["n_trials"]:
                rows.append(list(key) + [f"not ok x{int(c['n_trials'] - c['n_ok'])}",
                                         "statuses and messages are in trials.jsonl (not kept with this run)"])
    expected = expected_cells(config) if config else None
    if expected is not None:
        for _, c in expected.iterrows():
            key = (c["method"], c["prior"], int(c["dim"]), int(c["n_samples"]))
            todo = int(c["planned"]) - have.get(key, 0)
            if todo > 0:
                rows.append(list(key) + [f"not run yet x{todo}", "no trial recorded yet (running or interrupted)"])
    return pd.DataFrame(rows, columns=_KEYS + ["what", "reason"])


def _png_inches(path: Path) -> float:
    """Printed width of a PNG in inches (pixel width over its dpi); 0 if unreadable."""
    from PIL import Image  # a dependency of matplotlib

    try:
        with Image.open(path) as im:
            return im.size[0] / float((im.info.get("dpi") or (300, 300))[0])
    except OSError:
        return 0.0


def _figure_html(png: Path, caption: str, report_dir: Path) -> str:
    inches = _png_inches(png)
    shown = min(1000, int(inches * 150)) if inches else 900  # ~ print size on a laptop screen
    rel = Path("..") / png.relative_to(report_dir.parent)
    pdf = png.with_suffix(".pdf")
    link = f' <a href="{html.escape(str(rel.with_suffix(".pdf")))}">PDF</a>' if pdf.exists() else ""
    return (f'<figure><img src="{html.escape(str(rel))}" alt="{html.escape(png.stem)}" '
            f'style="width:{shown}px;max-width:100%"><figcaption><b>{html.escape(png.stem)}.</b> '
            f"{html.escape(caption)}{link}</figcaption></figure>")


def _kv_table(items: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_plain(v))}</td></tr>"
                   for k, v in items.items() if v not in (None, "", {}, []))
    return f"<table class=kv>{rows}</table>"


def _plain(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _provenance(info: dict, run_dir: Path, source: str, n_trials: int) -> str:
    env = info.get("environment") or {}
    git = env.get("git") or info.get("git") or {}
    versions = {k: env.get(k) for k in ("python", "hjbench", "torch", "jax", "numpy", "pandas")}
    versions |= info.get("versions") or {}
    machine = {k: env.get(k) for k in ("cpu_model", "cpu_count", "gpu_model", "cuda", "torch_threads",
                                       "omp_num_threads", "platform")} | (info.get("machine") or {})
    command = info.get("command")
    main = {"run folder": str(run_dir), "run id": info.get("run_id", run_dir.name),
            "command": " ".join(command) if isinstance(command, list) else command,
            "started": info.get("started"), "ended": info.get("ended") or "not ended (running or killed)",
            "interrupted": info.get("interrupted"),
            "git commit": f"{git.get('commit')}" + (" (dirty)" if git.get("dirty") else "") if git else None,
            "trials planned": info.get("n_trials"), "trials recorded": n_trials,
            "counts by status": info.get("counts"), "summary": source}
    config = json.dumps(info.get("config", {}), indent=2, sort_keys=True)
    return ("<h2 id=provenance>Provenance</h2>" + _kv_table(main) + "<h3>Versions</h3>" + _kv_table(versions)
            + "<h3>Machine</h3>" + _kv_table(machine)
            + f"<details><summary>Resolved configuration (run.json)</summary><pre>{html.escape(config)}</pre></details>")


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}th,td{border-bottom:1px solid #ddd;
padding:.2em .6em;text-align:left;vertical-align:top}td small{color:#666}caption{caption-side:bottom;
text-align:left;font-size:.9em;color:#555;padding-top:.4em}figure{margin:1.5em 0}figcaption{font-size:.85em;
color:#444;max-width:980px}pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em}
.kv th{width:12em;color:#555}.warn{color:#a33}"""


def _page(title: str, body: list[str]) -> str:
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>" + "".join(body) + "</body></html>\n")


def main(run_dir: str | Path, *, raw: bool = False, dpi: int = 300,
         formats: tuple[str, ...] = ("pdf", "png"), progress: Callable[[str], Any] | None = None) -> int:
    """Build figures, tables and report/index.html for ``run_dir``; 0 on success, 2 if not a run.

    ``raw`` draws and tabulates raw MSE instead of relative MSE; ``dpi`` and ``formats`` are
    the PNG resolution and the figure files written (the page shows the PNGs; "png" must be
    among the formats). ``progress`` is called with what is being drawn (a status line).
    run.json and the trials are read through :class:`~hjbench.run.folder.RunFolder`: a foreign,
    corrupt or newer file raises its one-line :class:`~hjbench.errors.RunError` before
    anything is written.
    """
    from . import plots
    from ..errors import ConfigError, RunError
    from ..run.folder import RunFolder

    run_dir = Path(run_dir)
    formats = tuple(dict.fromkeys((*formats, "png")))  # the page shows PNGs
    if not run_dir.is_dir() or not any((run_dir / f).exists() for f in _RUN_FILES):
        print(f"error: run_dir={str(run_dir)!r} is not a run folder; allowed: a folder holding "
              f"{', '.join(_RUN_FILES[:-1])} or {_RUN_FILES[-1]} (from `hjbench run`)", file=sys.stderr)
        return 2
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 30 <= dpi <= 1200:
        raise ConfigError(f"dpi={dpi!r}: is out of range; allowed: integers 30 to 1200 (300 for print)")
    say = progress or (lambda text: None)
    info = RunFolder(run_dir).read_run_json()
    trials = plots.load_run_trials(run_dir)
    try:
        summary, source = plots.load_summary(run_dir, trials)
    except ConfigError as exc:
        summary, source = None, f"none ({exc})"
    except Exception as exc:  # noqa: BLE001 (pyarrow raises many kinds for a damaged file)
        raise RunError(f"{run_dir / 'summary.parquet'}: cannot be read ({type(exc).__name__}); allowed: a "
                       "summary written by hjbench (delete it; `hjbench summarize RUN` writes it again)") from None
    (run_dir / "report").mkdir(parents=True, exist_ok=True)
    drawn = _draw(run_dir, info, summary, trials, raw=raw, dpi=dpi, formats=formats, say=say)
    index = run_dir / "report" / "index.html"
    say(f"writing {index}")
    body = _body(run_dir, info, summary, trials, source, *drawn)
    index.write_text(_page(f"hjbench report: {info.get('run_id', run_dir.name)}", body), encoding="utf-8")
    for p in drawn[1]:
        print(f"warning: {p}", file=sys.stderr)
    say("writing the self-contained page")
    from .html import write_standalone

    page = write_standalone(run_dir, raw=raw)
    print(f"report: {index}")
    print(f"report (one self-contained file): {page}")
    return 0


def _draw(run_dir: Path, info: dict, summary, trials, *, raw, dpi, formats, say) -> tuple:
    """Draw every figure set and write the tables: (results, problems, table paths, built tables)."""
    from . import plots
    from . import tables
    from .style import MethodStyle

    figures_dir, results, problems = run_dir / "figures", [], []
    if summary is None or not len(summary):
        return results, ["no finished trials yet: nothing to draw"], [], {}
    style = MethodStyle.for_methods(summary["method"])
    kw = dict(style=style, dpi=dpi, formats=formats)
    jobs = [("error against N", lambda: list(plots.error_figures(summary, figures_dir, raw=raw, trials=trials,
                                                                by_regime=True, **kw).values()))]
    if "bound_ratio" in set(summary["metric"]):
        jobs.append(("error over the bound", lambda: [plots.bound_ratio(summary, figures_dir, trials=trials, **kw)]))
    jobs.append(("fit and evaluation times",
                 lambda: list(plots.cost_figures(summary, figures_dir, trials=trials, **kw).values())))
    if any(str(m).startswith("task_") for m in set(summary["metric"])):
        from .plots.tasks import task_figures

        jobs.append(("reconstruction error against N", lambda: list(task_figures(summary, figures_dir).values())))
    try:
        sections = plots.load_sections(run_dir)
    except Exception as exc:  # noqa: BLE001 (a damaged section file costs its figure, not the report)
        sections = None
        problems.append(f"cross-sections not read: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    if sections is not None:
        box = float((info.get("config") or {}).get("box", 4.0))
        jobs.append(("cross-sections", lambda: plots.sections_from_table(sections, figures_dir, box=box,
                                                                         methods=list(style.order), **kw)))
    for k, (what, job) in enumerate(jobs):
        say(f"drawing {what} ({k + 1}/{len(jobs)} figure sets)")
        try:
            results += job()
        except Exception as exc:  # noqa: BLE001 (one broken figure must not hide the rest)
            problems.append(f"a figure was not drawn: {type(exc).__name__}: {exc}")
    say("writing tables")
    return results, problems, tables.write_tables(summary, run_dir / "tables", raw=raw), \
        tables.build_tables(summary, raw=raw)


def _body(run_dir: Path, info: dict, summary, trials, source: str, results, problems, table_paths, built) -> list:
    """The HTML blocks of the page, in order."""
    from . import tables

    figures_dir, report_dir = run_dir / "figures", run_dir / "report"
    shown = {r.png for r in results if r.png is not None}
    extra = sorted(p for p in figures_dir.glob("cross_section_*.png") if p not in shown) if figures_dir.exists() else []
    missing = missing_cells(trials, info.get("config"), summary)
    status = "complete" if info.get("ended") and missing.empty else "partial: see Missing cells"
    body = [f"<p>Run <code>{html.escape(str(info.get('run_id', run_dir.name)))}</code> &mdash; {status}. "
            "<a href=#figures>Figures</a> &middot; <a href=#tables>Tables</a> &middot; "
            "<a href=#missing>Missing cells</a> &middot; <a href=#provenance>Provenance</a></p>"]
    body += [f"<p class=warn>{html.escape(p)}</p>" for p in problems]
    body.append("<h2 id=figures>Figures</h2>")
    body += [_figure_html(r.png, r.caption, report_dir) for r in results if r.png is not None]
    body += [_figure_html(p, "Cross-sections written by the run (largest N, repetition 0).", report_dir)
             for p in extra]
    if not any(p.stem.startswith("cross_section") for p in list(shown) + extra):
        body.append("<p>No cross-sections in this run (the runner writes them with "
                    "<code>hjbench.present.plots.cross_section_figure</code>).</p>")
    body.append("<h2 id=tables>Tables</h2>")
    body += [tables.to_html(t) for t in built.values()]
    body += [f'<a href="../tables/{p.name}">{p.name}</a> ' for p in table_paths]
    body.append("<h2 id=missing>Missing cells</h2>")
    body.append("<p>None: every trial of the grid finished ok.</p>" if missing.empty else
                missing.to_html(index=False, escape=True, border=0))
    body.append(_provenance(info, run_dir, source, 0 if trials is None else len(trials)))
    return body
