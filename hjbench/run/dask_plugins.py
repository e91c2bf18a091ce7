"""Dask worker and nanny plug-ins of the executor: GPU pinning, a per-worker set-up hook, and the
report of a worker process's exit code (see :mod:`hjbench.run.dask_executor`)."""

from __future__ import annotations

import os
import zlib
from typing import Any, Callable

from hjbench.run.executors import EXIT_TOPIC, _config_error
from hjbench.run.memory import read_peak_file

__all__ = ["PinGpu", "WorkerSetup", "gpu_for_worker"]


def gpu_for_worker(name: object, gpus: list[int]) -> int:
    """The GPU of worker ``name``: ``gpus[i % len(gpus)]`` for a worker named (or numbered)
    ``i``, else chosen by a stable CRC32 of the name."""
    if not gpus:
        raise _config_error(f"gpus={gpus!r} must list at least one GPU index, e.g. [0, 1]")
    text = str(name)
    index = int(text) if text.isdigit() else zlib.crc32(text.encode())
    return gpus[index % len(gpus)]


try:
    from distributed.diagnostics.plugin import NannyPlugin as _NannyPlugin, WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - dask is optional for InlineExecutor
    _NannyPlugin = _WorkerPlugin = object


class PinGpu(_WorkerPlugin):
    """Worker plugin setting ``CUDA_VISIBLE_DEVICES`` to ``gpu_for_worker(worker.name, gpus)``
    when a worker starts (again after each restart), before any job can initialise CUDA."""

    name = "hjbench-pin-gpu"

    def __init__(self, gpus: list[int]):
        self.gpus = list(gpus)
        gpu_for_worker(0, self.gpus)

    def setup(self, worker: Any) -> None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_for_worker(worker.name, self.gpus))


class WorkerSetup(_WorkerPlugin):
    """Worker plugin calling ``fn()`` when a worker starts (again after each restart), so that
    one-time imports are paid before the first job and never count against its ``timeout_s``."""

    name = "hjbench-worker-setup"

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn

    def setup(self, worker: Any) -> None:
        self.fn()


_CLOSING = {"closing", "closed", "closing_gracefully", "failed"}
LOCAL_EXITS: dict[str, dict] = {}  # worker address -> exit report, filled where the nanny runs


class _ExitReporter(_NannyPlugin):
    """Nanny plugin that logs a worker process's non-zero exit code under ``EXIT_TOPIC``, with
    the RSS peak of the job it died in (``hjbench.run.memory.peak_file``; NaN if none).

    Best effort: it wraps the nanny's exit hook (a dask internal, present in 2024-2026
    releases); where that hook is missing it does nothing and crashes read "exit code unknown".
    """

    name = "hjbench-exit-reporter"

    def setup(self, nanny: Any) -> None:
        original = getattr(nanny, "_on_worker_exit_sync", None)
        if original is None:
            return

        def on_exit(exitcode: int) -> None:
            try:
                peak = read_peak_file(nanny.worker_address)  # left by a job the worker died in
                closing = str(getattr(nanny, "status", "")).split(".")[-1] in _CLOSING
                if exitcode and not closing:  # at shutdown the scheduler's comm may be gone
                    report = {"worker": nanny.worker_address, "exitcode": exitcode, "peak_rss_mb": peak}
                    LOCAL_EXITS[nanny.worker_address] = report  # a LocalCluster's driver reads it here
                    nanny.log_event(EXIT_TOPIC, report)
            except Exception:  # noqa: BLE001 - a closing nanny must still restart or stop
                pass
            original(exitcode)

        nanny._on_worker_exit_sync = on_exit
        if getattr(nanny, "process", None) is not None:
            nanny.process.on_exit = on_exit


# Set while an executor is open. allowed-failures: a job that kills its worker is not retried;
# lost-worker-timeout: a LocalCluster must not close a nanny whose worker is slow to restart;
# tick.limit: a busy machine is not an event-loop fault worth a warning; profile: the
# worker's stack sampler would contend for the GIL with the job every 10 ms.
