"""The ``hjbench`` command line (also ``python -m hjbench``).

Commands::

    hjbench run [--config configs/default.toml] [--methods hj,maxplus] [--priors l1] [--dims 2,4]
                [--n-samples 100,300] [--repetitions 2] [--seed 1] [--device auto|cpu|cuda]
                [--dtype float32|float64] [--steps N] [--timeout S] [--threads N] [--out DIR] [--fresh]
                [--dry-run] [--no-progress] [--no-figure]
    hjbench list [methods|priors]     registered methods (regime, outputs) and priors (parameters)
    hjbench summarize RUN             per-cell medians with 95% CIs; writes RUN/summary.parquet
    hjbench check-bound RUN           empirical errors against the max-plus bound
    hjbench report RUN                the full report of a run
    hjbench sys-info                  versions, devices, threads, git

RUN is a run folder or a run id under ``results/``. ``run`` writes ``results/<run-id>/`` (the
run id is ``<config name>-<hash of the resolved config>``, so running the same command again
resumes; ``--fresh`` starts a new id with a timestamp; ``--out`` names the folder).

Exit codes:
    0    every trial ok (or skipped)
    1    some trials failed, diverged, timed out, crashed or ran out of memory (the run went on;
         see the printed lines and ``message``)
    2    bad configuration or input (one line ``error: ...`` on stderr; nothing written)
    3    check-bound found a bound violation
    4    check-bound: no violation, but a guaranteed cell could not be judged
    130  interrupted by SIGINT (finished trials are on disk; the same command resumes)
    143  terminated by SIGTERM (as 130; what batch schedulers send)
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from .errors import ConfigError, RunError

EXIT_CODES = ("Exit codes: 0 all trials ok; 1 some trials failed, diverged, timed out, crashed or ran out of "
              "memory; 2 bad configuration or input (one line on stderr, nothing written); 3 check-bound found "
              "a bound violation; 4 check-bound could not judge a guaranteed cell; 130 interrupted (SIGINT) and "
              "143 terminated (SIGTERM): finished trials are kept, rerun the same command to resume.")

app = typer.Typer(name="hjbench", help="Benchmark learned proximal operators and priors (Hamilton-Jacobi "
                  "method and baselines) over a grid of priors, dimensions and sample counts.",
                  epilog=EXIT_CODES, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False, rich_markup_mode=None)
DEFAULT_CONFIG = Path("configs/default.toml")
HEADLINE = ("forward_rel_mse", "prox_rel_mse", "prior_bvs_rel_mse")


def _console(stderr: bool = False):
    import os

    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # logs and pipes: wide tables rather than truncated cells
    return console


@contextmanager
def _bad_input():
    """ConfigError / RunError -> one line 'error: ...' on stderr and exit code 2."""
    try:
        yield
    except (ConfigError, RunError) as exc:
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(2) from None


def _config_path(path: Path) -> Path:
    if not path.exists() and not path.is_absolute():
        packaged = Path(__file__).resolve().parent.parent / path
        if packaged.exists():
            return packaged
    return path


def _run_dir(run: str) -> Path:
    from .run.folder import is_run_folder

    for cand in (Path(run), Path("results") / run):
        if is_run_folder(cand):
            return cand
    raise ConfigError(f"RUN={run!r}: no run folder with run.json or trials.jsonl there or under results/; "
                      "allowed: a run folder path or a run id under results/")


def _fmt(v) -> str:
    try:
        return "nan" if v != v else f"{v:.3g}" if abs(v) >= 1e-2 and abs(v) < 1e4 else f"{v:.2e}"
    except TypeError:
        return str(v)


def _table(df, title: str = ""):
    from rich.table import Table

    table = Table(title=title or None)
    for col in df.columns:
        table.add_column(str(col), no_wrap=True)
    for row in df.itertuples(index=False):
        table.add_row(*[_fmt(v) if isinstance(v, float) else str(v) for v in row])
    return table


def _cell_table(summary, metrics):
    import pandas as pd

    sub = summary[summary["metric"].isin(metrics)]
    keys = ["method", "prior", "dim", "n_samples"]
    text = sub.assign(value=[f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" for m, lo, hi in
                             zip(sub["median"], sub["ci_low"], sub["ci_high"])])
    wide = text.pivot_table(index=keys, columns="metric", values="value", aggfunc="first", sort=False)
    ok = sub.groupby(keys, sort=False)[["n_ok", "n_trials"]].first()
    wide = wide.reindex(columns=[m for m in metrics if m in wide.columns])
    wide["ok"] = [f"{ok.loc[i, 'n_ok']}/{ok.loc[i, 'n_trials']}" for i in wide.index]
    return pd.DataFrame(wide).reset_index()


@app.command(epilog=EXIT_CODES)
def run(
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="grid TOML file"),
    methods: Optional[str] = typer.Option(None, help="comma-separated method names (or all)"),
    priors: Optional[str] = typer.Option(None, help="comma-separated prior names (or all)"),
    dims: Optional[str] = typer.Option(None, help="comma-separated dims, e.g. 2,4"),
    n_samples: Optional[str] = typer.Option(None, "--n-samples", help="comma-separated sample counts"),
    repetitions: Optional[int] = typer.Option(None, help="repetitions per cell (>= 1)"),
    seed: Optional[int] = typer.Option(None, help="base seed"),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda"),
    dtype: Optional[str] = typer.Option(None, help="float32 or float64"),
    steps: Optional[int] = typer.Option(None, help="training steps of the common budget"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="per-trial limit in seconds"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default from the config: 1)"),
    out: Optional[Path] = typer.Option(None, help="run folder (default results/<run-id>)"),
    fresh: bool = typer.Option(False, "--fresh", help="start a new run id instead of resuming"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the expanded grid; run and write nothing"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show the progress bar"),
    figure: bool = typer.Option(True, "--figure/--no-figure", help="draw error against n_samples at the end"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", metavar="N",
                                       help="worker processes (default: the number of cores; 0: inline, no isolation)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDRESS",
                                            help="run on an existing Dask cluster, e.g. tcp://host:8786"),
    allow_code_change: bool = typer.Option(False, "--allow-code-change",
                                           help="resume a run folder written by other code (marked mixed)"),
) -> None:
    """Run a grid of trials; resumes a previous run of the same configuration."""
    from .present import summary as analysis
    from .run import folder as results
    from .run.config import load_config
    from .run.grid import expand
    from .run.runner import run_grid

    console = _console()
    overrides = dict(methods=methods, priors=priors, dims=dims, n_samples=n_samples, repetitions=repetitions,
                     seed=seed, device=device, dtype=dtype, steps=steps, timeout_s=timeout,
                     threads=threads)
    with _bad_input():
        cfg = load_config(_config_path(config), overrides)
        run_id = out.name if out else results.run_id_for(cfg.to_dict(), fresh=fresh)
        run_dir = out if out else Path("results") / run_id
        if dry_run:
            _dry_run(cfg, run_dir, expand(cfg, run_id), console)
            return
        if jobs is not None and not 0 <= jobs <= 1024:
            raise ConfigError(f"--jobs={jobs} is out of range; allowed: 0 (inline) to 1024 worker processes")
        _check_out(run_dir)
        outcome = run_grid(cfg, run_dir, run_id=run_id, command=sys.argv, console=console,
                           show_progress=progress, jobs=jobs, scheduler=scheduler,
                           allow_code_change=allow_code_change)
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
        console.print(_table(head, "median prox_rel_mse at the largest n_samples of each dim"))
    console.print(f"trials: {counts} ({outcome.n_resumed} resumed)")
    console.print(f"results: {run_dir}")
    raise typer.Exit(outcome.exit_code)


def _check_out(run_dir: Path) -> None:
    """--out must be a folder that exists and is writable, or one that can be created."""
    import os

    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out={str(run_dir)!r} is a file; allowed: a folder (existing or new)")
    probe = run_dir if run_dir.exists() else next((p for p in run_dir.parents if p.exists()), Path("."))
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--out={str(run_dir)!r}: {str(probe)!r} is not a writable folder; allowed: a "
                          "folder this user can write")


def _dry_run(cfg, run_dir: Path, trials, console) -> None:
    import pandas as pd

    from .run.folder import RunFolder

    done = RunFolder(run_dir).settled()
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


@app.command("list")
def list_(what: str = typer.Argument("all", help="methods, priors or all")) -> None:
    """List registered methods (data regime, outputs) and priors (parameters with defaults)."""
    from rich.table import Table

    with _bad_input():
        if what not in ("all", "methods", "priors"):
            raise ConfigError(f"WHAT={what!r}: unknown listing; allowed: methods, priors, all")
        console = _console()
        if what in ("all", "methods"):
            from . import methods

            table = Table(title="methods")
            for col in ("name", "data regime", "provides", "source", "summary"):
                table.add_column(col, no_wrap=col != "summary")
            for name in methods.names():
                entry = methods.entry(name)
                try:
                    m = entry.build()
                    regime, provides = m.data_regime, ", ".join(sorted(m.provides))
                except Exception as exc:  # noqa: BLE001
                    regime, provides = "?", f"({type(exc).__name__})"
                table.add_row(name, regime, provides, entry.source, entry.summary)
            console.print(table)
        if what in ("all", "priors"):
            from . import priors

            table = Table(title="priors")
            for col in ("name", "parameters (defaults)", "regime", "summary"):
                table.add_column(col, no_wrap=col != "summary")
            for name in priors.names():
                entry = priors.entry(name)
                table.add_row(name, _prior_params(entry), str(getattr(entry.cls, "regime", "?")),
                              entry.summary)
            console.print(table)


def _prior_params(entry) -> str:
    """'name=default, ...' of a prior's constructor keywords other than dim and t."""
    import inspect

    parts = []
    for p in inspect.signature(entry.cls.__init__).parameters.values():
        if p.name in ("self", "dim", "t") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = entry.defaults.get(p.name, p.default)
        parts.append(p.name if default is inspect.Parameter.empty else f"{p.name}={default!r}")
    return ", ".join(parts)


@app.command()
def summarize(run: str = typer.Argument(..., help="run folder or run id under results/"),
              metric: Optional[list[str]] = typer.Option(None, "--metric", "-m",
                                                         help="metrics to print (repeatable)")) -> None:
    """Per-cell medians with 95% bootstrap CIs; writes RUN/summary.parquet."""
    from .present import summary as analysis
    from .run import folder as results

    with _bad_input():
        run_dir = _run_dir(run)
        metrics = list(metric or HEADLINE)
        for m in metrics:
            if m not in analysis.summary_metrics():
                raise ConfigError(f"--metric={m!r}: unknown metric; allowed: {', '.join(analysis.summary_metrics())}")
        trials = results.load_trials(run_dir)
        if not len(trials):
            raise ConfigError(f"RUN={run!r}: no trials in {run_dir}; allowed: a run with finished trials")
    summary = analysis.summarize(trials)
    results.write_parquet(summary, run_dir / "summary.parquet")
    _console().print(_table(_cell_table(summary, metrics), "median [95% CI] over repetitions"))
    _console().print(f"summary: {run_dir / 'summary.parquet'}")


@app.command("check-bound", epilog=EXIT_CODES)
def check_bound(run: str = typer.Argument(..., help="run folder or run id under results/")) -> None:
    """Compare empirical errors with the max-plus bound (exit 3 on a violation)."""
    with _bad_input():
        from .score.check import main as check

        code = check(_run_dir(run))
    raise typer.Exit(int(code or 0))


@app.command()
def report(run: str = typer.Argument(..., help="run folder or run id under results/"),
           raw: bool = typer.Option(False, "--raw", help="raw MSE instead of relative MSE"),
           dpi: int = typer.Option(300, help="PNG resolution"),
           fmt: Optional[list[str]] = typer.Option(None, "--format", help="figure formats (repeatable; "
                                                   "default pdf and png)")) -> None:
    """Write the full report (figures, tables, report/index.html) of a run."""
    with _bad_input():
        run_dir = _run_dir(run)
        from .present.report import main as make_report

        opts = {"raw": raw, "dpi": dpi, **({"formats": tuple(fmt)} if fmt else {})}
        code = make_report(run_dir, **opts)
    raise typer.Exit(int(code or 0))


@app.command("sys-info")
def sys_info(as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Versions, git state, CPU/GPU and thread counts of this machine."""
    import json

    from .run.provenance import environment

    env = environment()
    git = env.pop("git")
    env["git_commit"], env["git_dirty"] = git.get("commit"), git.get("dirty")
    if as_json:
        typer.echo(json.dumps(env, indent=2))
        return
    console = _console()
    for key, value in env.items():
        console.print(f"{key:>22}: {value}")


def main() -> None:
    """Console-script entry point. Typer maps usage errors to exit 2 and Ctrl-C to 130; a
    ConfigError escaping a command becomes its one line and exit 2."""
    try:
        app()
    except (ConfigError, RunError) as exc:
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
