"""The Python API: run a grid, reopen a run, check, report, compare, reload a saved model.

    >>> import hjbench
    >>> run = hjbench.run("smoke", methods="hj,maxplus", priors="l1", jobs=0)   # doctest: +SKIP
    >>> run.summary, run.check_bound().summary(), run.report()                  # doctest: +SKIP
    >>> run.compare("results/reference").exit_code                              # doctest: +SKIP
    >>> again = hjbench.load(run.path)                                          # doctest: +SKIP

Everything here is what the command line does (``hjbench run / summarize / check-bound /
report / compare``), with the same files in the run folder, so a run started from Python can
be resumed from the shell and the other way round. docs/api.md has a worked example.

``hjbench.run`` is both this function and the runner subpackage ``hjbench.run`` (its modules
``hjbench.run.config`` etc.): importing this module makes that package callable, forwarding a
call to :func:`run`.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

from .errors import ConfigError, RunError

__all__ = ["run", "load", "load_model", "Run", "OVERRIDES"]

OVERRIDES = ("methods", "priors", "dims", "n_samples", "repetitions", "seed", "device", "dtype", "threads",
             "timeout_s", "steps")
_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


class Run:
    """One run folder (``results/<run-id>/``, layout in results/README.md), read lazily.

    Attributes:
        path: the folder. outcome: the :class:`~hjbench.run.runner.RunOutcome` when this object
            came from :func:`run` (counts, exit code), else None.
    """

    def __init__(self, path: str | Path, *, outcome: Any = None):
        from .run.folder import is_run_folder

        self.path = Path(path)
        if not self.path.is_dir() or not is_run_folder(self.path):
            raise RunError(f"run_dir={str(self.path)!r} is not a run folder; allowed: a folder written by "
                           "`hjbench run` or hjbench.run (run.json, trials.jsonl or trials.parquet)")
        self.outcome = outcome
        self._summary: tuple[tuple, Any] | None = None

    def __repr__(self) -> str:
        return f"hjbench.Run({str(self.path)!r})"

    @property
    def info(self) -> dict:
        """run.json (checked: a run of another schema version raises RunError; {} if absent)."""
        from .run.folder import RunFolder

        return RunFolder(self.path).read_run_json()

    @property
    def trials(self):
        """Every trial as a DataFrame (last row per trial_id, checked; hjbench.run.folder)."""
        from .run.folder import RunFolder

        return RunFolder(self.path).load_trials()

    @property
    def summary(self):
        """Per-cell medians with 95% CIs (:func:`hjbench.present.summary.summarize`): summary.parquet
        when it is not older than the trials, else computed, written to summary.parquet and cached."""
        import pandas as pd

        from .present.summary import summarize
        from .run.folder import write_parquet

        self.info  # noqa: B018 (refuses a run of another schema version before reading anything)
        sources = [self.path / n for n in ("trials.jsonl", "trials.parquet")]
        stamp = tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in sources)
        if self._summary is not None and self._summary[0] == stamp:
            return self._summary[1]
        stored = self.path / "summary.parquet"
        if stored.exists() and stored.stat().st_mtime_ns >= max(stamp):
            frame = pd.read_parquet(stored)
        else:
            frame = summarize(self.trials)
            try:
                write_parquet(frame, stored)
            except OSError as exc:
                import warnings

                warnings.warn(f"{stored}: not written ({exc.strerror}); the summary is kept in memory", stacklevel=2)
        self._summary = (stamp, frame)
        return frame

    @property
    def figures(self) -> list[Path]:
        """Figure files in ``figures/`` (PNG and PDF), sorted by name; [] before any is drawn."""
        folder = self.path / "figures"
        return sorted(p for p in folder.iterdir() if p.suffix in (".png", ".pdf")) if folder.is_dir() else []

    def check_bound(self, guaranteed=None, *, include_opt_limited: bool = False, write: bool = True):
        """The bound check (:func:`hjbench.score.check.check_run`): a BoundReport (``.exit_code``,
        ``.summary()``, ``.to_markdown()``); ``write`` also writes ``bound_report.md`` as the CLI does."""
        from .score.check import check_run

        report = check_run(self.path, guaranteed, include_opt_limited=include_opt_limited)
        if write:
            (self.path / "bound_report.md").write_text(report.to_markdown(), encoding="utf-8")
        return report

    def report(self, **kw: Any) -> Path:
        """Draw the figures and tables and write the reports, as ``hjbench report RUN`` does
        (``kw`` go to :func:`hjbench.present.report.main`: raw, dpi, formats), including the
        self-contained page (:func:`hjbench.present.html.write_standalone`); return its path."""
        from .present import html
        from .present import report

        code = report.main(self.path, **kw)
        if code != 0:
            raise RunError(f"report: run_dir={str(self.path)!r}: hjbench report exited {code} (its error is on "
                           "stderr); allowed: a run folder with trials or a summary")
        return html.page_path(self.path)

    def compare(self, other: Any, **kw: Any):
        """This run against ``other`` (the baseline, run A): ratios are this run / ``other``;
        ``kw``: threshold, metrics, n_boot, seed (:func:`hjbench.present.compare.compare_runs`)."""
        from .present.compare import compare_runs

        return compare_runs(other, self, **kw)


def load(run_dir: str | Path) -> Run:
    """Reopen a finished or partial run folder (a path, or a run id under ``results/``)."""
    path = Path(run_dir)
    if not path.exists() and (Path("results") / path).is_dir():
        path = Path("results") / path
    return Run(path)


def _config_file(value: str | Path) -> Path:
    """A TOML path, else a name in ``./configs`` or hjbench's own ``configs/`` ("smoke")."""
    path = Path(value)
    if path.is_file():
        return path
    name = path.name if path.suffix == ".toml" else path.name + ".toml"
    for root in (Path("configs"), _CONFIGS):
        if (root / name).is_file() and (path.parent in (Path("."), Path("configs"))):
            return root / name
    known = sorted(p.stem for p in _CONFIGS.glob("*.toml")) if _CONFIGS.is_dir() else []
    raise ConfigError(f"hjbench.run: config_or_path={str(value)!r} is neither a file nor a config name; "
                      f"allowed: a TOML path, a name in configs/ ({', '.join(known)}), or a dict of raw config")


def _config(config_or_path: Any, overrides: dict):
    from .run.config import apply_overrides, load_config, validate

    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ConfigError(f"hjbench.run: {unknown[0]}={overrides[unknown[0]]!r} is not a grid override; "
                          f"allowed: {', '.join(OVERRIDES)}")
    if isinstance(config_or_path, dict):
        return validate(apply_overrides({"name": "api", **config_or_path}, overrides))
    if isinstance(config_or_path, (str, Path)):
        return load_config(_config_file(config_or_path), overrides)
    raise ConfigError(f"hjbench.run: config_or_path is a {type(config_or_path).__name__}; allowed: a TOML "
                      "path, a config name such as 'smoke', or a dict of raw config")


def run(config_or_path: str | Path | dict = "default", *, out: str | Path | None = None, jobs: int | None = None,
        show_progress: bool = False, fresh: bool = False, scheduler: str | None = None,
        allow_code_change: bool = False, save_models: bool = False, **overrides: Any) -> Run:
    """Run (or resume) a grid, as ``hjbench run`` does, and return the :class:`Run`.

    Args:
        config_or_path: a TOML path, a config name in configs/ ("smoke", "default"), or a dict
            of raw config (the TOML schema of :mod:`hjbench.run.config`; name defaults to "api").
        out: the run folder (default ``results/<run-id>``, where the same call resumes).
        jobs: worker processes (default: the cores; 0: inline, no isolation).
        show_progress: the progress bar and one line per failed trial, on stderr.
        fresh, scheduler, allow_code_change, save_models: as the command line's ``--fresh``,
            ``--scheduler``, ``--allow-code-change``, ``--save-models`` (:func:`load_model`).
        overrides: :data:`OVERRIDES` (methods, priors as comma strings or lists; dims, n_samples
            as comma strings or lists of ints; steps goes to the budget), as
            :func:`hjbench.run.config.apply_overrides`.

    Bad input raises ConfigError (nothing written); a folder holding another configuration or
    locked by another run raises RunError. Ctrl-C keeps finished trials and re-raises
    KeyboardInterrupt; SIGTERM raises SystemExit(143). Failed trials are rows with their status
    (``Run.outcome.exit_code`` is 1), not exceptions. Writes summary.parquet at the end.
    """
    from rich.console import Console

    from .run.folder import run_id_for
    from .run.runner import run_grid

    cfg = _config(config_or_path, overrides)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or not 0 <= jobs <= 1024):
        raise ConfigError(f"hjbench.run: jobs={jobs!r} is out of range; allowed: 0 (inline) to 1024 worker processes")
    run_id = Path(out).name if out else run_id_for(cfg.to_dict(), fresh=fresh)
    run_dir = Path(out) if out else Path("results") / run_id
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"hjbench.run: out={str(run_dir)!r} is a file; allowed: a folder (existing or new)")
    label = "<dict>" if isinstance(config_or_path, dict) else repr(str(config_or_path))
    command = f"hjbench.run({', '.join([label] + [f'{k}={v!r}' for k, v in overrides.items()])})"
    console = Console(stderr=True, quiet=not show_progress)
    outcome = run_grid(cfg, run_dir, run_id=run_id, command=command, console=console, show_progress=show_progress,
                       jobs=jobs, scheduler=scheduler, allow_code_change=allow_code_change, save_models=save_models)
    if outcome.terminated:
        raise SystemExit(143)
    if outcome.interrupted:
        raise KeyboardInterrupt(f"interrupted: finished trials are in {run_dir}; call hjbench.run again to resume")
    result = Run(run_dir, outcome=outcome)
    result.summary  # noqa: B018 (writes summary.parquet, as the command line does)
    return result


def load_model(run: Run | str | Path, trial_id: str, *, device: str = "cpu"):
    """The fitted method of one trial, rebuilt from ``models/<trial_id>.pt`` (``--save-models``).

    The method is built from the trial row's ``method`` and ``method_params`` (JSON; a budget is
    a dict, passed as ``budget=``), then ``load_state_dict(torch.load(path, weights_only=True,
    map_location=device))``: tensors and plain values only, nothing else is unpickled. Raises
    RunError naming the file when the trial, the file or a loadable state is missing.
    """
    import torch

    from . import methods
    from .run.folder import RunFolder
    from .seeds import canonical_json

    run = run if isinstance(run, Run) else load(run)
    trials = run.trials
    match = trials[trials["trial_id"] == trial_id] if len(trials) else trials
    if not len(match):
        example = f" (e.g. {trials['trial_id'].iloc[0]!r})" if len(trials) else ""
        raise RunError(f"load_model: trial_id={trial_id!r} is not a trial of {run.path}; allowed: a value of "
                       f"its trials' trial_id column{example}")
    row = match.iloc[-1]
    path = RunFolder(run.path).model_path(trial_id)
    if not path.is_file():
        raise RunError(f"load_model: {path} does not exist; allowed: a trial with status ok of a run made with "
                       "`hjbench run --save-models`")
    params = json.loads(str(row["method_params"]))
    method = methods.get(str(row["method"]), **params)
    if canonical_json(method.get_params()) != str(row["method_params"]):
        raise RunError(f"load_model: {row['method']} rebuilt from method_params={str(row['method_params'])[:60]}... "
                       "has other parameters; allowed: the hjbench and plug-in versions that wrote the run")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 (UnpicklingError, a corrupt zip: one line either way)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"load_model: {path}: torch.load(weights_only=True) refused it ({first[:200]}); allowed: a "
                       "state_dict() of tensors and plain Python values (dataclasses such as TrainLog converted "
                       "with .as_dict()); hjbench never unpickles arbitrary objects") from None
    return method.load_state_dict(state)


class _CallableRunPackage(types.ModuleType):
    """The subpackage ``hjbench.run``, callable as :func:`hjbench.run` (module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Run:
        return run(*args, **kwargs)


def _make_run_package_callable() -> None:
    import importlib

    module = importlib.import_module(__package__ + ".run")  # the subpackage (here `run` is the function)
    if not callable(module):
        module.__class__ = _CallableRunPackage


_make_run_package_callable()
