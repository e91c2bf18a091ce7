"""The grid runner (the driver): expand, group, execute, write one row per trial.

The driver is the only writer of the run folder (:class:`~hjbench.run.folder.RunFolder`).
Groups of same-shape trials (:func:`~hjbench.run.grid.group_trials`) are sent to an executor
(:mod:`hjbench.run.executors`: worker processes of an embedded Dask ``LocalCluster``, an
existing Dask cluster, or inline), which returns each group's rows as they finish; every row is
appended to ``trials.jsonl`` at once (flush + fsync), so killing the driver at any moment loses
no finished row. A group whose worker crashed, timed out or ran out of memory is retried member
by member, so only the trial responsible ends as ``crashed`` / ``timeout`` / ``oom``.

Resuming (the same command again) skips trials whose last row is ok or skipped; crashed, oom
and timeout trials are retried once, then kept. SIGINT stops the run (exit 130), SIGTERM too
(exit 143, what schedulers send): in both cases the rows on disk are compacted and run.json
is completed. Results do not depend on the number of workers.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import RunError
from .config import GridConfig
from .folder import STATUSES, RunFolder
from .grid import Trial, expand, group_trials
from .provenance import code_version, environment, now
from .worker import GroupSpec, failure_row

__all__ = ["RunOutcome", "Terminated", "run_grid", "expand"]

_FAILED = ("failed", "timeout", "crashed", "oom", "diverged")
_JOB_STATUS = {"error": "failed", "crashed": "crashed", "timeout": "timeout", "oom": "oom"}
# one core per worker: torch, OpenMP and XLA each keep to one thread; JAX and torch share a GPU
WORKER_ENV = {"OMP_NUM_THREADS": "1", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop between rows, compact and exit 143 (a KeyboardInterrupt, so that
    every layer that lets Ctrl-C through lets it through too)."""


@dataclass
class RunOutcome:
    run_dir: Path
    trials: Any  # DataFrame of this grid's trials (last row per trial)
    counts: dict
    n_total: int
    n_resumed: int
    interrupted: bool = False
    terminated: bool = False

    @property
    def exit_code(self) -> int:
        """143 terminated; 130 interrupted; 1 some trial did not end ok; 0 otherwise."""
        if self.terminated:
            return 143
        if self.interrupted:
            return 130
        return 1 if any(self.counts.get(s, 0) for s in _FAILED) else 0


def _executor(jobs: int | None, scheduler: str | None, memory_limit_mb: float | None, threads: int = 1):
    import functools

    from .executors import DaskExecutor, InlineExecutor
    from .worker import warm_up_worker

    setup = functools.partial(warm_up_worker, threads)
    if scheduler:
        return DaskExecutor(scheduler=scheduler, memory_limit_mb=memory_limit_mb, setup=setup)
    if jobs == 0:
        return InlineExecutor()
    return DaskExecutor(jobs or os.cpu_count() or 1, memory_limit_mb=memory_limit_mb,
                        worker_env=WORKER_ENV, setup=setup)


def _section_ids(cfg: GridConfig, trials: list[Trial]) -> frozenset:
    """Trials whose cross-sections are stored: repetition 0 at the largest n_samples per dim."""
    return frozenset(t.trial_id for t in trials if t.identity.repetition == 0
                     and t.identity.n_samples == max(cfg.n_samples[t.identity.dim]))


def _spec(cfg: GridConfig, members, sections: frozenset, save_models: bool) -> GroupSpec:
    return GroupSpec(members=tuple(members), box=cfg.box, n_test=cfg.n_test, n_cross=cfg.n_cross,
                     threads=cfg.threads, opt_limited_ratio=cfg.opt_limited_ratio,
                     section_ids=sections, section_points=min(cfg.n_cross, 201), save_models=save_models,
                     tasks=getattr(cfg, "tasks", None))


def _jobs(cfg: GridConfig, groups, sections: frozenset, save_models: bool) -> dict:
    from .executors import Job
    from .worker import run_group

    out = {}
    for k, members in enumerate(groups):
        timeout = cfg.timeout_s * len(members) if cfg.timeout_s else None
        key = f"g{k}-{members[0].trial_id}"
        out[key] = (Job(key, run_group, (_spec(cfg, members, sections, save_models),), timeout_s=timeout),
                    members)
    return out


def _execute(executor, cfg: GridConfig, groups, sections, save_models=False) -> Iterator[tuple[list, Any]]:
    """(members, JobResult) as groups finish; a failed group of several members is run again
    member by member so that the failure lands on the trial that caused it."""
    jobs = _jobs(cfg, groups, sections, save_models)
    retry = []
    for result in executor.run([job for job, _ in jobs.values()]):
        members = jobs[result.key][1]
        if result.status != "ok" and len(members) > 1:
            retry.extend([m] for m in members)
            continue
        yield members, result
    if retry:
        yield from _execute(executor, cfg, retry, sections, save_models)


def _rows(members, result) -> Iterator[Any]:
    from .worker import TrialOutcome

    if result.status == "ok":
        yield from result.value
        return
    status = _JOB_STATUS.get(result.status, "failed")
    for trial in members:
        row = failure_row(trial, status, result.reason or status)
        row["peak_memory_mb"] = result.peak_rss_mb
        yield TrialOutcome(row)


def _open(folder: RunFolder, cfg: GridConfig, run_id: str, version: str, allow_code_change: bool) -> dict:
    from .folder import run_id_for

    previous = folder.read_run_json()
    if previous.get("config") and run_id_for(previous["config"]) != run_id_for(cfg.to_dict()):
        raise RunError(f"--out={str(folder.path)!r}: holds a run of another configuration; allowed: a new "
                       "folder, or the exact command that started it")
    versions = list(previous.get("code_versions", []))
    if versions and version not in versions and not allow_code_change:
        raise RunError(f"--out={str(folder.path)!r}: holds rows of code version {versions[-1]}, this is "
                       f"{version}; allowed: the same code, --allow-code-change (the run is then marked "
                       "mixed), or --fresh")
    return previous


class _Signals:
    """SIGINT -> KeyboardInterrupt, SIGTERM -> :class:`Terminated`, in the main thread for the
    duration of the run. The signal is also remembered, and :meth:`check` raises it again at the
    next row boundary: a library that swallows the exception (a network wait inside Dask) cannot
    make the run ignore it."""

    def __init__(self):
        self.previous: dict = {}
        self.received: type[BaseException] | None = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig, kind in ((signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)):
                self.previous[sig] = signal.signal(sig, self._handler(kind))
        return self

    def _handler(self, kind: type[BaseException]):
        def on_signal(signum, frame):
            self.received = kind
            raise kind()

        return on_signal

    def check(self) -> None:
        if self.received is not None:
            raise self.received()

    def __exit__(self, *exc):
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)


def run_grid(cfg: GridConfig, run_dir: Path, *, run_id: str, command: list[str] | str = "", console=None,
             show_progress: bool = True, jobs: int | None = None, scheduler: str | None = None,
             allow_code_change: bool = False, save_models: bool = False, executor=None) -> RunOutcome:
    """Run every pending trial of ``cfg`` into ``run_dir`` (resuming), then compact and stamp run.json.

    Args:
        jobs: worker processes of an embedded Dask cluster (default: the machine's cores);
            0 runs inline in this process (no isolation; for debugging).
        scheduler: address of an existing Dask scheduler (overrides ``jobs``).
        allow_code_change: resume a folder whose rows came from other code (marked mixed).
        save_models: store each fitted method's state as ``models/<trial_id>.pt``
            (:func:`hjbench.load_model` restores it).
        executor: an executor object to use instead (tests).
    """
    from rich.console import Console

    console = console or Console()
    folder, version = RunFolder(run_dir), code_version()
    previous = _open(folder, cfg, run_id, version, allow_code_change)
    folder.lock()
    try:
        folder.repair()
        settled = folder.settled()
        trials = expand(cfg, run_id, version)
        pending = [t for t in trials if t.trial_id not in settled]
        info = _start_info(previous, cfg, run_id, command, version, len(trials), len(pending))
        folder.write_run_json(info)
        stop = None
        try:
            with _Signals() as signals:
                ex = executor or _executor(jobs, scheduler, cfg.memory_limit_mb, cfg.threads)
                with ex:
                    _drive(ex, cfg, folder, pending, _section_ids(cfg, trials), console, show_progress,
                           save_models, signals.check)
        except Terminated:
            stop = "terminated"
        except KeyboardInterrupt:
            stop = "interrupted"
        df = _finish(folder, info, run_id, trials, stop)
    finally:
        folder.unlock()
    counts = info["counts"]
    return RunOutcome(folder.path, df, counts, len(trials), len(trials) - len(pending),
                      interrupted=stop == "interrupted", terminated=stop == "terminated")


def _start_info(previous: dict, cfg, run_id, command, version, n_trials, n_pending) -> dict:
    versions = list(dict.fromkeys(list(previous.get("code_versions", [])) + [version]))
    started = now()
    return {"run_id": run_id, "config": cfg.to_dict(), "command": command, "environment": environment(),
            "code_version": version, "code_versions": versions, "mixed_code": len(versions) > 1,
            "started": previous.get("started", started), "ended": None,
            "sessions": previous.get("sessions", []) + [{"started": started, "command": command,
                                                          "code_version": version, "n_pending": n_pending}],
            "n_trials": n_trials, "counts": previous.get("counts", {}), "interrupted": False,
            "terminated": False}


def _write_extras(folder: RunFolder, outcome, bar) -> None:
    """Cross-sections and saved models of one trial (by-products: a failure is a warning)."""
    from rich.text import Text

    tid = outcome.row["trial_id"]
    for what, item, write in (("sections", outcome.section, folder.write_section),
                              ("model", outcome.state, folder.write_model)):
        if item is None:
            continue
        try:
            write(tid, item)
        except Exception as exc:  # noqa: BLE001 (a figure's data or a saved model must not stop the run)
            bar.console.print(Text(f"warning: {what} of {tid} not written: {type(exc).__name__}: {exc}"))


def _drive(ex, cfg, folder: RunFolder, pending: list[Trial], sections, console, show_progress,
           save_models=False, check=lambda: None) -> None:
    from rich.text import Text

    with _progress(console, show_progress) as bar:
        task = bar.add_task("starting", total=len(pending))
        for members, result in _execute(ex, cfg, group_trials(pending), sections, save_models):
            for outcome in _rows(members, result):
                row = outcome.row
                folder.append(row)
                _write_extras(folder, outcome, bar)
                if row["status"] in _FAILED:
                    label = f"{row['method']} {row['prior']} dim={row['dim']} n={row['n_samples']} rep={row['repetition']}"
                    bar.console.print(Text(f"{row['status']}: {label}: {row['message']}"))
                bar.update(task, description=f"{row['method']} {row['prior']} dim={row['dim']}")
                bar.advance(task)
            check()  # a signal that arrived while this group ran: stop here, its rows are written
        bar.update(task, description="done")


def _finish(folder: RunFolder, info: dict, run_id: str, trials, stop: str | None):
    df = folder.compact(run_id)
    ids = {t.trial_id for t in trials}
    df = df[df["trial_id"].isin(ids)].reset_index(drop=True)
    counts = {s: int((df["status"] == s).sum()) for s in STATUSES}
    counts["pending"] = len(trials) - len(df)
    info.update(ended=now(), counts=counts, interrupted=stop == "interrupted", terminated=stop == "terminated")
    folder.write_run_json(info)
    return df


def _progress(console, enabled: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("{task.description:<32.32}"), BarColumn(bar_width=16), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                    disable=not enabled)
