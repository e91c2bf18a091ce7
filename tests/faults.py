"""Fault-injection jobs for the executor tests: top-level, so workers can unpickle them by name.

Each function misbehaves in one way a real trial can (raise, exit, segfault, hang in Python
or in C, allocate without bound) or behaves (``square``, ``allocate_mb``, ``worker_info``).
"""

from __future__ import annotations

import ctypes
import os
import sys
import time


def square(x: int) -> int:
    """A well-behaved job: ``x * x``."""
    return x * x


def slow_square(x: int, seconds: float) -> int:
    """``x * x`` after sleeping ``seconds`` (to make finishing order differ from submission)."""
    time.sleep(seconds)
    return x * x


def raise_value_error(message: str = "bad trial") -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


def call_sys_exit(code: int = 0) -> None:
    """Call ``sys.exit(code)`` (raises ``SystemExit``)."""
    sys.exit(code)


def raise_keyboard_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` from inside the job."""
    raise KeyboardInterrupt("raised by the job")


def segfault() -> None:
    """Read address 0: the process dies with SIGSEGV."""
    ctypes.string_at(0)


def allocate_then_segfault(mb: int) -> None:
    """Hold ``mb`` MiB (touched) long enough for the watchdog to see it, then die with SIGSEGV."""
    block = bytearray(mb * 2**20)
    time.sleep(0.1)
    ctypes.string_at(len(block) * 0)


def hard_exit(code: int = 3) -> None:
    """``os._exit(code)``: the process ends at once, no exception, no clean-up."""
    os._exit(code)


def hang_python() -> None:
    """Spin forever in Python bytecode."""
    while True:
        pass


def hang_in_c() -> None:
    """Block forever in a C call that releases the GIL (``pause(2)`` via ctypes)."""
    ctypes.CDLL(None).pause()


def hang_holding_gil() -> None:
    """Block forever in a C call that keeps the GIL (``pause(2)`` via ``ctypes.PyDLL``), so
    that no other thread of the process, the job's watchdog included, can run."""
    ctypes.PyDLL(None).pause()


def allocate_forever(chunk_mb: int = 20) -> None:
    """Allocate and touch ``chunk_mb`` MiB at a time without bound."""
    hoard = []
    while True:
        hoard.append(bytearray(chunk_mb * 2**20))
        time.sleep(0.001)


def allocate_mb(mb: int) -> int:
    """Hold ``mb`` MiB (touched) briefly, then return ``mb``."""
    block = bytearray(mb * 2**20)
    time.sleep(0.05)
    return len(block) // 2**20


def worker_info() -> dict:
    """The pid and ``CUDA_VISIBLE_DEVICES`` of the process running the job."""
    return {"pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
