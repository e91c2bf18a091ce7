"""The ``hjbench`` command line (also ``python -m hjbench``).

Commands: ``run`` (a grid; resumes), ``list`` (methods, priors), ``summarize RUN``,
``check-bound RUN``, ``report RUN``, ``sys-info``. RUN is a run folder or a run id under
``results/``. Every command takes ``-h``/``--help`` and ``--version``; ``list``, ``summarize``,
``check-bound`` and ``sys-info`` take ``--json``. Each command's exit codes are in its
``--help`` epilog. Bad input of any kind (a usage error, a bad grid, a foreign or corrupt run
folder) is one line ``error: ...`` on stderr and exit code 2, with nothing written; see
:mod:`hjbench.cli_support`. Imports are lazy: ``hjbench --help`` does not import torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .cli_support import OneLineGroup, bad_input, check_jobs, check_out, epilog, to_jsonable
from .cli_support import console as _console
from .cli_support import table as _table
from .errors import ConfigError

app = typer.Typer(name="hjbench", cls=OneLineGroup, help="Benchmark learned proximal operators and priors "
                  "(Hamilton-Jacobi method and baselines) over a grid of priors, dimensions and sample counts.",
                  epilog=epilog(0, 1, 2, 3, 4, 130, 143), no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
DEFAULT_CONFIG = Path("configs/default.toml")
HEADLINE = ("forward_rel_mse", "prox_rel_mse", "prior_bvs_rel_mse")
FORMATS = ("pdf", "png")
RUN_ARG = typer.Argument(..., metavar="RUN", help="run folder, or a run id under results/")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hjbench {__version__}")
        raise typer.Exit(0)


VERSION = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit")


@app.callback()
def _app(version: bool = VERSION) -> None:
    """Benchmark learned proximal operators and priors over a grid (see `hjbench COMMAND -h`)."""


def _config_path(path: Path) -> Path:
    if not path.exists() and not path.is_absolute():
        packaged = Path(__file__).resolve().parent.parent / path
        if packaged.exists():
            return packaged
    return path


def _run_dir(run: str) -> Path:
    """The checked run folder of RUN: its run.json and trials go through RunFolder's readers."""
    from .run.folder import RunFolder, is_run_folder

    for cand in (Path(run), Path("results") / run):
        if cand.is_dir() and is_run_folder(cand):
            folder = RunFolder(cand)
            folder.read_run_json()
            folder.load_trials()
            return cand
    raise ConfigError(f"RUN={run!r}: no run folder with run.json, trials.jsonl or trials.parquet there or under "
                      "results/; allowed: a run folder path or a run id under results/")


def _echo_json(value) -> None:
    import json

    typer.echo(json.dumps(to_jsonable(value), indent=2, allow_nan=False))


@app.command(epilog=epilog(0, 1, 2, 130, 143))
def run(
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", metavar="PATH", help="grid TOML file "
                                "(docs/config.md)"),
    methods: Optional[str] = typer.Option(None, metavar="LIST", help="comma-separated method names, or all"),
    priors: Optional[str] = typer.Option(None, metavar="LIST", help="comma-separated prior names, or all"),
    dims: Optional[str] = typer.Option(None, metavar="LIST", help="comma-separated dims, e.g. 2,4"),
    n_samples: Optional[str] = typer.Option(None, "--n-samples", metavar="LIST", help="comma-separated sample counts"),
    repetitions: Optional[int] = typer.Option(None, metavar="N", help="repetitions per cell (1-1000)"),
    seed: Optional[int] = typer.Option(None, metavar="N", help="base seed (>= 0)"),
    device: Optional[str] = typer.Option(None, metavar="auto|cpu|cuda", help="device of every trial"),
    dtype: Optional[str] = typer.Option(None, metavar="float32|float64", help="floating dtype"),
    steps: Optional[int] = typer.Option(None, metavar="N", help="training steps of the common budget"),
    timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS", help="per-trial time limit"),
    threads: Optional[int] = typer.Option(None, metavar="N", help="torch CPU threads per trial (config: 1)"),
    out: Optional[Path] = typer.Option(None, metavar="PATH", help="run folder (default results/<run-id>)"),
    fresh: bool = typer.Option(False, "--fresh", help="start a new run id instead of resuming"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the expanded grid; run and write nothing"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show the progress bar"),
    figure: bool = typer.Option(True, "--figure/--no-figure", help="draw error against n_samples at the end"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", metavar="N",
                                       help="worker processes, 0-1024 (default: the cores; 0: inline, no isolation)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDRESS",
                                            help="run on an existing Dask cluster, e.g. tcp://host:8786"),
    allow_code_change: bool = typer.Option(False, "--allow-code-change",
                                           help="resume a run folder written by other code (marked mixed)"),
    save_models: bool = typer.Option(False, "--save-models",
                                     help="store each fitted method's state in RUN/models/ (hjbench.load_model)"),
    version: bool = VERSION,
) -> None:
    """Run a grid of trials; the same command again resumes it."""
    from .cli_views import after_run, dry_run as show_dry_run
    from .run import folder as results
    from .run.config import load_config
    from .run.grid import expand

    console = _console()
    overrides = dict(methods=methods, priors=priors, dims=dims, n_samples=n_samples, repetitions=repetitions,
                     seed=seed, device=device, dtype=dtype, steps=steps, timeout_s=timeout, threads=threads)
    with bad_input():
        check_jobs(jobs, scheduler)
        cfg = load_config(_config_path(config), overrides)
        run_id = out.name if out else results.run_id_for(cfg.to_dict(), fresh=fresh)
        run_dir = out if out else Path("results") / run_id
        if dry_run:
            show_dry_run(cfg, run_dir, expand(cfg, run_id), console)
            return
        check_out(run_dir)
        from .run.runner import run_grid

        outcome = run_grid(cfg, run_dir, run_id=run_id, command=sys.argv, console=console, show_progress=progress,
                           jobs=jobs, scheduler=scheduler, allow_code_change=allow_code_change,
                           save_models=save_models)
    after_run(outcome, run_dir, figure, console)


@app.command("list", epilog=epilog(0, 2))
def list_(what: str = typer.Argument("all", metavar="[methods|priors|all]", help="what to list"),
          as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
          version: bool = VERSION) -> None:
    """List registered methods (data regime, outputs) and priors (parameters with defaults)."""
    from .cli_views import listing, print_listing

    with bad_input():
        if what not in ("all", "methods", "priors"):
            raise ConfigError(f"WHAT={what!r}: unknown listing; allowed: methods, priors, all")
        data = listing(what)
    if as_json:
        _echo_json(data)
    else:
        print_listing(data, _console())


@app.command(epilog=epilog(0, 2))
def summarize(run: str = RUN_ARG,
              metric: Optional[list[str]] = typer.Option(None, "--metric", "-m", metavar="NAME",
                                                         help="metrics to print (repeatable)"),
              as_json: bool = typer.Option(False, "--json", help="print the summary rows as JSON"),
              version: bool = VERSION) -> None:
    """Per-cell medians with 95% bootstrap CIs; writes RUN/summary.parquet."""
    from .cli_views import cell_table
    from .present import summary as analysis
    from .run import folder as results

    with bad_input():
        run_dir = _run_dir(run)
        metrics = list(metric or HEADLINE)
        for m in metrics:
            if m not in analysis.summary_metrics():
                raise ConfigError(f"--metric={m!r}: unknown metric; allowed: {', '.join(analysis.summary_metrics())}")
        trials = results.load_trials(run_dir)
        if not len(trials):
            raise ConfigError(f"RUN={run!r}: no trials in {run_dir}; allowed: a run with finished trials")
    with _console(stderr=True).status(f"summarizing {len(trials)} trials"):
        summary = analysis.summarize(trials)
    results.write_parquet(summary, run_dir / "summary.parquet")
    if as_json:
        rows = summary[summary["metric"].isin(metrics)].to_dict("records")
        _echo_json({"run_dir": run_dir, "summary": run_dir / "summary.parquet", "rows": rows})
        return
    _console().print(_table(cell_table(summary, metrics), "median [95% CI] over repetitions"))
    _console().print(f"summary: {run_dir / 'summary.parquet'}")


@app.command("check-bound", epilog=epilog(0, 2, 3, 4))
def check_bound(run: str = RUN_ARG,
                verbose: bool = typer.Option(False, "--verbose", "-v", help="print the full tables too"),
                as_json: bool = typer.Option(False, "--json", help="print the verdicts as JSON"),
                version: bool = VERSION) -> None:
    """Judge empirical errors against the max-plus bound; writes RUN/bound_report.md."""
    from .cli_views import bound_verdict

    with bad_input():
        run_dir = _run_dir(run)
        from .score.check import check_run

        with _console(stderr=True).status("judging cells against the max-plus bound"):
            report = check_run(run_dir)
    path, text = run_dir / "bound_report.md", report.to_markdown()
    try:
        path.write_text(text)
    except OSError as exc:
        typer.echo(f"warning: {path} not written ({exc.strerror or exc})", err=True)
    if as_json:
        _echo_json(bound_verdict(report, path))
    else:
        typer.echo(text if verbose else "\n".join(bound_verdict(report, path)["lines"]))
    raise typer.Exit(report.exit_code)


@app.command(epilog=epilog(0, 2))
def report(run: str = RUN_ARG,
           raw: bool = typer.Option(False, "--raw", help="raw MSE instead of relative MSE"),
           dpi: int = typer.Option(300, metavar="N", help="PNG resolution, 30-1200"),
           fmt: Optional[list[str]] = typer.Option(None, "--format", metavar="pdf|png",
                                                   help="figure formats (repeatable; default pdf and png)"),
           version: bool = VERSION) -> None:
    """Write the full report (figures, tables, report/index.html) of a run."""
    with bad_input():
        if not 30 <= dpi <= 1200:
            raise ConfigError(f"--dpi={dpi}: is out of range; allowed: 30 to 1200 (300 for print)")
        for f in fmt or ():
            if f not in FORMATS:
                raise ConfigError(f"--format={f!r}: unknown figure format; allowed: {', '.join(FORMATS)}")
        run_dir = _run_dir(run)
        from .present.report import main as make_report

        opts = {"raw": raw, "dpi": dpi, **({"formats": tuple(fmt)} if fmt else {})}
        with _console(stderr=True).status("reading the run") as status:
            code = make_report(run_dir, progress=status.update, **opts)
    raise typer.Exit(int(code or 0))


@app.command(epilog=epilog(0, 1, 2))
def compare(run_a: str = typer.Argument(..., metavar="RUN_A", help="the baseline run (folder or id; e.g. "
                                        "results/reference)"),
            run_b: str = typer.Argument(..., metavar="RUN_B", help="the run compared with it"),
            as_json: bool = typer.Option(False, "--json", help="print JSON instead of Markdown"),
            threshold: float = typer.Option(0.25, "--threshold", metavar="X",
                                            help="flag a cell whose ratio's 95% interval lies above 1 + X"),
            version: bool = VERSION) -> None:
    """Compare RUN_B with RUN_A cell by cell (error and time ratios); exit 1 on a regression."""
    with bad_input():
        if not 0 < threshold < 100:
            raise ConfigError(f"--threshold={threshold}: is out of range; allowed: a number in (0, 100), e.g. 0.25")
        a, b = _run_dir(run_a), _run_dir(run_b)
        from .present.compare import main as compare_main

        code = compare_main(a, b, as_json=as_json, threshold=threshold)
    raise typer.Exit(int(code))


@app.command("sys-info", epilog=epilog(0))
def sys_info(as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
             version: bool = VERSION) -> None:
    """Versions, git state, CPU/GPU and thread counts of this machine."""
    from .run.provenance import environment

    env = environment()
    git = env.pop("git")
    env["git_commit"], env["git_dirty"] = git.get("commit"), git.get("dirty")
    if as_json:
        _echo_json(env)
        return
    console = _console()
    for key, value in env.items():
        console.print(f"{key:>22}: {value}")


def main() -> None:
    """Console-script entry point (``hjbench``); exit codes are in each command's --help."""
    app()
