"""The grid runner: expand a grid into trials, run them, and write one row per trial.

A *cell* is (prior, dim, n_samples, repetition): its data are sampled once, with a
``torch.Generator`` seeded by the cell's data seed (:func:`hjbench.seeds.data_seed`), and every
method of the cell is fitted on the same split. A *trial* is one method on one cell. Trials run
repetition by repetition (so an interrupted run has whole passes over the grid), then prior,
dim, n_samples, method.

Each trial ends in one status:

* ``ok``       fitted and evaluated (metrics a method cannot give are NaN, reasons in ``message``);
* ``skipped``  ``method.skip(device=, dim=)`` gave a reason (the message);
* ``failed``   an exception in construction, fit or evaluation: ``"<Type>: <text>"`` on one line;
* ``timeout``  fit + evaluation ran past ``timeout_s``. On the main thread of a Unix process the
  limit is a real deadline (``SIGALRM`` raises :class:`TrialTimeout`, a ``BaseException`` so that
  a method's ``except Exception`` cannot swallow it); elsewhere it is checked once the trial ends.

Each finished row is appended to ``trials.jsonl`` at once (flush + fsync), so killing the run
loses at most the running trial. Running the same grid again into the same folder skips every
trial whose last row has status ``ok`` and re-runs the others.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import SCHEMA_VERSION
from .config import GridConfig
from ..errors import ConfigError
from ..seeds import canonical_json, data_seed, method_seed, trial_id

__all__ = ["Trial", "RunOutcome", "TrialTimeout", "expand", "run_grid", "run_trial", "deadline"]


@dataclass(frozen=True)
class Trial:
    """One method on one cell; ``identity`` holds the identity columns of the results schema."""

    identity: dict
    params: dict  # constructor keywords of the method

    @property
    def trial_id(self) -> str:
        return self.identity["trial_id"]

    @property
    def cell(self) -> tuple:
        i = self.identity
        return (i["prior"], i["prior_params"], i["dim"], i["n_samples"], i["repetition"], i["seed"])

    @property
    def label(self) -> str:
        i = self.identity
        return f"{i['method']} {i['prior']} dim={i['dim']} n={i['n_samples']} rep={i['repetition']}"


@dataclass
class RunOutcome:
    run_dir: Path
    trials: Any  # DataFrame of this grid's trials (last row per trial)
    counts: dict
    n_total: int
    n_resumed: int
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """130 interrupted; 1 some trial failed or timed out; 0 otherwise."""
        if self.interrupted:
            return 130
        return 1 if self.counts.get("failed", 0) or self.counts.get("timeout", 0) else 0


class TrialTimeout(BaseException):
    """A trial ran past its deadline."""


def expand(cfg: GridConfig, run_id: str = "") -> list[Trial]:
    """Every trial of the grid, in run order, with seeds and stable trial ids."""
    trials = []
    for rep, prior in itertools.product(range(cfg.repetitions), cfg.priors):
        for dim in cfg.dims:
            for n in cfg.n_samples[dim]:
                resolved = prior.resolved[str(dim)]
                ds = data_seed(cfg.seed, prior.name, resolved, dim, n, rep, cfg.t, cfg.regime, cfg.box)
                for method in cfg.methods:
                    ident = {"method": method.name, "method_params": canonical_json(method.resolved),
                             "prior": prior.name, "prior_params": canonical_json(resolved),
                             "dim": dim, "n_samples": n, "repetition": rep, "seed": ds,
                             "method_seed": method_seed(ds, method.name), "t": cfg.t,
                             "regime": cfg.regime, "box": cfg.box, "device": cfg.device, "dtype": cfg.dtype}
                    tid = trial_id({**ident, "n_test": cfg.n_test, "n_cross": cfg.n_cross})
                    trials.append(Trial({"schema_version": SCHEMA_VERSION, "run_id": run_id,
                                         "trial_id": tid, **ident}, dict(method.params)))
    return trials


@contextmanager
def deadline(seconds: float | None):
    """Raise :class:`TrialTimeout` in the block after ``seconds`` (see the module docstring)."""
    if not seconds:
        yield
        return
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        start = time.perf_counter()
        yield
        if time.perf_counter() - start > seconds:
            raise TrialTimeout(f"trial took {time.perf_counter() - start:.1f} s > timeout_s={seconds:g} "
                               "(checked after the trial)")
        return

    def on_alarm(signum, frame):
        raise TrialTimeout(f"trial stopped after timeout_s={seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 1000 else text[:997] + "..."


def run_trial(trial: Trial, prior, split, cfg: GridConfig, run_dir: Path | None = None) -> dict:
    """Build, fit and evaluate one method on a sampled cell; return its results row.

    With ``run_dir``, the first repetition at the largest n_samples of each dim also stores the
    fitted method's cross-sections (``sections/<trial_id>.parquet``) for the report's figures;
    a failure there is noted in the message, never a failed trial.
    """
    import torch

    from .. import methods
    from ..score.metrics import Evaluation
    from ..score.metrics import PeakMemory
    from ..score.metrics import evaluate

    row = {**trial.identity, **Evaluation(), "status": "ok", "message": ""}
    ident = trial.identity
    try:
        method = methods.get(ident["method"], **trial.params)
        reason = method.skip(device=cfg.device, dim=ident["dim"])
        if reason:
            row.update(status="skipped", message=str(reason))
            return row
        with deadline(cfg.timeout_s), PeakMemory(cfg.device) as mem:
            method.fit(split.train, seed=ident["method_seed"])
            ev = evaluate(method, prior, split, cfg.box, n_cross=cfg.n_cross)
        if mem.reason:
            ev.missing(["peak_memory_mb"], mem.reason)
        else:
            ev["peak_memory_mb"] = mem.mb
        row.update(ev)
        row["message"] = ev.message()
        if run_dir is not None and ident["repetition"] == 0 and \
                ident["n_samples"] == max(cfg.n_samples[ident["dim"]]):
            try:
                from ..present.plots import write_sections

                write_sections(run_dir, method, ident, box=cfg.box, n_points=min(cfg.n_cross, 201),
                               dtype=getattr(torch, cfg.dtype), device=cfg.device)
            except Exception as exc:  # noqa: BLE001 (figures are a by-product, not the trial)
                row["message"] = "; ".join(filter(None, [row["message"], "sections: " + _one_line(exc)]))
    except TrialTimeout as exc:
        row.update(status="timeout", message=f"TrialTimeout: {exc}")
    except Exception as exc:  # noqa: BLE001 (one failing trial must not stop the run)
        row.update(status="failed", message=_one_line(exc))
    return row


def _progress(console, enabled: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("{task.description:<32.32}"), BarColumn(bar_width=16), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                    disable=not enabled)


def run_grid(cfg: GridConfig, run_dir: Path, *, run_id: str, command: list[str] | str = "",
             console=None, show_progress: bool = True) -> RunOutcome:
    """Run every pending trial of ``cfg`` into ``run_dir`` (resuming), then compact and stamp run.json.

    A KeyboardInterrupt stops the run after compacting what is on disk; the outcome then has
    ``interrupted=True`` (exit code 130).
    """
    import torch
    from rich.console import Console
    from rich.text import Text

    from .. import priors
    from . import folder as results
    from ..data import sample_split

    console = console or Console()
    run_dir = Path(run_dir)
    previous = results.read_run_json(run_dir)
    if previous.get("config") and results.run_id_for(previous["config"]) != results.run_id_for(cfg.to_dict()):
        raise ConfigError(f"config: --out={str(run_dir)!r}: holds a run of another configuration; "
                          "allowed: a new folder, or the exact command that started it")
    run_dir.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)  # restored at the end; recorded in run.json
    results.repair_jsonl(run_dir / "trials.jsonl")
    done = {r.get("trial_id") for r in results.read_jsonl(run_dir / "trials.jsonl") if r.get("status") == "ok"}
    trials = expand(cfg, run_id)
    pending = [t for t in trials if t.trial_id not in done]
    started = results.now()
    info = {"run_id": run_id, "config": cfg.to_dict(), "command": command, "environment": results.environment(),
            "started": previous.get("started", started), "ended": None,
            "sessions": previous.get("sessions", []) + [{"started": started, "command": command,
                                                          "n_pending": len(pending)}],
            "n_trials": len(trials), "counts": previous.get("counts", {}), "interrupted": False}
    results.write_run_json(run_dir, info)

    dtype = getattr(torch, cfg.dtype)
    _warm_up()
    interrupted = False
    try:
        with _progress(console, show_progress) as bar:
            task = bar.add_task("starting", total=len(pending))
            for _, cell in itertools.groupby(pending, key=lambda t: t.cell):
                cell = list(cell)
                ident, split, prior, data_error = cell[0].identity, None, None, None
                try:
                    prior = priors.get(ident["prior"], dim=ident["dim"], t=cfg.t,
                                       **next(p.params for p in cfg.priors if p.name == ident["prior"]))
                    split = sample_split(prior, ident["n_samples"], n_test=cfg.n_test, regime=cfg.regime,
                                         box=cfg.box, generator=torch.Generator().manual_seed(ident["seed"]),
                                         dtype=dtype, device=cfg.device)
                except Exception as exc:  # noqa: BLE001
                    data_error = "data: " + _one_line(exc)
                for trial in cell:
                    bar.update(task, description=trial.label)
                    if data_error:
                        row = {**trial.identity, **_nan_metrics(), "status": "failed", "message": data_error}
                    else:
                        row = run_trial(trial, prior, split, cfg, run_dir)
                    results.append_trial(run_dir, row)
                    if row["status"] in ("failed", "timeout"):
                        bar.console.print(Text(f"{row['status']}: {trial.label}: {row['message']}"))
                    bar.advance(task)
            bar.update(task, description="done")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        df = results.compact(run_dir)
        ids = {t.trial_id for t in trials}
        df = df[df["trial_id"].isin(ids)].reset_index(drop=True)
        counts = {s: int((df["status"] == s).sum()) for s in results.STATUSES}
        counts["pending"] = len(trials) - len(df)
        info.update(ended=results.now(), counts=counts, interrupted=interrupted)
        results.write_run_json(run_dir, info)
        torch.set_num_threads(threads_before)
    return RunOutcome(run_dir, df, counts, len(trials), len(trials) - len(pending), interrupted)


def _warm_up() -> None:
    """Pay one-time lazy imports (torch.optim pulls in torch._dynamo, seconds) before the first
    trial, so that they do not inflate its fit_seconds and peak_memory_mb."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _nan_metrics() -> dict:
    from ..score.metrics import Evaluation

    return dict(Evaluation())
