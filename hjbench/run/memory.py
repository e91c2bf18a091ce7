"""Memory of a block of code: its peak (RSS high-water mark, CUDA allocator peak) and its limits.

``PeakMemory`` is what the executors' job wrapper uses to fill ``JobResult.peak_rss_mb``. On
Linux the kernel keeps the resident-set high-water mark of a process (``VmHWM`` in
``/proc/self/status``); writing ``5`` to ``/proc/self/clear_refs`` resets it to the current
RSS, so the mark read after the block is the peak *during* the block (a whole-process figure:
it includes the interpreter and everything already resident, like ``VmRSS``). Where
``clear_refs`` may not be written (some containers), a thread samples ``VmRSS`` every
``interval_s`` instead, which can miss spikes shorter than the interval. On CUDA devices the
peak is ``torch.cuda.max_memory_allocated`` after ``torch.cuda.reset_peak_memory_stats``
(tensors only, not the caching allocator's reserve). torch is imported only when a CUDA
device is asked for. Elsewhere the figure is NaN and ``reason`` says why.

``Watchdog`` is the thread that runs beside a job in its worker and enforces the job's time
and RSS limits by sampling every 5 ms (see ``hjbench.run.executors``). Sampling RSS, rather
than ``RLIMIT_AS``, leaves alone the large virtual reservations that torch and JAX make.

Megabytes here are MiB (2**20 bytes), the unit of ``/proc`` (kB = 2**10 bytes) divided by 1024.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Callable

__all__ = ["PeakMemory", "Watchdog", "peak_file", "read_peak_file", "rss_mb"]

_STATUS = "/proc/self/status"
_STATM = "/proc/self/statm"
_CLEAR_REFS = "/proc/self/clear_refs"
WATCH_INTERVAL_S = 0.005
_PAGE_MB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) / 2**20


def rss_mb() -> float:
    """Current resident set size of this process in MB (MiB), or NaN where ``/proc`` is missing."""
    try:
        with open(_STATM, "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE_MB
    except (OSError, IndexError, ValueError):
        return math.nan


def peak_file(owner: str) -> str:
    """Where the watchdog of worker ``owner`` (its address) keeps the running RSS peak of its
    job (MiB, as text).

    The file outlives a worker that dies inside a job, so the nanny (its parent, on the same
    host) can report the job's peak with the exit code; the watchdog removes it when the job
    ends normally."""
    import tempfile

    name = "".join(c if c.isalnum() else "-" for c in str(owner))
    return os.path.join(tempfile.gettempdir(), f"hjbench-peak-{name}.txt")


def read_peak_file(owner: str) -> float:
    """The peak (MiB) left in ``peak_file(owner)``, then remove the file; NaN if there is none."""
    path = peak_file(owner)
    try:
        with open(path) as handle:
            value = float(handle.read().strip())
    except (OSError, ValueError):
        return math.nan
    try:
        os.remove(path)
    except OSError:
        pass
    return value


def _status_mb(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (e.g. ``VmHWM``) in MB, NaN if it cannot be read."""
    try:
        with open(_STATUS) as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return math.nan


class _Sampler(threading.Thread):
    """Daemon thread keeping the largest ``rss_mb()`` seen every ``interval_s`` until stopped."""

    def __init__(self, interval_s: float):
        super().__init__(name="hjbench-rss-sampler", daemon=True)
        self.interval_s = interval_s
        self.peak_mb = rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return max(self.peak_mb, rss_mb())


class PeakMemory:
    """Measure the memory high-water mark of a ``with`` block, in MB (MiB).

    Args:
        device: ``"cpu"`` (default) for the process RSS high-water mark, or a CUDA device
            (``"cuda"``, ``"cuda:1"``, a ``torch.device``) for the peak of
            ``torch.cuda.max_memory_allocated`` during the block.
        interval_s: sampling period of the fallback used when ``/proc/self/clear_refs``
            cannot be written.

    After the block: ``mb`` is the peak (NaN if unknown), ``start_mb`` the figure on entry
    (so ``mb - start_mb`` is what the block added at its peak), ``method`` one of
    ``"vmhwm"``, ``"sampling"``, ``"cuda"`` or ``""``, and ``reason`` is ``""`` when ``mb``
    was measured and one line saying why not otherwise. Reading ``mb`` inside the block
    gives NaN. The RSS figure is per process: measure one block at a time per process.

    >>> with PeakMemory() as mem:
    ...     block = bytearray(50 * 2**20)
    >>> sys.platform != "linux" or mem.mb >= 50
    True
    """

    def __init__(self, device: object = "cpu", *, interval_s: float = 0.005):
        self.device = device
        self.interval_s = interval_s
        self.mb = math.nan
        self.start_mb = math.nan
        self.method = ""
        self.reason = "not measured yet (read mem.mb after the with block)"
        self._sampler: _Sampler | None = None
        self._cuda = str(device).startswith("cuda")

    def __enter__(self) -> "PeakMemory":
        self.mb, self.method = math.nan, ""
        if self._cuda:
            import torch  # lazily: CPU-only runs never import torch from here

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mb = torch.cuda.memory_allocated(self.device) / 2**20
            self.method = "cuda"
            return self
        self.start_mb = rss_mb()
        if sys.platform != "linux" or math.isnan(self.start_mb):
            self.reason = f"peak RSS needs Linux /proc; not available on platform {sys.platform!r}"
            return self
        try:
            with open(_CLEAR_REFS, "w") as handle:
                handle.write("5")
            self.method = "vmhwm"
        except OSError:
            self._sampler = _Sampler(self.interval_s)
            self._sampler.start()
            self.method = "sampling"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.method == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self.method == "vmhwm":
            self.mb = _status_mb("VmHWM")
        elif self.method == "sampling" and self._sampler is not None:
            self.mb, self._sampler = self._sampler.stop(), None
        if self.method and math.isnan(self.mb):
            self.reason = f"peak memory could not be read ({self.method}: /proc/self/status unreadable)"
        elif self.method:
            self.reason = ""


class Watchdog(threading.Thread):
    """Watch a running job: every ``WATCH_INTERVAL_S`` (5 ms) compare the elapsed time with
    ``timeout_s`` and this process's RSS with ``limit_mb`` (either may be None).

    On the first breach it calls ``on_breach(status, reason, seconds, peak_mb)`` once, with
    ``status`` ``"oom"`` or ``"timeout"`` and a one-line ``reason`` naming the limit; the
    caller is expected to stop the process there. ``finish()`` ends the watch; once it has
    returned, no breach can fire (a job that ends in time is never killed late). The
    watchdog needs the GIL now and then: a C call that holds it defeats the watch.

    With ``publish_peak`` (a worker address) it also keeps the job's running RSS peak in
    ``peak_file(publish_peak)``, so
    that a worker which dies inside the job (a segfault) still has its peak reported by the
    nanny that outlives it (``read_peak_file``).
    """

    def __init__(self, timeout_s: float | None, limit_mb: float | None, on_breach: Callable, *,
                 publish_peak: str | None = None):
        super().__init__(name="hjbench-job-watchdog", daemon=True)
        self.timeout_s, self.limit_mb, self.on_breach = timeout_s, limit_mb, on_breach
        self.publish_peak = publish_peak
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._published = -math.inf

    def _publish(self, peak: float) -> None:
        """Write ``peak`` to ``peak_file(publish_peak)`` when it grew by 1 MiB or more (atomic rename)."""
        if self.publish_peak is None or self._done.is_set() or not peak >= self._published + 1.0:
            return
        path = peak_file(self.publish_peak)
        try:
            with open(path + ".tmp", "w") as handle:
                handle.write(f"{peak:.1f}")
            os.replace(path + ".tmp", path)
            self._published = peak
        except OSError:
            self.publish_peak = None  # an unwritable temp folder: crashed rows say "peak unknown"

    def _breach(self, rss: float, elapsed: float) -> tuple[str, str] | None:
        if self.limit_mb is not None and rss > self.limit_mb:
            return "oom", f"memory limit exceeded: RSS {rss:.0f} MB > memory_limit_mb={self.limit_mb:g}"
        if self.timeout_s is not None and elapsed > self.timeout_s:
            return "timeout", f"timed out after {elapsed:.2f} s > timeout_s={self.timeout_s:g}"
        return None

    def start(self) -> None:
        """Publish the RSS on entry (before the job can die), then start watching."""
        self._publish(rss_mb())
        super().start()

    def run(self) -> None:
        start, peak = time.monotonic(), rss_mb()
        while not self._done.wait(WATCH_INTERVAL_S):
            rss, elapsed = rss_mb(), time.monotonic() - start
            peak = max(peak, rss)
            self._publish(peak)
            breach = self._breach(rss, elapsed)
            if breach is not None:
                with self._lock:
                    if not self._done.is_set():
                        self.on_breach(*breach, elapsed, peak)
                return

    def finish(self) -> None:
        """Stop watching; after this returns ``on_breach`` will not be called."""
        with self._lock:
            self._done.set()
        if self.publish_peak is not None:
            read_peak_file(self.publish_peak)  # the job ended: its peak is in its row, not in a file
