"""Fault-injection methods for tests/test_fault_grid.py, registered as an hjbench plug-in.

Load it in worker processes with ``HJBENCH_PLUGINS=fault_plugin`` and ``PYTHONPATH``
including ``tests/``. Each method's fit misbehaves in one way that a trial must survive as one
row: ``fault_raise`` raises, ``fault_hang_py`` sleeps in Python, ``fault_hang_c`` spins in one
C call that holds the GIL (a catastrophic regular expression), ``fault_exit`` calls
``sys.exit``, ``fault_alloc`` allocates without bound, ``fault_segv`` dereferences NULL.
``fault_sleepy`` is a well-behaved stand-in that sleeps ``seconds`` and returns the identity
prox (cheap trials for kill-and-resume tests).
"""

from __future__ import annotations

import ctypes
import re
import sys
import time

from hjbench import methods
from hjbench.methods.base import AbstractMethod


class _Fault(AbstractMethod):
    """Identity prox; ``_fault`` is what its fit does first."""

    provides = frozenset({"prox"})

    def __init__(self, *, seconds: float = 0.0):
        self.seconds = seconds

    def _fault(self) -> None:
        time.sleep(self.seconds)

    def _fit(self, data, generator):
        self._fault()

    def _prox(self, x):
        return x


class Raises(_Fault):
    def _fault(self):
        raise RuntimeError("injected fault: fit raised")


class HangsInPython(_Fault):
    def _fault(self):
        while True:
            time.sleep(0.05)


class HangsInC(_Fault):
    def _fault(self):
        re.match(r"(a+)+$", "a" * 64 + "b")  # exponential backtracking inside one C call


class Exits(_Fault):
    def _fault(self):
        sys.exit(3)


class Allocates(_Fault):
    def _fault(self):
        hoard = []
        while True:
            hoard.append(b"\x01" * (32 * 2**20))  # touched pages: RSS grows 32 MiB a step
            time.sleep(0.01)


class Segfaults(_Fault):
    def _fault(self):
        ctypes.string_at(0)


class Sleepy(_Fault):
    """Sleeps ``seconds`` in fit (0.2 s by default)."""

    def __init__(self, *, seconds: float = 0.2):
        self.seconds = seconds


FAULTS = {"fault_raise": Raises, "fault_hang_py": HangsInPython, "fault_hang_c": HangsInC, "fault_exit": Exits,
          "fault_alloc": Allocates, "fault_segv": Segfaults, "fault_sleepy": Sleepy}


def register() -> None:
    for name, cls in FAULTS.items():
        if name not in methods.METHODS:
            methods.register(name, cls)


register()
