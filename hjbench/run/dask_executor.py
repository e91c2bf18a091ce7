"""The Dask executor: jobs in nanny-watched worker processes of a ``LocalCluster`` or of an
existing cluster (see :mod:`hjbench.run.executors` for the statuses and guarantees, and
docs/cluster.md)."""

from __future__ import annotations

import math
import os
import queue
import signal
import time
import uuid
import warnings
from typing import Any, Callable, Iterable, Iterator

from hjbench.run.executors import (EXIT_TOPIC, NANNY_MEMORY_TOPIC, START_TOPIC, VERDICT_TOPIC, _MAX_RESUBMITS,
                                   Job, JobResult, _config_error, describe_exception, describe_exit, run_job)
from hjbench.run.dask_plugins import LOCAL_EXITS, PinGpu, WorkerSetup, _ExitReporter, gpu_for_worker
from hjbench.run.memory import Watchdog, peak_file, read_peak_file

__all__ = ["DaskExecutor", "PinGpu", "WorkerSetup", "gpu_for_worker"]

def _tell_scheduler(worker: Any, topic: str, msg: dict, timeout_s: float = 10.0) -> None:
    """Log ``msg`` under ``topic`` at the scheduler and wait for its acknowledgement."""
    from distributed.utils import sync

    async def send() -> None:
        await worker.scheduler.log_event(topic=topic, msg=msg)

    sync(worker.loop, send, callback_timeout=timeout_s)


_FATAL = {"Segmentation fault": -11, "Bus error": -7, "Floating point exception": -8, "Aborted": -6,
          "Illegal instruction": -4}
_ARMED: dict[str, Any] = {}  # worker address -> the open report file (kept alive)


def _fatal_file(address: str) -> str:
    """Where faulthandler of worker ``address`` writes a fatal signal's report (see ``_death``)."""
    return peak_file(address)[:-len(".txt")] + "-fatal.txt"


def _arm_faulthandler(address: str) -> None:
    """Once per worker process: on SIGSEGV, SIGBUS, SIGFPE, SIGABRT or SIGILL, Python's
    faulthandler writes "Fatal Python error: Segmentation fault" etc. to ``_fatal_file``, a
    record of the signal that does not depend on the nanny's exit report reaching the driver."""
    import faulthandler

    if address in _ARMED:
        return
    _ARMED[address] = open(_fatal_file(address), "w")  # noqa: SIM115 - open for the process's life
    faulthandler.enable(file=_ARMED[address], all_threads=False)


def _fatal_exitcode(address: str) -> int | None:
    """The exit code a worker's faulthandler report names (then remove it), None if none."""
    path = _fatal_file(address)
    try:
        with open(path) as handle:
            text = handle.read(4096)
        os.remove(path)
    except OSError:
        return None
    return next((code for words, code in _FATAL.items() if words in text), None)


def _worker_job(job: Job, token: str, memory_limit_mb: float | None) -> JobResult:
    """The wrapper each Dask worker runs: announce the start, watch, run, return a value."""
    from distributed import get_worker

    worker = get_worker()
    _arm_faulthandler(worker.address)
    _tell_scheduler(worker, START_TOPIC, {"token": token, "worker": worker.address, "pid": os.getpid()})

    def on_breach(status: str, reason: str, seconds: float, peak_mb: float) -> None:
        verdict = {"token": token, "status": status, "reason": reason, "seconds": seconds,
                   "peak_rss_mb": peak_mb, "worker": worker.address}
        try:
            _tell_scheduler(worker, VERDICT_TOPIC, verdict, timeout_s=2.0)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    watchdog = Watchdog(job.timeout_s, memory_limit_mb, on_breach, publish_peak=worker.address)
    return run_job(job, worker.address, watchdog)


# allowed-failures 0: a job that kills its worker is not retried; profile off: dask's stack
# sampler competes with the job for the GIL. glibc's malloc settings (read at process start, so
# set before spawning): dask sets MALLOC_TRIM_THRESHOLD_, and setting it switches off glibc's
# dynamic mmap threshold, so every tensor above 128 KiB is mmap'ed and unmapped again at each
# training step: a third of the time in the kernel (measured: 10.9M page faults and 13 s of
# system time for 48 s of work, against 0.3M and 1 s inline). Pinning the mmap threshold at
# glibc's maximum (32 MiB) keeps those tensors in the heap.
_DASK_CONFIG = {"distributed.scheduler.allowed-failures": 0, "distributed.deploy.lost-worker-timeout": "1h",
                "distributed.admin.tick.limit": "1h", "distributed.worker.profile.enabled": False,
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 2**27,
                "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**25}
_TOPIC_FIELDS = {START_TOPIC: "token", VERDICT_TOPIC: "token", EXIT_TOPIC: "worker", NANNY_MEMORY_TOPIC: "worker"}


_EXIT_REPORT_WAIT_S = 15.0


def _grace_s(timeout_s: float) -> float:
    """Extra time the driver allows the in-worker watchdog before it stops the worker itself."""
    return 2.0 + 0.5 * timeout_s


class DaskExecutor:
    """Run jobs in ``dask.distributed`` worker processes, one job per worker thread at a time.

    Args:
        n_workers: worker processes of the embedded ``LocalCluster`` (default ``os.cpu_count()``).
        scheduler: ``"tcp://host:port"`` of an existing cluster to connect to instead; it must
            run with ``distributed.scheduler.allowed-failures: 0`` and is left running on close.
        memory_limit_mb: RSS limit of a worker process while it runs a job (MiB); a job going
            over it ends as ``"oom"``.
        threads_per_worker: job slots per worker (keep 1: jobs sharing a process share its fate).
        worker_env: environment variables for the embedded workers (e.g. thread counts).
        gpus: GPU indices; worker ``i`` sees ``CUDA_VISIBLE_DEVICES=gpus[i % len(gpus)]``.

    Use as a context manager; ``run`` starts the cluster on first use if needed. Learned
    state: ``client_`` and ``cluster_`` (None when connected to an existing scheduler).
    """

    def __init__(self, n_workers: int | None = None, *, scheduler: str | None = None,
                 memory_limit_mb: float | None = None, threads_per_worker: int = 1,
                 worker_env: dict | None = None, gpus: list[int] | None = None,
                 setup: Callable[[], Any] | None = None):
        from hjbench.errors import check_int, check_positive

        self.n_workers = check_int("n_workers", (os.cpu_count() or 1) if n_workers is None else n_workers)
        if scheduler is not None and not (isinstance(scheduler, str) and "://" in scheduler):
            raise _config_error(f"scheduler={scheduler!r} must be an address like 'tcp://host:8786' or None")
        self.scheduler = scheduler
        self.memory_limit_mb = None if memory_limit_mb is None else check_positive("memory_limit_mb", memory_limit_mb)
        self.threads_per_worker = check_int("threads_per_worker", threads_per_worker)
        self.worker_env = {str(k): str(v) for k, v in (worker_env or {}).items()}
        self.setup = setup
        self.gpus = None if gpus is None else [check_int("gpus[i]", g, minimum=0) for g in gpus]
        if self.gpus is not None:
            gpu_for_worker(0, self.gpus)
        self.client_: Any = None
        self.cluster_: Any = None
        self._inbox: dict[str, dict] = {topic: {} for topic in _TOPIC_FIELDS}
        self._verdicts: dict[str, dict] = {}
        self._config: Any = None

    def start(self) -> "DaskExecutor":
        """Start the embedded cluster (or connect to ``scheduler``) unless already started."""
        if self.client_ is not None:
            return self
        import dask
        from distributed import Client, LocalCluster

        self._config = dask.config.set(_DASK_CONFIG)
        self._config.__enter__()  # read by the embedded cluster for as long as it runs
        try:
            self._connect(Client, LocalCluster)
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self, Client: Any, LocalCluster: Any) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Port .* is already in use")  # the http server
            if self.scheduler is None:
                self.cluster_ = LocalCluster(
                    n_workers=self.n_workers, threads_per_worker=self.threads_per_worker,
                    processes=True, dashboard_address=None, silence_logs=50, env=self.worker_env)
            self.client_ = Client(self.cluster_ or self.scheduler, set_as_default=False)
        failures = self.client_.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
        if failures != 0:
            raise _config_error(f"scheduler={self.scheduler!r} has allowed-failures={failures}; it must be 0 "
                                "(start it with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0)")
        for topic, key_field in _TOPIC_FIELDS.items():
            self.client_.subscribe_topic(topic, lambda event, t=topic, f=key_field: self._on_event(t, f, event))
        self.client_.register_plugin(_ExitReporter())
        if self.gpus is not None:
            self.client_.register_plugin(PinGpu(self.gpus))
        if self.setup is not None:
            self.client_.register_plugin(WorkerSetup(self.setup))

    def _on_event(self, topic: str, key_field: str, event: tuple) -> None:
        stamp, msg = event
        if isinstance(msg, dict) and key_field in msg:
            self._inbox[topic][msg[key_field]] = (stamp, msg)

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]:
        """Yield one ``JobResult`` per job as jobs finish (any order). Jobs are submitted as
        worker threads free up, so no worker idles while jobs wait; leaving the loop early
        cancels what is still pending."""
        client = self.start().client_
        todo, done, flights = iter(jobs), queue.Queue(), {}
        more, capacity, checked = True, 1, -math.inf
        try:
            while True:
                if time.monotonic() - checked > 0.5:  # workers come and go (restarts, scaling)
                    capacity, checked = max(1, sum(client.nthreads().values())), time.monotonic()
                while more and len(flights) < capacity:
                    job = next(todo, None)
                    more = job is not None
                    if more:
                        self._submit(job, 0, flights, done)
                if not flights:
                    return
                try:
                    future = done.get(timeout=0.25)
                except queue.Empty:
                    self._backstop(flights)
                    continue
                job, _, resubmits = flights.pop(future.key)
                result = self._collect(job, future)
                if result is None and resubmits < _MAX_RESUBMITS:
                    self._submit(job, resubmits + 1, flights, done)
                    continue
                yield result or JobResult(job.key, "crashed", None, f"worker died before the job started, "
                                          f"{resubmits + 1} times", math.nan, math.nan, "")
        finally:
            client.cancel([future for _, future, _ in flights.values()])

    def _submit(self, job: Job, resubmits: int, flights: dict, done: queue.Queue) -> None:
        token = f"hjbench-job-{uuid.uuid4().hex}"
        future = self.client_.submit(_worker_job, job, token, self.memory_limit_mb, key=token, pure=False)
        flights[token] = (job, future, resubmits)
        future.add_done_callback(done.put)

    def _collect(self, job: Job, future: Any) -> JobResult | None:
        """The result of a finished future; None for a job whose worker died before it started."""
        from distributed import KilledWorker

        token = future.key
        started = self._inbox[START_TOPIC].pop(token, None)
        verdict = self._verdicts.pop(token, None) or (self._inbox[VERDICT_TOPIC].pop(token, (0, None))[1])
        if verdict is not None:
            return JobResult(job.key, verdict["status"], None, verdict["reason"] + "; worker stopped",
                             verdict["seconds"], verdict["peak_rss_mb"], verdict["worker"])
        try:
            return future.result()
        except KilledWorker as exc:
            if started is None:
                return None
            return self._death(job, started, exc.last_worker.address)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM in the driver while it fetched a result
            raise
        except BaseException as exc:  # noqa: BLE001 - failures outside the wrapper are rows too
            return JobResult(job.key, "error", None, f"job failed outside its wrapper: "
                             f"{describe_exception(exc)}", math.nan, math.nan, "")

    def _death(self, job: Job, started: tuple, address: str) -> JobResult:
        """Classify a worker that died inside ``job``: nanny memory stop (oom) or a crash."""
        seconds = time.time() - started[0]
        memory = self._inbox[NANNY_MEMORY_TOPIC].pop(address, None)
        if memory is not None:
            rss = memory[1].get("rss", math.nan) / 2**20
            return JobResult(job.key, "oom", None, f"worker stopped by its nanny at RSS {rss:.0f} MB (dask "
                             "worker memory limit)", seconds, rss, address)
        # The nanny's exit report trails the death notice, by seconds on a loaded machine, and may
        # never come (CI saw both; nannies without the hook send none). A LocalCluster's nannies
        # run in this process (LOCAL_EXITS), and faulthandler's and the watchdog's files are on
        # this host: they name the signal and the peak without the report.
        local = self.cluster_ is not None
        deadline = time.monotonic() + (2.0 if local else _EXIT_REPORT_WAIT_S)
        while (address not in self._inbox[EXIT_TOPIC] and address not in LOCAL_EXITS
               and time.monotonic() < deadline):
            time.sleep(0.02)
        report = self._inbox[EXIT_TOPIC].pop(address, (0, {}))[1] or LOCAL_EXITS.get(address, {})
        LOCAL_EXITS.pop(address, None)
        if local:
            fatal = _fatal_exitcode(address)
            report = {"exitcode": report.get("exitcode") or fatal, "peak_rss_mb":
                      report.get("peak_rss_mb", math.nan) if report else read_peak_file(address)}
        peak = float(report.get("peak_rss_mb", math.nan))
        memory = "peak memory unknown" if math.isnan(peak) else f"peak RSS {peak:.0f} MB"
        return JobResult(job.key, "crashed", None, f"worker died ({describe_exit(report.get('exitcode'))}); "
                         f"{memory}", seconds, peak, address)

    def _backstop(self, flights: dict) -> None:
        """Stop the worker of a job still running ``timeout_s`` + a grace after it started."""
        now = time.time()
        for token, (job, future, _) in flights.items():
            started = self._inbox[START_TOPIC].get(token)
            if job.timeout_s is None or started is None or token in self._verdicts:
                continue
            elapsed = now - started[0]
            if elapsed < job.timeout_s + _grace_s(job.timeout_s):
                continue
            self._verdicts[token] = {"status": "timeout", "seconds": elapsed, "peak_rss_mb": math.nan,
                                     "worker": started[1]["worker"], "reason": f"timed out after "
                                     f"{elapsed:.1f} s > timeout_s={job.timeout_s:g} (the job held the GIL; "
                                     "stopped by the driver)"}
            if self.cluster_ is not None:  # embedded: the worker is a local process
                try:
                    os.kill(started[1]["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                future.cancel()
                self.client_.restart_workers([started[1]["worker"]], raise_for_error=False)

    def close(self) -> None:
        """Disconnect; shut the embedded cluster down (workers, nannies, scheduler)."""
        client, cluster, self.client_, self.cluster_ = self.client_, self.cluster_, None, None
        if client is not None and cluster is not None:  # this host's workers: their report files
            try:
                for address in client.scheduler_info().get("workers", {}):
                    for path in (_fatal_file(address), peak_file(address)):
                        if os.path.exists(path):
                            os.remove(path)
            except Exception:  # noqa: BLE001 - a closing cluster: leave the files
                pass
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close(timeout=20)
        if self._config is not None:
            self._config, config = None, self._config
            config.__exit__(None, None, None)
        for box in self._inbox.values():
            box.clear()

    def __enter__(self) -> "DaskExecutor":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
