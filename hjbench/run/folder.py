"""Run folders and result files (the schema lives in docs: results/README.md, schema_version 1).

Layout of ``results/<run-id>/``::

    run.json          resolved config, command line, versions, git, hardware, times, counts
    trials.jsonl      one JSON object per finished trial, appended, flushed and fsync'ed
    trials.parquet    the same rows (last row per trial_id), rewritten atomically
    summary.parquet   per-cell statistics (hjbench.present.summary.summarize)
    figures/          error against n_samples (hjbench.present.plots.error_vs_n)

``trials.jsonl`` is the source of truth: a killed run loses at most the trial that was
running. A half-written last line (the process died mid-write) is ignored with a warning on
reading and cut off before the next append. NaN is written as JSON ``null``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import SCHEMA_VERSION

__all__ = ["IDENTITY_COLUMNS", "STATUS_COLUMNS", "STATUSES", "trial_columns", "run_id_for",
           "atomic_write_bytes", "write_run_json", "read_run_json", "environment", "append_trial",
           "repair_jsonl", "read_jsonl", "load_trials", "compact", "write_parquet"]

IDENTITY_COLUMNS = ("schema_version", "run_id", "trial_id", "method", "method_params", "prior",
                    "prior_params", "dim", "n_samples", "repetition", "seed", "method_seed", "t",
                    "regime", "box", "device", "dtype")
STATUS_COLUMNS = ("status", "message")
STATUSES = ("ok", "failed", "skipped", "timeout")
_INT_COLUMNS = ("schema_version", "dim", "n_samples", "repetition", "seed", "method_seed")
_STR_COLUMNS = ("run_id", "trial_id", "method", "method_params", "prior", "prior_params", "regime",
                "device", "dtype", "bound_name", "status", "message")
_BOOL_COLUMNS = ("bound_holds", "cert_holds")


def trial_columns() -> tuple[str, ...]:
    """Every column of a trial row, in schema order."""
    from ..score.metrics import METRIC_COLUMNS

    return IDENTITY_COLUMNS + METRIC_COLUMNS + STATUS_COLUMNS


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


_NOT_IN_RUN_ID = ("description", "timeout_s", "threads", "device_requested")  # performance/notes only


def run_id_for(config_dict: dict, fresh: bool = False) -> str:
    """``<name>-<10 hex of the resolved config>``; ``fresh`` appends a UTC timestamp.

    The description, the timeout, the thread count and the requested (vs resolved) device are
    left out of the hash: changing them resumes the same run (timed-out trials then run again).
    """
    from ..seeds import digest

    ident = {k: v for k, v in config_dict.items() if k not in _NOT_IN_RUN_ID}
    run_id = f"{config_dict['name']}-{digest(ident)[:10]}"
    if fresh:
        run_id += "-" + _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3]
    return run_id


# -- atomic files ------------------------------------------------------------------------------------
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, fsync it, then ``os.replace`` it onto ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item())
    return value


def write_run_json(run_dir: Path, info: dict) -> None:
    text = json.dumps(_jsonable({"schema_version": SCHEMA_VERSION, **info}), indent=2, sort_keys=False)
    atomic_write_bytes(Path(run_dir) / "run.json", (text + "\n").encode())


def read_run_json(run_dir: Path) -> dict:
    path = Path(run_dir) / "run.json"
    return json.loads(path.read_text()) if path.exists() else {}


# -- environment -------------------------------------------------------------------------------------
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git() -> dict:
    root = Path(__file__).resolve().parent.parent
    try:
        run = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=10, check=True).stdout.strip()
        return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


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
        "torch": torch.__version__, "jax": _version("jax"), "numpy": numpy.__version__,
        "pandas": _version("pandas"), "git": _git(), "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
        "gpu_model": gpu, "cuda": torch.version.cuda if gpu else None, "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


# -- trials.jsonl --------------------------------------------------------------------------------------
def append_trial(run_dir: Path, row: dict) -> None:
    """Append one row to trials.jsonl; flushed and fsync'ed before returning."""
    line = json.dumps(_jsonable(row), allow_nan=False, separators=(",", ":")) + "\n"
    with open(Path(run_dir) / "trials.jsonl", "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def repair_jsonl(path: Path) -> int:
    """Cut a half-written last line off ``path`` (with a warning); return the bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    tail = data[keep:]
    if not tail:
        return 0
    warnings.warn(f"{path}: ignored a half-written last line ({len(tail)} bytes); "
                  "the trial it described will run again", stacklevel=2)
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return len(tail)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a trials.jsonl; unparsable lines (a half-written last one) are skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    rows, lines = [], path.read_bytes().split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
            rows.append(row)
        except ValueError:
            where = "half-written last line" if i == len(lines) - 1 else f"unreadable line {i + 1}"
            warnings.warn(f"{path}: ignored a {where} ({len(line)} bytes)", stacklevel=2)
    return rows


def _frame(rows: list[dict]):
    import pandas as pd

    cols = list(trial_columns())
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in cols]
    df = df.reindex(columns=cols + extra)
    if len(df):
        df = df.drop_duplicates("trial_id", keep="last").reset_index(drop=True)
    for c in df.columns:
        if c in _INT_COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        elif c in _STR_COLUMNS:
            df[c] = df[c].astype("string")
        elif c in _BOOL_COLUMNS:
            df[c] = df[c].astype("boolean")
        elif c in cols:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df


def load_trials(run_dir: Path):
    """All trials of a run as a DataFrame in schema column order, last row per trial_id.

    Reads trials.jsonl (tolerating a truncated last line), or trials.parquet if there is no
    jsonl (e.g. a committed reference run).
    """
    import pandas as pd

    run_dir = Path(run_dir)
    jsonl, parquet = run_dir / "trials.jsonl", run_dir / "trials.parquet"
    if not jsonl.exists() and parquet.exists():
        return _frame(pd.read_parquet(parquet).to_dict("records"))
    return _frame(read_jsonl(jsonl))


def write_parquet(df, path: Path) -> None:
    """Write a DataFrame to parquet atomically (temporary file, then ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def compact(run_dir: Path):
    """Rewrite trials.parquet from trials.jsonl; returns the DataFrame."""
    df = load_trials(run_dir)
    write_parquet(df, Path(run_dir) / "trials.parquet")
    return df
