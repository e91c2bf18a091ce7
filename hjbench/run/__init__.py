"""Running a grid: configuration, grid expansion, executors, the run folder and the runner."""

import sys as _sys
import types as _types


class _RunPackage(_types.ModuleType):
    """``hjbench.run`` is this subpackage and, called, the Python API ``hjbench.api.run``."""

    def __call__(self, *args, **kwargs):
        from ..api import run

        return run(*args, **kwargs)


_sys.modules[__name__].__class__ = _RunPackage
