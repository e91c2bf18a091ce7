"""What the ``list``, ``summarize`` and ``check-bound`` commands show, as data and as text.

Each view is built as plain data first (what ``--json`` prints) and rendered from that data,
so the table a person reads and the JSON a script parses cannot disagree.
"""

from __future__ import annotations

import inspect

__all__ = ["listing", "print_listing", "cell_table", "bound_verdict", "dry_run", "after_run"]


def _prior_params(entry) -> dict:
    """name -> default of a prior's constructor keywords other than dim and t (None: required)."""
    out = {}
    for p in inspect.signature(entry.cls.__init__).parameters.values():
        if p.name in ("self", "dim", "t") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = entry.defaults.get(p.name, p.default)
        out[p.name] = None if default is inspect.Parameter.empty else default
    return out


def _methods() -> list[dict]:
    from . import methods

    rows = []
    for name in methods.names():
        entry = methods.entry(name)
        try:
            m = entry.build()
            regime, provides = m.data_regime, sorted(m.provides)
        except Exception as exc:  # noqa: BLE001 (a broken plug-in is listed, not fatal)
            regime, provides = "?", [f"({type(exc).__name__})"]
        rows.append({"name": name, "data_regime": regime, "provides": provides, "source": entry.source,
                     "summary": entry.summary})
    return rows


def _priors() -> list[dict]:
    from . import priors

    return [{"name": name, "parameters": _prior_params(priors.entry(name)),
             "regime": str(getattr(priors.entry(name).cls, "regime", "?")), "summary": priors.entry(name).summary}
            for name in priors.names()]


def listing(what: str) -> dict:
    """{"methods": [...], "priors": [...]} (the parts ``what`` asks for: methods, priors or all)."""
    out = {}
    if what in ("all", "methods"):
        out["methods"] = _methods()
    if what in ("all", "priors"):
        out["priors"] = _priors()
    return out


def print_listing(data: dict, console) -> None:
    from rich.table import Table

    if "methods" in data:
        table = Table(title="methods")
        for col in ("name", "data regime", "provides", "source", "summary"):
            table.add_column(col, no_wrap=col != "summary")
        for m in data["methods"]:
            table.add_row(m["name"], m["data_regime"], ", ".join(m["provides"]), m["source"], m["summary"])
        console.print(table)
    if "priors" in data:
        table = Table(title="priors")
        for col in ("name", "parameters (defaults)", "regime", "summary"):
            table.add_column(col, no_wrap=col != "summary")
        for p in data["priors"]:
            params = ", ".join(k if v is None else f"{k}={v!r}" for k, v in p["parameters"].items())
            table.add_row(p["name"], params, p["regime"], p["summary"])
        console.print(table)


def cell_table(summary, metrics):
    """One row per cell: 'median [low, high]' of each metric and ok/total trials."""
    import pandas as pd

    from .cli_support import fmt

    sub = summary[summary["metric"].isin(metrics)]
    keys = ["method", "prior", "dim", "n_samples"]
    text = sub.assign(value=[f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" for m, lo, hi in
                             zip(sub["median"], sub["ci_low"], sub["ci_high"])])
    wide = text.pivot_table(index=keys, columns="metric", values="value", aggfunc="first", sort=False)
    ok = sub.groupby(keys, sort=False)[["n_ok", "n_trials"]].first()
    wide = wide.reindex(columns=[m for m in metrics if m in wide.columns])
    wide["ok"] = [f"{ok.loc[i, 'n_ok']}/{ok.loc[i, 'n_trials']}" for i in wide.index]
    return pd.DataFrame(wide).reset_index()


def bound_verdict(report, path) -> dict:
    """The short verdict of a :class:`~hjbench.score.bounds.verdict.BoundReport`: counts, the
    first problems, the report's path, the exit code, and every cell and slope (for --json)."""
    guaranteed = [c for c in report.cells if c.guaranteed]
    bad = [f"violated: {c.method} / {c.prior} / dim {c.dim} / N {c.n_samples}: {c.verdict}"
           for c in report.violations]
    bad += [f"slope violated: {s.method} / {s.prior} / dim {s.dim}: slope {s.fit.slope:.3g} vs theory "
            f"{s.theory:.3g}" for s in report.slope_violations]
    bad += [f"not judged: {c.method} / {c.prior} / dim {c.dim} / N {c.n_samples}: {c.verdict}"
            for c in report.unjudged if c.guaranteed]
    lines = [f"bound check of run {report.run_id}: {report.n_rows} trials, {len(report.cells)} cells "
             f"({len(guaranteed)} guaranteed), {len(report.slopes)} slopes",
             *bad[:5], *([f"... and {len(bad) - 5} more"] if len(bad) > 5 else []),
             *[f"note: {n}" for n in report.notes], report.summary(),
             f"report: {path} (the full tables: --verbose)"]
    return {"run_id": report.run_id, "exit_code": report.exit_code, "verdict": report.summary(),
            "report": str(path), "n_trials": report.n_rows, "n_cells": len(report.cells),
            "n_guaranteed": len(guaranteed), "n_violated": len(report.violations),
            "n_slope_violated": len(report.slope_violations),
            "n_unjudged_guaranteed": sum(c.guaranteed for c in report.unjudged), "notes": list(report.notes),
            "lines": lines, "cells": list(report.cells), "slopes": list(report.slopes)}


def dry_run(cfg, run_dir, trials, console) -> None:
    """Print the expanded grid and what a run would resume; write nothing."""
    import pandas as pd

    from .cli_support import table as _table
    from .run.folder import RunFolder

    done = RunFolder(run_dir).settled() if run_dir.is_dir() else set()
    df = pd.DataFrame([{**t.identity.row(), "done": t.trial_id in done} for t in trials])
    grid = (df.groupby(["prior", "dim", "n_samples"], sort=False)
              .agg(methods=("method", "nunique"), repetitions=("repetition", "nunique"),
                   trials=("trial_id", "size"), resumed=("done", "sum")).reset_index())
    console.print(_table(grid, f"grid {cfg.name}: {len(cfg.methods)} methods x {len(cfg.priors)} priors"))
    console.print(f"methods: {', '.join(m.name for m in cfg.methods)}")
    console.print(f"device: {cfg.device}, dtype: {cfg.dtype}, t={cfg.t:g}, regime={cfg.regime}, box={cfg.box:g}")
    n_done = int(df["done"].sum())
    console.print(f"trials: {len(df)} in total, {n_done} would be resumed, {len(df) - n_done} would run")
    console.print(f"run folder: {run_dir} (dry run: nothing written)")


def after_run(outcome, run_dir, figure: bool, console) -> None:
    """Print what a run did, summarize it and draw its first figure; exit with its code."""
    import typer

    from .cli_support import table
    from .present import summary as analysis
    from .run import folder as results

    counts = ", ".join(f"{v} {k}" for k, v in outcome.counts.items() if v)
    if outcome.interrupted or outcome.terminated:
        console.print(f"{'terminated' if outcome.terminated else 'interrupted'}: {counts}; finished trials are "
                      f"in {run_dir}; run the same command to resume")
        raise typer.Exit(outcome.exit_code)
    summary = analysis.summarize(outcome.trials)
    results.write_parquet(summary, run_dir / "summary.parquet")
    if figure:
        try:
            from .present.plots import error_vs_n

            for path in error_vs_n(summary, run_dir / "figures"):
                console.print(f"figure: {path}")
        except Exception as exc:  # noqa: BLE001 (a figure must not lose a finished run)
            console.print(f"warning: figure not written ({type(exc).__name__}: {exc})")
    head = analysis.headline(summary)
    if len(head):
        console.print(table(head, "median prox_rel_mse at the largest n_samples of each dim"))
    console.print(f"trials: {counts} ({outcome.n_resumed} resumed)")
    console.print(f"results: {run_dir}")
    raise typer.Exit(outcome.exit_code)
