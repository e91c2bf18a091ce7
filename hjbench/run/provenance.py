"""Where a result came from: code version, package versions, hardware (run.json, every row)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["now", "git_state", "code_version", "environment"]


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_state() -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the hjbench source tree.

    Dirty means tracked files differ from the commit (untracked files do not count). Cached per
    process: a run's rows all carry the state of the code that produced them.
    """
    root = Path(__file__).resolve().parent.parent.parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=10, check=True, env=env).stdout.strip()

        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def code_version() -> str:
    """``<12 hex of the commit>`` with ``-dirty`` appended when tracked files were changed,
    or ``hjbench-<version>`` outside a git checkout (an installed wheel)."""
    state = git_state()
    if not state["commit"]:
        import hjbench

        return f"hjbench-{hjbench.__version__}"
    return state["commit"][:12] + ("-dirty" if state["dirty"] else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """Versions, git state and hardware of this process (for run.json and ``hjbench sys-info``)."""
    import numpy
    import torch

    import hjbench

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "hjbench": hjbench.__version__,
        "code_version": code_version(), "torch": torch.__version__, "jax": _version("jax"),
        "numpy": numpy.__version__, "pandas": _version("pandas"), "dask": _version("distributed"),
        "git": dict(git_state()), "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
        "gpu_model": gpu, "cuda": torch.version.cuda if gpu else None,
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
