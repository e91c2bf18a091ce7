"""Executors: run jobs in isolated worker processes; every failure comes back as a result row.

``InlineExecutor`` runs jobs in this process, in order (debugging, tests). ``DaskExecutor``
runs each job in a ``dask.distributed`` worker process watched by a nanny, so that a job which
raises, calls ``sys.exit``, segfaults, hangs or allocates without bound becomes exactly one
``JobResult`` and the run goes on. The driver is the only writer of results.

- ``error``: the wrapper caught a ``BaseException`` from the job (``SystemExit`` and a
  ``KeyboardInterrupt`` raised by the job included) and returned it as a value.
- ``timeout`` / ``oom``: a ``Watchdog`` thread beside the job samples time and RSS every 5 ms;
  on a breach it logs a verdict at the scheduler, waits for the acknowledgement and SIGKILLs
  its worker; the nanny starts a fresh one. If the watchdog cannot run (a C call holding the
  GIL), the driver stops the worker ``timeout_s`` + ``_grace_s`` after the job started. A
  worker stopped by dask's own nanny memory limit is ``oom`` too.
- ``crashed``: the worker died without a verdict (segfault, ``os._exit``, the OS OOM killer);
  the reason carries the exit code the nanny reported (waited for up to 15 s) and the
  job's RSS peak, which the worker's watchdog keeps in a file that outlives the worker. With an
  embedded cluster the driver also reads that file and faulthandler's report of a fatal signal.

The scheduler runs with ``allowed-failures: 0``: a job that kills its worker is not retried.
A job whose worker died before it *started* (a bystander) is resubmitted, at most
``_MAX_RESUBMITS`` times. See docs/cluster.md.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal

from hjbench.run.memory import PeakMemory, Watchdog

__all__ = ["Job", "JobResult", "InlineExecutor", "DaskExecutor", "PinGpu", "gpu_for_worker"]

Status = Literal["ok", "error", "crashed", "timeout", "oom"]
START_TOPIC, VERDICT_TOPIC, EXIT_TOPIC = "hjbench-job-start", "hjbench-job-verdict", "hjbench-worker-exit"
NANNY_MEMORY_TOPIC = "worker-restart-memory"  # logged by dask's nanny when it stops a worker
_MAX_RESUBMITS = 3
_SIGNALS = {-int(s): s.name for s in (signal.SIGSEGV, signal.SIGKILL, signal.SIGABRT, signal.SIGBUS,
                                     signal.SIGTERM, signal.SIGFPE, signal.SIGILL)}


def _config_error(message: str) -> Exception:
    from hjbench.errors import ConfigError  # lazily: hjbench.errors imports torch; workers need not

    return ConfigError(message)


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args, **kwargs)`` run in a worker, under ``timeout_s`` seconds.

    ``fn`` must be a top-level (picklable) function; ``key`` is a stable id that the result
    carries back; ``timeout_s`` covers the whole job (construction, data, fit, evaluation).
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise _config_error(f"Job key={self.key!r} must be a non-empty str; pass a stable id")
        if not callable(self.fn):
            raise _config_error(f"Job fn={self.fn!r} must be callable; pass a top-level function")
        t = self.timeout_s
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0):
            raise _config_error(f"Job timeout_s={t!r} must be a number > 0 or None; pass seconds")


@dataclass(frozen=True)
class JobResult:
    """What became of one job: ``status``, the return ``value`` (None unless ``"ok"``), a
    one-line ``reason`` (``""`` when ok), wall ``seconds`` in the worker, the RSS high-water
    mark ``peak_rss_mb`` of the worker during the job (MiB, whole process; NaN when unknown),
    and the ``worker`` that ran it (``"inline"`` in process)."""

    key: str
    status: Status
    value: Any
    reason: str
    seconds: float
    peak_rss_mb: float
    worker: str


def describe_exception(exc: BaseException) -> str:
    """``"TypeName: first line of the message"``, at most 300 characters."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def describe_exit(exitcode: int | None) -> str:
    """Say how a worker process ended: ``"exit code -11, SIGSEGV"``; ``None`` when unknown."""
    if exitcode is None:
        return "exit code unknown"
    name = _SIGNALS.get(exitcode)
    return f"exit code {exitcode}, {name}" if name else f"exit code {exitcode}"


def run_job(job: Job, worker: str = "inline", watchdog: "Watchdog | None" = None,
            reraise: tuple[type[BaseException], ...] = ()) -> JobResult:
    """Run ``job`` here; any ``BaseException`` from it becomes an ``"error"`` result, except
    the kinds in ``reraise`` (the inline executor lets Ctrl-C and SIGTERM through)."""
    with PeakMemory() as mem:
        start = time.perf_counter()
        if watchdog is not None:
            watchdog.start()
        try:
            value, status, reason = job.fn(*job.args, **job.kwargs), "ok", ""
        except reraise:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt included
            value, status, reason = None, "error", describe_exception(exc)
        finally:
            if watchdog is not None:
                watchdog.finish()
        seconds = time.perf_counter() - start
    peak = mem.mb
    if mem.reason and status == "ok":
        reason = f"peak_rss_mb unknown: {mem.reason}"
    return JobResult(job.key, status, value, reason, seconds, peak, worker)


class InlineExecutor:
    """Run jobs one after another in this process; no isolation.

    Exceptions from a job become ``"error"`` results, except a ``KeyboardInterrupt``, which
    is re-raised so that Ctrl-C still stops a debugging run. ``timeout_s`` is checked after
    the job: a job that took longer becomes ``"timeout"`` (its value dropped). There is no
    memory limit and a crash ends the process.
    """

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]:
        """Yield one ``JobResult`` per job, in order."""
        for job in jobs:
            result = run_job(job, reraise=(KeyboardInterrupt,))
            if job.timeout_s is not None and result.seconds > job.timeout_s:
                result = JobResult(job.key, "timeout", None, f"took {result.seconds:.2f} s > timeout_s="
                                   f"{job.timeout_s:g} (checked after the job)", result.seconds,
                                   result.peak_rss_mb, result.worker)
            yield result

    def close(self) -> None:
        """Nothing to release; present so both executors can be closed alike."""

    def __enter__(self) -> "InlineExecutor":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def __getattr__(name: str) -> Any:
    """The Dask executor and its plug-ins, re-exported lazily (no import cycle, no dask import
    for the inline executor)."""
    if name in ("DaskExecutor", "PinGpu", "WorkerSetup", "gpu_for_worker"):
        from hjbench.run import dask_executor

        return getattr(dask_executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
